//! A private `nats-server` for one test, benchmark or fault scenario.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{free_port, wait_tcp};

pub struct NatsServer {
    pub port: u16,
    child: Option<Child>,
    store_dir: tempfile::TempDir,
    jetstream: bool,
    /// Where its output goes (appended across restarts); discarded when `None`.
    log: Option<PathBuf>,
}

impl NatsServer {
    /// Starts `nats-server` with JetStream on a free loopback port and waits until it accepts.
    pub fn start() -> NatsServer {
        NatsServer::start_with(true, None)
    }

    /// [`NatsServer::start`] with or without JetStream, its output appended to `log`.
    pub fn start_with(jetstream: bool, log: Option<PathBuf>) -> NatsServer {
        let store_dir = tempfile::tempdir().expect("temp dir");
        let mut server = NatsServer { port: free_port(), child: None, store_dir, jetstream, log };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (a crash, not a graceful stop).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (and the same JetStream store).
    pub fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            cmd.args(["-js", "-sd"]).arg(self.store_dir.path());
        }
        match &self.log {
            Some(path) => {
                let file = std::fs::File::options().create(true).append(true).open(path).expect("nats log file");
                cmd.stdout(file.try_clone().expect("nats log file")).stderr(file);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = cmd.spawn().expect("nats-server must be on the PATH (./scripts/test.sh installs it)");
        self.child = Some(child);
        wait_tcp(self.port, Duration::from_secs(10), "nats-server");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
