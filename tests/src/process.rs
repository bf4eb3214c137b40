//! A service binary as an operator runs it: its own process, its own data
//! directory, SIGTERM to stop it. Used by each binary's own shutdown test
//! (`<crate>/tests/sigterm.rs`, where cargo names the binary in
//! `CARGO_BIN_EXE_<name>`).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::NatsServer;

/// How one stop went.
#[derive(Debug)]
pub struct Stopped {
    /// `None` when it had not exited when the wait ended (it was then killed).
    pub status: Option<ExitStatus>,
    /// From SIGTERM to exit (or to the end of the wait).
    pub after: Duration,
    /// Everything it wrote (log and errors).
    pub log: String,
}

/// A port nothing listens on (bound, read and released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `bin` with a fresh SQLite database and `NATS_URL`, waits for an output
/// line containing `ready` (at most 20 s), sends SIGTERM and waits up to
/// `patience` for the exit.
pub fn start_then_sigterm(bin: &str, ready: &str, nats_url: &str, patience: Duration) -> Stopped {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NATS_URL", nats_url)
        .env("DATABASE_URL", format!("sqlite://{}/arvis.db", dir.path().display()))
        .env("GATEWAY_ADDR", "127.0.0.1:0")
        .env("WS_BRIDGE_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    // The log goes to stdout, a failed start's error to stderr: read both.
    let (tx, lines) = mpsc::channel::<String>();
    let forward = |out: Box<dyn std::io::Read + Send>, tx: mpsc::Sender<String>| {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        })
    };
    let readers = [
        forward(Box::new(child.stdout.take().unwrap()), tx.clone()),
        forward(Box::new(child.stderr.take().unwrap()), tx),
    ];
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(ready) {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("{bin} did not log {ready:?} within 20 s:\n{log}");
            }
        }
    }
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success(), "kill -TERM failed");
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if sent.elapsed() > patience {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let after = sent.elapsed();
    for reader in readers {
        let _ = reader.join();
    }
    log.extend(lines.try_iter().map(|l| l + "\n"));
    Stopped { status, after, log }
}

/// The shutdown contract of every binary: SIGTERM ends it with exit code 0
/// within 10 s, with the NATS server unreachable and with it up.
pub fn assert_sigterm_exits_cleanly(bin: &str, ready: &str) {
    let patience = Duration::from_secs(10);
    let down = start_then_sigterm(bin, ready, &format!("nats://127.0.0.1:{}", closed_port()), patience);
    assert!(
        down.status.is_some_and(|s| s.success()),
        "broker down: {bin} {:?} after {:?}\n{}",
        down.status,
        down.after,
        down.log
    );
    let nats = NatsServer::start();
    let up = start_then_sigterm(bin, ready, &nats.url(), patience);
    assert!(
        up.status.is_some_and(|s| s.success()),
        "broker up: {bin} {:?} after {:?}\n{}",
        up.status,
        up.after,
        up.log
    );
}
