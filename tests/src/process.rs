//! A service binary as an operator runs it: its own process, its own data
//! directory, SIGTERM to stop it. Used by each binary's own process-level
//! tests (`<crate>/tests/*.rs`, where cargo names the binary in
//! `CARGO_BIN_EXE_<name>`).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::NatsServer;
use crate::harness::free_port;

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

/// A running service binary; killed when dropped.
pub struct Service {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
    log: String,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Starts `bin` in a fresh directory with only `env` (plus `PATH` and JSON
    /// logs), and waits for an output line containing `ready` (at most 20 s).
    pub fn start(bin: &str, env: &[(&str, String)], ready: &str) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("ARVIS_DATA_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        // The log goes to stdout, a failed start's error to stderr: read both.
        let (tx, lines) = mpsc::channel::<String>();
        let forward = |out: Box<dyn std::io::Read + Send>, tx: mpsc::Sender<String>| {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            })
        };
        let readers = vec![
            forward(Box::new(child.stdout.take().unwrap()), tx.clone()),
            forward(Box::new(child.stderr.take().unwrap()), tx),
        ];
        let mut service = Service { child: Some(child), lines, readers, log: String::new(), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match service.lines.recv_timeout(left) {
                Ok(line) => {
                    service.log.push_str(&line);
                    service.log.push('\n');
                    if line.contains(ready) {
                        return service;
                    }
                }
                Err(_) => panic!("{bin} did not log {ready:?} within 20 s:\n{}", service.log),
            }
        }
    }

    /// Sends SIGTERM and waits up to `patience` for the exit (then kills it).
    pub fn sigterm(mut self, patience: Duration) -> Stopped {
        let Some(mut child) = self.child.take() else { panic!("already stopped") };
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
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let mut log = std::mem::take(&mut self.log);
        log.extend(self.lines.try_iter().map(|l| l + "\n"));
        Stopped { status, after, log }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `bin` with a fresh SQLite database and `NATS_URL`, waits for `ready`,
/// sends SIGTERM and waits up to `patience` for the exit.
pub fn start_then_sigterm(bin: &str, ready: &str, nats_url: &str, patience: Duration) -> Stopped {
    let db = tempfile::tempdir().unwrap();
    let env = [
        ("NATS_URL", nats_url.to_string()),
        ("DATABASE_URL", format!("sqlite://{}/arvis.db", db.path().display())),
        ("GATEWAY_ADDR", "127.0.0.1:0".to_string()),
        ("WS_BRIDGE_ADDR", "127.0.0.1:0".to_string()),
    ];
    Service::start(bin, &env, ready).sigterm(patience)
}

/// The shutdown contract of every binary: SIGTERM ends it with exit code 0
/// within 10 s, with the NATS server unreachable and with it up.
pub fn assert_sigterm_exits_cleanly(bin: &str, ready: &str) {
    let patience = Duration::from_secs(10);
    let down = start_then_sigterm(bin, ready, &format!("nats://127.0.0.1:{}", free_port()), patience);
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
