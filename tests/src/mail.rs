//! Real mail servers for the email connector's tests, one private pair per
//! test, both on free loopback ports, both stopped on drop.
//!
//! - [`Dovecot`]: Debian's `dovecot-imapd` (IDLE included) run as root from
//!   its own configuration in a temp dir (`/work/shared/PITFALLS.md` has the
//!   recipe): one `passwd-file` user whose Maildir is owned by `nobody`, no
//!   TLS, plain-text login allowed. Mail arrives by writing a file into the
//!   Maildir (`tmp/`, then renamed into `new/`, as a delivery agent does).
//! - [`SmtpReceiver`]: `tests/python/smtp_receiver.py`, an aiosmtpd server
//!   from the venv `target/mail-venv`, that requires AUTH, keeps every
//!   accepted message as a JSON file, and can answer the next N messages
//!   with a 4xx/5xx.
//!
//! `scripts/test.sh` installs both; a test without them fails saying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;

const INSTALL_HINT: &str = "run ./scripts/test.sh once: it installs Debian's dovecot-imapd and the aiosmtpd venv";
/// `nobody`: the owner of the Maildir and the uid Dovecot serves it as.
const NOBODY: u32 = 65534;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16, what: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on {port}; its log:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A certificate authority for one test and a server certificate it signed
/// for `127.0.0.1` and `localhost` (ECDSA P-256, made with the openssl CLI).
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let p = |name: &str| dir.path().join(name);
        let ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
                   keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";
        std::fs::write(p("server.ext"), ext).unwrap();
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run openssl ({e}): it comes with Debian's base system"));
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let mut ca_args = vec!["req", "-x509", "-days", "2", "-subj", "/CN=Arvis Test CA", "-keyout", "ca.key"];
        ca_args.extend(key);
        ca_args.extend(["-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE"]);
        ca_args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        run(&ca_args);
        let mut csr_args = vec!["req", "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "server.csr"];
        csr_args.extend(key);
        run(&csr_args);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ]);
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            set_mode(&p(f), 0o644);
        }
        TestCa { ca: p("ca.pem"), cert: p("cert.pem"), key: p("key.pem"), _dir: dir }
    }
}

impl Default for TestCa {
    fn default() -> TestCa {
        TestCa::new()
    }
}

/// A private Dovecot IMAP server with one user.
pub struct Dovecot {
    /// IMAP (plain; with TLS set up, STARTTLS before login is required).
    pub port: u16,
    /// IMAPS (implicit TLS), when started with [`Dovecot::start_tls`]; 0 otherwise.
    pub tls_port: u16,
    pub user: String,
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Dovecot {
    /// Starts Dovecot for `user` with `password` and waits until it accepts.
    pub fn start(user: &str, password: &str) -> Dovecot {
        Dovecot::start_with(user, password, None, true)
    }

    /// Dovecot that does not offer IDLE (its CAPABILITY after login leaves it
    /// out), as some servers do: the connector must poll.
    pub fn start_without_idle(user: &str, password: &str) -> Dovecot {
        Dovecot::start_with(user, password, None, false)
    }

    /// Dovecot with `ca`'s server certificate: IMAPS on `tls_port`, and
    /// STARTTLS on `port` (login refused before it).
    pub fn start_tls(user: &str, password: &str, ca: &TestCa) -> Dovecot {
        Dovecot::start_with(user, password, Some(ca), true)
    }

    fn start_with(user: &str, password: &str, ca: Option<&TestCa>, idle: bool) -> Dovecot {
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("dovecot is not installed: {INSTALL_HINT}"));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        set_mode(root, 0o755);
        for sub in ["run", "state"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        let home = root.join("home");
        for sub in ["", "Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"] {
            let p = home.join(sub);
            std::fs::create_dir_all(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let passwd = root.join("passwd");
        std::fs::write(&passwd, format!("{user}:{{PLAIN}}{password}:{NOBODY}:{NOBODY}::{}\n", home.display())).unwrap();
        let port = free_port();
        let tls_port = if ca.is_some() { free_port() } else { 0 };
        let r = root.display();
        let ssl = match ca {
            None => "ssl = no\ndisable_plaintext_auth = no\n".to_string(),
            Some(ca) => format!(
                "ssl = yes\nssl_cert = <{}\nssl_key = <{}\ndisable_plaintext_auth = yes\n",
                ca.cert.display(),
                ca.key.display()
            ),
        };
        let capability = if idle { "" } else { "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS\n" };
        let conf = format!(
            "{capability}base_dir = {r}/run\nstate_dir = {r}/state\nlog_path = {r}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\n{ssl}\
             auth_mechanisms = plain login\nauth_verbose = yes\nmail_location = maildir:~/Maildir\n\
             first_valid_uid = 1\n\
             passdb {{\n  driver = passwd-file\n  args = {p}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {p}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {port}\n  }}\n  \
             inet_listener imaps {{\n    port = {tls_port}\n    ssl = yes\n  }}\n}}\n",
            p = passwd.display()
        );
        let conf_path = root.join("dovecot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // Not the test's own stdout/stderr: the daemon would keep them open.
        let errors = std::fs::File::create(root.join("start.log")).unwrap();
        let status = Command::new(binary)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors)
            .status()
            .unwrap_or_else(|e| panic!("cannot start dovecot ({e}): {INSTALL_HINT}"));
        let server = Dovecot { port, tls_port, user: user.to_string(), dir, next: AtomicUsize::new(0) };
        assert!(status.success(), "dovecot refused to start (it must run as root here); log:\n{}", server.log());
        wait_listening(port, "dovecot", || server.log());
        if tls_port != 0 {
            wait_listening(tls_port, "dovecot (imaps)", || server.log());
        }
        server
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("home/Maildir")
    }

    /// Delivers a raw message (`\n` line ends are sent as CRLF) into the inbox.
    pub fn deliver(&self, raw: &str) {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}.M{n}P{}.arvis-test", now_secs(), std::process::id());
        let tmp = self.maildir().join("tmp").join(&name);
        let crlf = raw.replace("\r\n", "\n").replace('\n', "\r\n");
        std::fs::write(&tmp, crlf).unwrap();
        std::os::unix::fs::chown(&tmp, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::rename(&tmp, self.maildir().join("new").join(&name)).unwrap();
    }

    /// Makes Dovecot forget the mailbox's UIDs (its uidlist and indexes), so
    /// that the next session sees a new UIDVALIDITY — what a rebuilt or
    /// restored mailbox looks like to a client.
    pub fn reset_uids(&self) {
        for entry in std::fs::read_dir(self.maildir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("dovecot") {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Dovecot's log (logins, failures, disconnects), after what it said when starting.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        read("start.log") + &read("dovecot.log")
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("run/master.pid")) {
            let _ = Command::new("kill").arg("-TERM").arg(pid.trim()).status();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A message the SMTP receiver accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The user it authenticated as.
    pub auth_user: Option<String>,
    /// The raw message.
    pub data: String,
}

impl Received {
    /// A header's value as sent (unfolded, trimmed).
    pub fn header(&self, name: &str) -> Option<String> {
        let msg = MessageParser::default().parse(self.data.as_bytes())?;
        msg.header_raw(name).map(|v| v.replace("\r\n", "").replace('\n', "").trim().to_string())
    }

    /// The decoded `Subject`.
    pub fn subject(&self) -> Option<String> {
        MessageParser::default().parse(self.data.as_bytes())?.subject().map(str::to_string)
    }

    /// The decoded plain-text body.
    pub fn text(&self) -> String {
        MessageParser::default()
            .parse(self.data.as_bytes())
            .and_then(|m| m.body_text(0).map(|b| b.trim().to_string()))
            .unwrap_or_default()
    }
}

/// A private SMTP submission server (aiosmtpd) that requires AUTH.
pub struct SmtpReceiver {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpReceiver {
    /// Plain SMTP (AUTH over plain text).
    pub fn start(user: &str, password: &str) -> SmtpReceiver {
        SmtpReceiver::start_with(user, password, None)
    }

    /// SMTP with `ca`'s server certificate: `mode` `tls` (implicit TLS from
    /// the first byte) or `starttls` (STARTTLS required before AUTH or MAIL).
    pub fn start_tls(user: &str, password: &str, mode: &str, ca: &TestCa) -> SmtpReceiver {
        SmtpReceiver::start_with(user, password, Some((mode, ca)))
    }

    fn start_with(user: &str, password: &str, tls: Option<(&str, &TestCa)>) -> SmtpReceiver {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("../target/mail-venv/bin/python");
        assert!(python.exists(), "{} is missing: {INSTALL_HINT}", python.display());
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out.log")).unwrap();
        let child = Command::new(&python)
            .arg(root.join("python/smtp_receiver.py"))
            .arg(dir.path())
            .arg(user)
            .arg(password)
            .args(
                tls.map(|(mode, ca)| {
                    vec![mode.into(), ca.cert.clone().into_os_string(), ca.key.clone().into_os_string()]
                })
                .unwrap_or_default(),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the SMTP receiver ({e}): {INSTALL_HINT}"));
        let log = dir.path().join("out.log");
        let deadline = Instant::now() + Duration::from_secs(15);
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(p) = text.lines().find_map(|l| l.strip_prefix("listening on ")) {
                break p.trim().parse::<u16>().unwrap();
            }
            assert!(Instant::now() < deadline, "the SMTP receiver did not start (is aiosmtpd in the venv?):\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        SmtpReceiver { port, dir, child }
    }

    /// The next `n` messages are answered with `code` (e.g. 451) instead of 250.
    pub fn fail_next(&self, code: u16, n: usize) {
        let path = self.dir.path().join("fail-next");
        std::fs::write(path.with_extension("tmp"), format!("{code} {n}")).unwrap();
        std::fs::rename(path.with_extension("tmp"), path).unwrap();
    }

    /// DATA commands seen, accepted or refused.
    pub fn attempts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("attempts")).unwrap_or_default().lines().count()
    }

    /// Every accepted message, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        let dir = self.dir.path().join("mail");
        let mut names: Vec<PathBuf> =
            std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "json"));
        names.sort();
        names
            .iter()
            .map(|p| {
                let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                Received {
                    mail_from: v["mail_from"].as_str().unwrap_or_default().to_string(),
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                    auth_user: v["auth_user"].as_str().map(str::to_string),
                    data: v["data"].as_str().unwrap_or_default().to_string(),
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages were accepted.
    pub async fn wait_received(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} mails received within {within:?}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
