//! What every program that runs our binaries as real processes needs: the
//! `faults` suite, the `loadgen` benchmarks and the process-level tests
//! ([`crate::process`]) share these instead of each writing its own.
//!
//! - [`free_port`]: a loopback port nothing listens on (bound and released).
//! - [`bin_dir`]: where the service binaries are (next to the running program).
//! - [`Proc`]: a child process killed on drop, with its output in a log file or
//!   discarded; `kill -<signal>` and a bounded wait for its exit.
//! - [`psql`] and [`ScratchPg`]: a Postgres database made for one run on the
//!   machine's server and dropped at its end; [`PrivatePg`]: a private cluster
//!   (initdb + pg_ctl) that a scenario may restart.
//! - [`wait_tcp`] / [`wait_http`]: bounded waits for a listener.
//! - [`check_args`]: the command line of `faults` and `loadgen`, checked before
//!   anything starts.
//!
//! The private `nats-server` is [`crate::NatsServer`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The directory of the running program: where cargo put the service binaries
/// when it built `faults` or `loadgen` (`cargo build --workspace --bins`).
pub fn bin_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().to_path_buf()
}

/// Where a [`Proc`]'s stdout and stderr go.
pub enum Output {
    /// Discarded (benchmarks: writing logs would be measured too).
    Null,
    /// Appended to this file (the fault suite searches every log for secrets).
    File(PathBuf),
}

/// A child process, killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    /// Its log file, when its output is kept.
    pub log: Option<PathBuf>,
}

impl Proc {
    /// Starts `cmd` (named `name` in messages) with its output going to `out`.
    pub fn spawn(name: &str, mut cmd: Command, out: Output) -> Proc {
        let log = match out {
            Output::Null => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
                None
            }
            Output::File(path) => {
                let file = File::options().create(true).append(true).open(&path).unwrap();
                cmd.stdout(file.try_clone().unwrap()).stderr(file);
                Some(path)
            }
        };
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name: name.to_string(), child, log }
    }

    /// Starts the service binary `bin` from [`bin_dir`] in `dir` with only `env`
    /// (plus `PATH`).
    pub fn service(bin: &str, env: &[(&str, String)], dir: &Path, out: Output) -> Proc {
        let mut cmd = Command::new(bin_dir().join(bin));
        cmd.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if !bin_dir().join(bin).exists() {
            panic!("{bin} is not in {} (build the bins: cargo build --workspace --bins)", bin_dir().display());
        }
        Proc::spawn(bin, cmd, out)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill <sig> <pid>`, e.g. `"-TERM"`, `"-KILL"`, `"-STOP"`.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, &self.pid().to_string()]).status();
    }

    /// Whether it has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (bounded) for the process to exit; true when it did.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one SQL command with `psql` on the `postgres` database of `admin`; true on success.
pub fn psql(admin: &str, sql: &str) -> bool {
    Command::new("psql")
        .args([&format!("{admin}/postgres"), "-qc", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Postgres database made for one run, dropped again (with `FORCE`) on drop.
/// Declare it before the processes that use it, so that they go first.
pub struct ScratchPg {
    admin: String,
    pub name: String,
    pub url: String,
}

impl ScratchPg {
    /// Creates `name` on the server at `admin` (dropping a leftover of that
    /// name first); `None` when Postgres refuses or is not reachable.
    pub fn create(admin: &str, name: &str) -> Option<ScratchPg> {
        psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(admin, &format!("CREATE DATABASE {name}")).then(|| ScratchPg {
            admin: admin.to_string(),
            name: name.to_string(),
            url: format!("{admin}/{name}"),
        })
    }
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A private Postgres cluster (initdb + pg_ctl as user postgres) in a temp dir
/// on a free port, stopped on drop — for a scenario that restarts Postgres
/// without touching the machine's shared server.
pub struct PrivatePg {
    pub port: u16,
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
}

impl PrivatePg {
    fn as_postgres(args: &[&str]) -> bool {
        Command::new("runuser")
            .arg("-u")
            .arg("postgres")
            .arg("--")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `Err` says why it cannot run here (no initdb, no postgres user…).
    pub fn start() -> Result<PrivatePg, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|_| "no /usr/lib/postgresql".to_string())?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .ok_or("initdb not found")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let _ = Command::new("chown").args(["postgres:postgres", &dir.path().display().to_string()]).status();
        let data = dir.path().join("data");
        if !Self::as_postgres(&[
            &bin.join("initdb").display().to_string(),
            "-D",
            &data.display().to_string(),
            "-U",
            "postgres",
            "--auth=trust",
        ]) {
            return Err("initdb as user postgres failed".into());
        }
        let pg = PrivatePg { port: free_port(), dir, pg_ctl: bin.join("pg_ctl") };
        if !pg.ctl("start") {
            return Err("pg_ctl start failed".into());
        }
        Ok(pg)
    }

    /// `pg_ctl <action>` (`start`, `stop`, `restart`) with `-m fast -w`; true on success.
    pub fn ctl(&self, action: &str) -> bool {
        let data = self.dir.path().join("data");
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        Self::as_postgres(&[
            &self.pg_ctl.display().to_string(),
            "-D",
            &data.display().to_string(),
            "-o",
            &opts,
            "-l",
            &self.dir.path().join("pg.log").display().to_string(),
            "-m",
            "fast",
            "-w",
            action,
        ])
    }

    /// Its admin URL (trust auth), like `TEST_POSTGRES_URL`.
    pub fn admin(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

/// Waits until something accepts TCP connections on the loopback `port`.
pub fn wait_tcp(port: u16, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on port {port} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most 60 s) until `url` answers any HTTP response.
pub async fn wait_http(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a flag of [`check_args`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Nothing (`--quick`).
    Nothing,
    /// A positive whole number (`--workflows 2000`).
    Count,
    /// A positive number of seconds, fractions allowed (`--secs 0.5`).
    Seconds,
}

/// Checks a benchmark or fault program's arguments (after the program name)
/// before it starts anything: a mistyped flag or scenario would otherwise run
/// everything, or nothing, without a word. `flags` are the program's own;
/// `--only a,b` (names from `scenarios`) and `-h`/`--help` are common to both.
/// `Err` with an empty text is `--help`; any other `Err` says what was refused.
pub fn check_args(args: &[String], flags: &[(&str, Takes)], scenarios: &[&str]) -> Result<(), String> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let arg = arg.as_str();
        if matches!(arg, "-h" | "--help" | "help") {
            return Err(String::new());
        }
        if arg == "--only" {
            let value = rest.next().ok_or("--only needs a list of scenarios")?;
            if let Some(unknown) = value.split(',').find(|name| !scenarios.contains(name)) {
                return Err(format!("unknown scenario {unknown:?}"));
            }
            continue;
        }
        let Some(&(_, takes)) = flags.iter().find(|(name, _)| *name == arg) else {
            return Err(format!("unknown argument {arg:?}"));
        };
        let positive: fn(&str) -> bool = match takes {
            Takes::Nothing => continue,
            Takes::Count => |v| v.parse::<u32>().is_ok_and(|v| v > 0),
            Takes::Seconds => |v| v.parse::<f64>().is_ok_and(|v| v > 0.0),
        };
        let value = rest.next().ok_or_else(|| format!("{arg} needs a value"))?;
        if !positive(value) {
            return Err(format!("{arg} takes a positive number, not {value:?}"));
        }
    }
    Ok(())
}
