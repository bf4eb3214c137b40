//! The launcher as a user runs it: a fresh data directory, no configuration,
//! the real binary. It must serve `/api/health` and the agents API.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_launcher_serves_the_api_from_a_fresh_data_directory() {
    arvis_shared::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (gw, ws) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_arvis"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEWAY_ADDR", format!("127.0.0.1:{gw}"))
        .env("WS_BRIDGE_ADDR", format!("127.0.0.1:{ws}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Kill(child);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{gw}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        match client.get(format!("{base}/api/health")).send().await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("launcher never answered: {e}"),
        }
    };
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    // The default database and the generated JWT secret are in ./data.
    assert!(dir.path().join("data/arvis.db").exists());
    assert!(dir.path().join("data/.jwt-secret").exists());

    // The conductor was created on first start.
    let agents: serde_json::Value =
        client.get(format!("{base}/api/agents")).send().await.unwrap().json().await.unwrap();
    assert_eq!(agents[0]["role"], "conductor");
    let created = client
        .post(format!("{base}/api/agents"))
        .json(&serde_json::json!({"slug": "support", "name": "Support Bot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

/// SIGTERM ends the launcher with exit code 0 within 10 s, also when the NATS
/// server it was pointed at is unreachable.
#[test]
fn sigterm_exits_0_within_10_s_with_the_broker_down_or_up() {
    arvis_testkit::process::assert_sigterm_exits_cleanly(env!("CARGO_BIN_EXE_arvis"), "gateway listening");
}

/// The command line takes no settings: `--help` lists the environment,
/// `--version` names the build, anything else is refused with exit code 2
/// before the launcher touches a database or a port.
#[test]
fn the_command_line_answers_help_and_version_and_refuses_the_rest() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_arvis")).args(args).output().unwrap();
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: arvis"), "{text}");
    assert!(text.contains("DATABASE_URL") && text.contains("NATS_URL"), "{text}");

    let version = run(&["-V"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("arvis {}", env!("CARGO_PKG_VERSION")));

    let refused = run(&["--port", "8080"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unexpected argument '--port'"));
    assert!(refused.stdout.is_empty());
}
