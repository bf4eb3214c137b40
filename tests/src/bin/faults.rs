//! `faults`: the fault-injection suite (RELIABILITY.md). It runs the split
//! topology as real processes — its own `nats-server`, a fresh Postgres
//! database, `arvis-gateway`, several `arvis-worker`s and `arvis-scheduler`s and
//! an `arvis-ws-bridge`, spawned from the directory of this binary — against an
//! in-process mock OpenAI provider, injects one kind of fault per scenario under
//! a steady load of chats, waits (bounded) until every job is final, and counts:
//! requests sent (acknowledged by the store), jobs completed, replies stored,
//! lost (acknowledged but missing, never final, or completed without its
//! reply), duplicated (more than one assistant message per job or per user
//! message) and jobs left non-final. Every reply echoes its request's unique
//! text, so a reply stored under the wrong job counts as lost too.
//!
//! At the end every process's log is searched for every configured secret.
//!
//! Run: `cargo build --workspace --bins && target/debug/faults [--quick] [--only a,b]`
//! Scenarios: kill-worker, effects-kill, sigterm-all, nats-outage,
//! provider-chaos, scheduler-kill, postgres-restart, bridge-kill. Exits non-zero when any scenario lost,
//! duplicated or left a job non-final.

#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test program fails loudly

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arvis_shared::bus::Bus;
use arvis_shared::bus::events::JobReady;
use arvis_shared::db::Store;
use arvis_shared::db::queue::ChatRequest;
use arvis_testkit::fake_discord::FakeDiscord;
use arvis_testkit::fake_slack::FakeSlack;
use arvis_testkit::{Chaos, FakeTelegram, MockLlm, MockReply};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const API_KEY: &str = "faults-dashboard-key-5f1c0e9a7b";
const OPENAI_KEY: &str = "sk-faults-openai-key-93ab41d2c7";
const JWT_SECRET: &str = "faults-jwt-secret-0d7e2b9c44aa81f3";
const WEB_KEY: &str = "faults-web-key-6c2d90e1b7";
/// The Telegram bot's token in bridge-kill (`TELEGRAM_BOT_TOKEN_1`).
const TG_TOKEN: &str = "424242:faults-telegram-token-8e1f3a";
/// The Discord bot's token in bridge-kill (`DISCORD_BOT_TOKEN_1`).
const DC_TOKEN: &str = "faults-discord-token-MTA0.c9d2e7";
/// The Slack bot's tokens in bridge-kill (`SLACK_BOT_TOKEN_1`, `SLACK_APP_TOKEN_1`).
const SL_BOT_TOKEN: &str = "xoxb-faults-slack-bot-5a7c";
const SL_APP_TOKEN: &str = "xapp-faults-slack-app-91d0";
const SECRETS: [&str; 6] = [API_KEY, OPENAI_KEY, JWT_SECRET, WEB_KEY, TG_TOKEN, DC_TOKEN];

fn bin_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A child process killed (SIGKILL) on drop.
struct Proc {
    name: String,
    child: Child,
    /// Where its stdout and stderr go.
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, &self.pid().to_string()]).status();
    }
    /// Waits (bounded) for the process to exit; true when it did.
    fn wait_exit(&mut self, within: Duration) -> bool {
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

fn psql(admin: &str, sql: &str) -> bool {
    Command::new("psql")
        .args([&format!("{admin}/postgres"), "-qc", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A private Postgres cluster (initdb + pg_ctl as user postgres) in a temp dir.
struct PrivatePg {
    port: u16,
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
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn start() -> Result<PrivatePg, String> {
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

    fn ctl(&self, action: &str) -> bool {
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

    fn admin(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

/// The split topology for one scenario, on a fresh database.
struct Cluster {
    logs: PathBuf,
    work: tempfile::TempDir,
    nats_port: u16,
    nats_dir: tempfile::TempDir,
    nats: Option<Proc>,
    pg_admin: String,
    db_name: String,
    _db_url: String,
    gw_port: u16,
    ws_port: u16,
    env: Vec<(String, String)>,
    gateway: Option<Proc>,
    workers: Vec<Proc>,
    schedulers: Vec<Proc>,
    bridge: Option<Proc>,
    seq: usize,
    store: Store,
    pool: PgPool,
    bus: Bus,
    agent_id: i64,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(
        scenario: &str,
        logs: &Path,
        pg_admin: &str,
        mock: &MockLlm,
        workers: usize,
        schedulers: usize,
        extra_env: &[(&str, &str)],
    ) -> Cluster {
        let db_name = format!("faults_{}_{}", scenario.replace('-', "_"), hex::encode(rand::random::<[u8; 4]>()));
        assert!(psql(pg_admin, &format!("CREATE DATABASE {db_name}")), "cannot create a database at {pg_admin}");
        let db_url = format!("{pg_admin}/{db_name}");
        let nats_dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let (gw_port, ws_port) = (free_port(), free_port());
        let nats_port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL", db_url.clone()),
            ("DATABASE_MAX_CONNECTIONS", "5".into()),
            ("NATS_URL", format!("nats://127.0.0.1:{nats_port}")),
            ("GATEWAY_ADDR", format!("127.0.0.1:{gw_port}")),
            ("WS_BRIDGE_ADDR", format!("127.0.0.1:{ws_port}")),
            ("ARVIS_DATA_DIR", work.path().display().to_string()),
            ("DASHBOARD_API_KEY", API_KEY.into()),
            ("JWT_SECRET", JWT_SECRET.into()),
            ("WEB_API_KEY", WEB_KEY.into()),
            ("OPENAI_API_KEY", OPENAI_KEY.into()),
            ("OPENAI_BASE_URL", format!("{}/v1", mock.url)),
            ("WORKER_LEASE_MS", "2000".into()),
            ("WORKER_RETRY_BASE_MS", "200".into()),
            ("WORKER_SHUTDOWN_GRACE_SECS", "5".into()),
            ("PROVIDER_TIMEOUT_SECS", "2".into()),
            ("RUST_LOG", std::env::var("FAULTS_RUST_LOG").unwrap_or_else(|_| "info".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra_env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        let logs = logs.join(scenario);
        std::fs::create_dir_all(&logs).unwrap();
        let store = Store::connect(&db_url, 5).await.unwrap();
        let pool = PgPool::connect(&db_url).await.unwrap();
        let mut c = Cluster {
            logs,
            work,
            nats_port,
            nats_dir,
            nats: None,
            pg_admin: pg_admin.to_string(),
            db_name,
            _db_url: db_url,
            gw_port,
            ws_port,
            env,
            gateway: None,
            workers: Vec::new(),
            schedulers: Vec::new(),
            bridge: None,
            seq: 0,
            store,
            pool,
            bus: Bus::local(),
            agent_id: 0,
            http: reqwest::Client::new(),
        };
        c.start_nats();
        c.bus = Bus::connect_nats(&format!("nats://127.0.0.1:{nats_port}")).await.unwrap();
        c.gateway = Some(c.spawn("arvis-gateway"));
        c.wait_gateway().await;
        for _ in 0..workers {
            let w = c.spawn("arvis-worker");
            c.workers.push(w);
        }
        for _ in 0..schedulers {
            let s = c.spawn("arvis-scheduler");
            c.schedulers.push(s);
        }
        c.bridge = Some(c.spawn("arvis-ws-bridge"));
        let r = c
            .api_post(
                "/api/agents",
                json!({"slug": "faulty", "name": "Faulty", "model": "openai/gpt-4o-mini", "systemPrompt": "Echo."}),
            )
            .await;
        c.agent_id = r["id"].as_i64().unwrap_or_else(|| panic!("agent not created: {r}"));
        c
    }

    fn start_nats(&mut self) {
        self.nats = None;
        let log_path = self.logs.join(format!("nats-{}.log", self.seq));
        let log = File::create(&log_path).unwrap();
        self.seq += 1;
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.nats_port.to_string(), "-js", "-sd"])
            .arg(self.nats_dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nats-server on the PATH");
        self.nats = Some(Proc { name: "nats-server".into(), child, log: log_path });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.nats_port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(&mut self, bin: &str) -> Proc {
        self.spawn_with(bin, &[])
    }

    /// [`Cluster::spawn`] with some variables of its own (a second bridge's address).
    fn spawn_with(&mut self, bin: &str, own_env: &[(&str, String)]) -> Proc {
        let log_path = self.logs.join(format!("{bin}-{}.log", self.seq));
        let log = File::create(&log_path).unwrap();
        self.seq += 1;
        let mut cmd = Command::new(bin_dir().join(bin));
        cmd.current_dir(self.work.path()).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in own_env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (build the bins: cargo build --workspace --bins)"));
        Proc { name: bin.to_string(), child, log: log_path }
    }

    async fn wait_gateway(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("http://127.0.0.1:{}/api/health", self.gw_port)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "gateway never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn api_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self
            .http
            .post(format!("http://127.0.0.1:{}{path}", self.gw_port))
            .header("x-api-key", API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    /// Every service process (not nats).
    fn services(&mut self) -> Vec<&mut Proc> {
        let mut v: Vec<&mut Proc> = Vec::new();
        v.extend(self.gateway.as_mut());
        v.extend(self.workers.iter_mut());
        v.extend(self.schedulers.iter_mut());
        v.extend(self.bridge.as_mut());
        v
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&self.pool).await.unwrap_or(-1)
    }

    /// Waits until no job is pending or running; returns how many still are.
    async fn wait_final(&self, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        loop {
            let open = self.count("SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')").await;
            if open == 0 || Instant::now() > deadline {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn close(self) {
        let Cluster { pool, store, db_name, pg_admin, .. } = self;
        pool.close().await;
        store.close().await;
        // The processes are killed as the rest of `self` drops, then the database goes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        psql(&pg_admin, &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"));
    }
}

/// A steady load of chats enqueued through the store (each acknowledged
/// request is counted exactly; each has a unique text and its own channel).
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one chat through the bridge (authenticated with WEB_API_KEY on the
/// upgrade) and returns the job id of its ack.
async fn bridge_send(ws: &mut Option<Ws>, port: u16, agent: i64, channel: &str, text: &str) -> Option<i64> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    if ws.is_none() {
        let mut req = format!("ws://127.0.0.1:{port}/ws").into_client_request().ok()?;
        req.headers_mut().insert("x-api-key", WEB_KEY.parse().ok()?);
        let (socket, _) =
            tokio::time::timeout(Duration::from_secs(2), tokio_tungstenite::connect_async(req)).await.ok()?.ok()?;
        *ws = Some(socket);
    }
    let socket = ws.as_mut()?;
    let frame = json!({"type": "message", "content": text, "agentId": agent, "channelId": channel});
    if socket.send(Message::text(frame.to_string())).await.is_err() {
        *ws = None;
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(3), socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                if v["type"] == "ack" && v["channelId"] == channel {
                    return v["jobId"].as_i64();
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    *ws = None;
    None
}

struct Load {
    sent: Arc<Mutex<Vec<(i64, String)>>>,
    via_bridge: Arc<Mutex<u64>>,
    errors: Arc<Mutex<u64>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(c: &Cluster, scenario: &str, per_sec: u32, max_attempts: i64) -> Load {
        Load::spawn(c, scenario, per_sec, max_attempts, false)
    }

    /// Like [`Load::start`], each chat carrying a delegation to `helper` and a
    /// memory fact, both with the chat's unique token: the echoed reply's tags.
    fn start_tagged(c: &Cluster, scenario: &str, per_sec: u32, max_attempts: i64) -> Load {
        Load::spawn(c, scenario, per_sec, max_attempts, true)
    }

    fn spawn(c: &Cluster, scenario: &str, per_sec: u32, max_attempts: i64, tagged: bool) -> Load {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(0u64));
        let stop = CancellationToken::new();
        let via_bridge = Arc::new(Mutex::new(0u64));
        let (store, bus, agent, scenario) = (c.store.clone(), c.bus.clone(), c.agent_id, scenario.to_string());
        let (s2, e2, stop2, b2, ws_port) = (sent.clone(), errors.clone(), stop.clone(), via_bridge.clone(), c.ws_port);
        let task = tokio::spawn(async move {
            let mut ws: Option<Ws> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / u64::from(per_sec.max(1))));
            let mut i = 0u64;
            // Bounded: at most 10 minutes' worth of requests.
            while i < u64::from(per_sec) * 600 {
                tokio::select! {
                    _ = stop2.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let token = hex::encode(rand::random::<[u8; 6]>());
                let text = if tagged {
                    format!("req {scenario} #{i} {token} {}", tags_for(&token))
                } else {
                    format!("req {scenario} #{i} {token}")
                };
                let req = ChatRequest {
                    agent_id: agent,
                    platform: "web".into(),
                    channel_id: format!("{scenario}-{i}"),
                    user_id: None,
                    user_name: None,
                    content: text.clone(),
                    priority: 5,
                    max_attempts,
                    external_id: None,
                    api: None,
                };
                // Every fourth chat goes through the WebSocket bridge; when it
                // is down (or the ack does not come) the chat is not counted.
                if i % 4 == 1 {
                    match bridge_send(&mut ws, ws_port, agent, &req.channel_id, &text).await {
                        Some(job_id) => {
                            s2.lock().unwrap().push((job_id, text));
                            *b2.lock().unwrap() += 1;
                        }
                        None => *e2.lock().unwrap() += 1,
                    }
                    i += 1;
                    continue;
                }
                match tokio::time::timeout(Duration::from_secs(5), store.enqueue_chat(&req)).await {
                    Ok(Ok(e)) => {
                        s2.lock().unwrap().push((e.job_id, text));
                        let bus = bus.clone();
                        // A lost signal only delays the job (workers poll).
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                bus.publish(&JobReady { v: 1, job_id: e.job_id, priority: 5 }),
                            )
                            .await;
                        });
                        i += 1;
                    }
                    _ => *e2.lock().unwrap() += 1,
                }
            }
        });
        Load { sent, via_bridge, errors, stop, task }
    }

    /// (acknowledged chats, refused or unacknowledged attempts). Prints how many went through the bridge.
    async fn finish(self) -> (Vec<(i64, String)>, u64) {
        self.stop.cancel();
        let _ = self.task.await;
        let sent = self.sent.lock().unwrap().clone();
        let errors = *self.errors.lock().unwrap();
        eprintln!(
            "   load: {} acknowledged ({} through the bridge), {errors} not acknowledged",
            sent.len(),
            *self.via_bridge.lock().unwrap()
        );
        (sent, errors)
    }
}

/// The tags a tagged chat carries (echoed back by the mock, so the reply has
/// them): one delegation and one memory fact, each naming the chat's token.
fn tags_for(token: &str) -> String {
    format!("[DELEGATE:helper]task {token}[/DELEGATE] [MEMORY:faults] fact {token}")
}

/// The reply the worker stores for `text`: the mock's echo with the tags stripped.
fn expected_reply(text: &str) -> String {
    let echo = format!("echo: {text}");
    if text.contains('[') { arvis_worker::agent::tags::parse_reply(&echo, false).clean } else { echo }
}

#[derive(Default, Clone)]
struct Outcome {
    scenario: String,
    load: String,
    faults: String,
    sent: i64,
    completed: i64,
    failed: i64,
    stored: i64,
    lost: i64,
    duplicated: i64,
    non_final: i64,
    notes: Vec<String>,
    ok: bool,
    skipped: bool,
}

impl Outcome {
    fn print_json(&self) {
        println!(
            "{}",
            json!({"scenario": self.scenario, "load": self.load, "faults": self.faults, "sent": self.sent,
                "completed": self.completed, "failed": self.failed, "stored": self.stored, "lost": self.lost,
                "duplicated": self.duplicated, "nonFinal": self.non_final,
                "outcome": if self.skipped { "skipped" } else if self.ok { "pass" } else { "FAIL" },
                "notes": self.notes})
        );
    }
}

/// id, status, error, conversation, replies of the job, assistant messages of its conversation, reply text.
type JobFacts = (i64, String, String, Option<String>, i64, i64, Option<String>);

/// Counts what the database holds for the acknowledged requests (and for
/// every other job of the scenario's fresh database).
async fn account(c: &Cluster, o: &mut Outcome, sent: &[(i64, String)], failures_allowed: bool) {
    o.non_final = c.count("SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')").await;
    let rows: Vec<JobFacts> = sqlx::query_as(
        "SELECT j.id, j.status, COALESCE(j.error, ''), j.conversation_id, \
         (SELECT COUNT(*) FROM messages m WHERE m.job_id = j.id), \
         (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = j.conversation_id AND m.role = 'assistant'), \
         (SELECT m.content FROM messages m WHERE m.job_id = j.id ORDER BY m.id LIMIT 1) FROM jobs j",
    )
    .fetch_all(&c.pool)
    .await
    .unwrap();
    let by_id: std::collections::HashMap<i64, _> = rows.iter().map(|r| (r.0, r)).collect();
    o.sent = sent.len() as i64;
    let (mut missing, mut no_reply, mut wrong, mut silent_fail) = (0, 0, 0, 0);
    for (id, text) in sent {
        let Some(r) = by_id.get(id) else {
            missing += 1;
            continue;
        };
        match r.1.as_str() {
            "completed" => {
                o.completed += 1;
                if r.4 == 0 {
                    no_reply += 1;
                } else {
                    o.stored += 1;
                    if r.6.as_deref() != Some(&expected_reply(text)) {
                        wrong += 1;
                    }
                }
            }
            "failed" => {
                o.failed += 1;
                if r.2.trim().is_empty() {
                    silent_fail += 1;
                }
            }
            _ => {}
        }
    }
    // Duplicates: per job (the unique index should make this impossible) and
    // per user message (each request has its own conversation).
    for r in &rows {
        o.duplicated += (r.4 - 1).max(0);
        if r.3.is_some() {
            o.duplicated += (r.5 - 1).max(0);
        }
    }
    o.lost = missing + no_reply + wrong + silent_fail + o.non_final;
    let errors: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT LEFT(error, 80), COUNT(*), MIN(attempts), MIN(max_attempts) FROM jobs WHERE status = 'failed' \
         GROUP BY LEFT(error, 80) ORDER BY 2 DESC LIMIT 5",
    )
    .fetch_all(&c.pool)
    .await
    .unwrap_or_default();
    for (e, n, attempts, max) in errors {
        o.notes.push(format!("failed ×{n} (attempts ≥ {attempts} of {max}): {e}"));
    }
    let rerun = c.count("SELECT COUNT(*) FROM jobs WHERE attempts > 1").await;
    o.notes.push(format!("jobs that ran more than once (recovered through leases or retries): {rerun}"));
    for (n, what) in [
        (missing, "acknowledged but not in the database"),
        (no_reply, "completed without a stored reply"),
        (wrong, "reply does not echo its request"),
        (silent_fail, "failed without an error"),
    ] {
        if n > 0 {
            o.notes.push(format!("{n} {what}"));
        }
    }
    if o.failed > 0 && !failures_allowed {
        o.notes.push(format!("{} failed although the provider was healthy", o.failed));
    }
    o.ok = o.lost == 0 && o.duplicated == 0 && o.non_final == 0 && (failures_allowed || o.failed == 0);
}

struct Ctx {
    logs: PathBuf,
    pg_admin: String,
    quick: bool,
}

/// 1. kill -9 a worker mid-run every ~2 s, starting a replacement each time.
async fn kill_worker(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(600), MockReply::Echo));
    let mut c = Cluster::start("kill-worker", &ctx.logs, &ctx.pg_admin, &mock, 3, 1, &[]).await;
    let (rate, kills) = if ctx.quick { (6, 3) } else { (10, 5) };
    let t0 = now_ms();
    let mut kill_times = Vec::new();
    let load = Load::start(&c, "kill-worker", rate, 6);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut killed_running = 0;
    for k in 0..kills {
        let i = k % c.workers.len();
        let pid = c.workers[i].pid();
        killed_running += c
            .count(&format!("SELECT COUNT(*) FROM jobs WHERE status = 'running' AND locked_by LIKE '%-{pid}-%'"))
            .await;
        kill_times.push(format!("{:.1}", (now_ms() - t0) as f64 / 1000.0));
        c.workers[i].signal("-KILL");
        c.workers[i].wait_exit(Duration::from_secs(5));
        let w = c.spawn("arvis-worker");
        c.workers[i] = w;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, errors) = load.finish().await;
    let non_final = c.wait_final(Duration::from_secs(60)).await;
    let mut o = Outcome {
        scenario: "kill-worker".into(),
        load: format!("{rate} chats/s, 3 workers"),
        faults: format!("{kills}× kill -9 worker"),
        ..Default::default()
    };
    o.notes.push(format!("jobs running in the killed workers (by worker id match): {killed_running}"));
    if errors > 0 {
        o.notes.push(format!("{errors} enqueue errors"));
    }
    // A job whose worker dies under it `max_attempts` times fails for good with
    // "lease expired" (a poison job cannot be told from an unlucky one): final,
    // recorded and reported to the client, so it is not lost.
    account(&c, &mut o, &sent, true).await;
    o.non_final = o.non_final.max(non_final);
    type Failed = (i64, i64, Option<i64>, Option<i64>, String);
    let failed: Vec<Failed> = sqlx::query_as(
        "SELECT id, created_at, started_at, completed_at, payload FROM jobs WHERE status = 'failed' LIMIT 5",
    )
    .fetch_all(&c.pool)
    .await
    .unwrap_or_default();
    for (id, created, started, done, payload) in failed {
        let rel = |t: Option<i64>| t.map(|t| (t - t0) as f64 / 1000.0);
        o.notes.push(format!(
            "failed job {id}: created {:.1} s, last started {:?} s, failed {:?} s after the start; kills at {kill_times:?} s; {}",
            (created - t0) as f64 / 1000.0,
            rel(started),
            rel(done),
            payload.chars().take(160).collect::<String>()
        ));
    }
    c.close().await;
    o
}

/// Scenario 7: every worker killed (-9) while replies are stored but their effects not
/// yet applied (issue #17, point 5). Each chat's echoed reply carries a
/// delegation and a memory fact with the chat's token; the workers pause
/// `WORKER_EFFECTS_DELAY_MS` between the reply and its effects, so that a
/// kill lands in that window. Checked: each completed chat has exactly one
/// fact and exactly one delegated job, and no effects stay unapplied.
async fn effects_kill(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(200), MockReply::Echo));
    let delay = 400;
    let mut c = Cluster::start(
        "effects-kill",
        &ctx.logs,
        &ctx.pg_admin,
        &mock,
        2,
        1,
        &[("WORKER_EFFECTS_DELAY_MS", &delay.to_string())],
    )
    .await;
    c.api_post(
        "/api/agents",
        json!({"slug": "helper", "name": "Helper", "model": "openai/gpt-4o-mini", "systemPrompt": "Echo."}),
    )
    .await;
    let (rate, kills) = if ctx.quick { (6, 2) } else { (8, 4) };
    let load = Load::start_tagged(&c, "effects-kill", rate, 6);
    let unapplied = "SELECT COUNT(*) FROM jobs WHERE effects IS NOT NULL AND effects_applied_at IS NULL";
    let mut stranded = std::collections::BTreeSet::new();
    let mut missed = 0;
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Kill when some reply is between its write and its effects.
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.count(unapplied).await == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for w in c.workers.iter_mut() {
            w.signal("-KILL");
        }
        for w in c.workers.iter_mut() {
            w.wait_exit(Duration::from_secs(5));
        }
        // No worker is alive: what is unapplied now was stranded by the kill
        // (by this one or, if no sweep took it yet, an earlier one: a set).
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(unapplied.replace("COUNT(*)", "id")))
            .fetch_all(&c.pool)
            .await
            .unwrap_or_default();
        if ids.is_empty() {
            missed += 1;
        }
        stranded.extend(ids);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..c.workers.len() {
            c.workers[i] = c.spawn("arvis-worker");
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, errors) = load.finish().await;
    // Final: every job, then every stranded effect (a late sweep enqueues
    // delegations), then the delegations those created.
    let mut non_final = c.wait_final(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.count(unapplied).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    non_final = non_final.max(c.wait_final(Duration::from_secs(60)).await);
    let left_unapplied = c.count(unapplied).await;
    let mut o = Outcome {
        scenario: "effects-kill".into(),
        load: format!("{rate} tagged chats/s, 2 workers, {delay} ms between reply and effects"),
        faults: format!("{kills}× kill -9 of every worker with effects pending"),
        ..Default::default()
    };
    if errors > 0 {
        o.notes.push(format!("{errors} enqueue errors"));
    }
    // As in kill-worker, a job under `max_attempts` kills fails for good (recorded, not lost).
    account(&c, &mut o, &sent, true).await;
    o.non_final = o.non_final.max(non_final);
    // The effects of every completed chat: one fact, one delegation.
    let (mut facts_lost, mut delegations_lost, mut delegations_doubled) = (0, 0, 0);
    for (id, text) in &sent {
        let Some(token) = text.split(' ').nth(3) else { continue };
        let completed = c.count(&format!("SELECT COUNT(*) FROM jobs WHERE id = {id} AND status = 'completed'")).await;
        if completed != 1 {
            continue;
        }
        let facts = c.count(&format!("SELECT COUNT(*) FROM memory_facts WHERE content = 'fact {token}'")).await;
        let delegated = c
            .count(&format!(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'delegation' AND payload LIKE '%\"prompt\":\"task {token}\"%'"
            ))
            .await;
        facts_lost += i64::from(facts == 0);
        delegations_lost += i64::from(delegated == 0);
        delegations_doubled += (delegated - 1).max(0);
    }
    let delegations = c.count("SELECT COUNT(*) FROM jobs WHERE kind = 'delegation'").await;
    o.notes.push(format!(
        "replies whose effects a kill stranded (applied later by a sweep): {}; kills that found none: {missed}",
        stranded.len()
    ));
    o.notes.push(format!(
        "delegated jobs: {delegations}; facts lost: {facts_lost}; delegations lost: {delegations_lost}; \
         delegations doubled: {delegations_doubled}; effects left unapplied: {left_unapplied}"
    ));
    o.lost += facts_lost + delegations_lost + left_unapplied;
    o.duplicated += delegations_doubled;
    // Without a stranded reply the scenario tested nothing.
    if stranded.is_empty() {
        o.notes.push("no kill landed between a reply and its effects".into());
    }
    o.ok = o.ok && facts_lost + delegations_lost + delegations_doubled + left_unapplied == 0 && !stranded.is_empty();
    c.close().await;
    o
}

/// The connector holder (`bridge-<uuid>`) a bridge's log names.
fn bridge_holder(p: &Proc) -> Option<String> {
    let text = std::fs::read_to_string(&p.log).ok()?;
    let line = text.lines().find(|l| l.contains("connectors started"))?;
    let at = line.find("bridge-")?;
    Some(line[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect())
}

/// Scenario 8: the ws-bridge holding the bots killed (-9) under inbound load
/// (issue #19): two bridges, a Telegram, a Discord and a Slack bot (leases
/// `BOT_LEASE_MS=2000`) against the test kit's loopback Bot API, Discord
/// gateway and Slack Socket Mode (which retries unacknowledged envelopes as
/// Slack does: 3 s, 1 min, 5 min), DMs pushed at a steady rate (in turn to
/// each platform, 25 users each), a holder killed and replaced each round.
/// Every DM must be answered exactly once at its fake (the echoed text
/// identifies the answer). A second Telegram or Slack answer is counted apart
/// when it is the documented at-least-once window — the dead holder's send of
/// that chunk reached the fake at most 2 s before the kill and was sent again
/// after it (`sendMessage` and `chat.postMessage` have no idempotency key) —
/// and as duplicated otherwise; Discord's `nonce` + `enforce_nonce` leave no
/// such window, so every second Discord answer is a duplicate.
async fn bridge_kill(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(200), MockReply::Echo));
    let tg = Arc::new(FakeTelegram::start(TG_TOKEN).await);
    let dc = Arc::new(FakeDiscord::start(DC_TOKEN).await);
    let sl = Arc::new(FakeSlack::start(SL_BOT_TOKEN, SL_APP_TOKEN).await);
    sl.retry_unacknowledged();
    let mut c = Cluster::start(
        "bridge-kill",
        &ctx.logs,
        &ctx.pg_admin,
        &mock,
        2,
        1,
        &[
            ("TELEGRAM_API_URL", &tg.url),
            ("TELEGRAM_BOT_TOKEN_1", TG_TOKEN),
            ("DISCORD_API_URL", &dc.url),
            ("DISCORD_BOT_TOKEN_1", DC_TOKEN),
            ("SLACK_API_URL", &sl.url),
            ("SLACK_BOT_TOKEN_1", SL_BOT_TOKEN),
            ("SLACK_APP_TOKEN_1", SL_APP_TOKEN),
            ("BOT_LEASE_MS", "2000"),
        ],
    )
    .await;
    let second = c.spawn_with("arvis-ws-bridge", &[("WS_BRIDGE_ADDR", format!("127.0.0.1:{}", free_port()))]);
    let mut bridges: Vec<Proc> = c.bridge.take().into_iter().chain([second]).collect();
    let mut bots = Vec::new();
    for (platform, var) in
        [("telegram", "TELEGRAM_BOT_TOKEN_1"), ("discord", "DISCORD_BOT_TOKEN_1"), ("slack", "SLACK_BOT_TOKEN_1")]
    {
        let mut fields = json!({"name": platform, "platform": platform, "token": var, "defaultAgentId": c.agent_id});
        if platform == "slack" {
            fields["settings"] = json!({"appToken": "SLACK_APP_TOKEN_1"});
        }
        let bot = c.api_post("/api/bots", fields).await;
        bots.push((platform, bot["id"].as_i64().unwrap()));
    }
    tg.wait_polling(Duration::from_secs(20)).await;
    dc.wait_ready(Duration::from_secs(20)).await;
    sl.wait_connected(1, Duration::from_secs(20)).await;
    // Quick: each bot's holder is killed once (three rounds); full: four rounds at 10 DMs/s.
    let (rate, kills) = if ctx.quick { (6u64, 3) } else { (10, 4) };

    // The load: DMs to each platform in turn, from 25 users each, every text unique.
    type Pushed = (&'static str, String, String);
    let pushed: Arc<Mutex<Vec<Pushed>>> = Arc::default();
    let stop = CancellationToken::new();
    let load = {
        let (tg, dc, sl, pushed, stop) = (tg.clone(), dc.clone(), sl.clone(), pushed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate));
            for i in 0..rate * 600 {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let user = (i / 3) % 25;
                let text = format!("dm #{i} {}", hex::encode(rand::random::<[u8; 6]>()));
                let entry = match i % 3 {
                    0 => {
                        let chat = 5000 + user as i64;
                        tg.dm(chat, &text);
                        ("telegram", chat.to_string(), text)
                    }
                    1 => {
                        let channel = format!("4000000000000{user:05}");
                        dc.dm(&channel, &format!("6000000000000{user:05}"), &text);
                        ("discord", channel, text)
                    }
                    _ => {
                        let channel = format!("D0FAULTS{user:03}");
                        sl.dm(&channel, &format!("U0USER{user:04}"), &text);
                        ("slack", channel, text)
                    }
                };
                pushed.lock().unwrap().push(entry);
            }
        })
    };
    // Every answer at either fake: (platform, channel, text) → when.
    let answers = || {
        let mut all: Vec<(&'static str, String, String, Instant)> =
            tg.sent().into_iter().map(|s| ("telegram", s.chat_id, s.text, s.at)).collect();
        all.extend(dc.posted().into_iter().map(|p| ("discord", p.channel_id, p.content, p.at)));
        all.extend(sl.posted().into_iter().map(|p| ("slack", p.channel, p.text, p.at)));
        all
    };
    let mut o = Outcome {
        scenario: "bridge-kill".into(),
        load: format!("{rate} DMs/s (Telegram + Discord + Slack, 25 users each), 2 bridges, 3 bots, BOT_LEASE_MS 2000"),
        faults: format!("{kills}× kill -9 of a bridge holding a bot"),
        ..Default::default()
    };
    let mut kill_at: Vec<Instant> = Vec::new();
    let mut takeovers: Vec<String> = Vec::new();
    let mut epochs: Vec<String> = Vec::new();
    for k in 0..kills {
        tokio::time::sleep(Duration::from_secs(5)).await;
        // In turn the Telegram bot's holder, the Discord bot's and the Slack bot's.
        let (platform, bot_id) = bots[k % bots.len()];
        let Some((holder, _)) = c.store.bot_lease_holder(bot_id).await.ok().flatten() else {
            o.notes.push(format!("no bridge held the {platform} bot when a kill was due"));
            continue;
        };
        let Some(i) = bridges.iter().position(|b| bridge_holder(b).as_deref() == Some(holder.as_str())) else {
            o.notes.push(format!("holder {holder} is no bridge of this run"));
            continue;
        };
        let mut held = Vec::new();
        for (p, id) in &bots {
            if let Some((h, epoch)) = c.store.bot_lease_holder(*id).await.ok().flatten()
                && h == holder
            {
                held.push((*p, epoch));
            }
        }
        bridges[i].signal("-KILL");
        let killed = Instant::now();
        bridges[i].wait_exit(Duration::from_secs(5));
        kill_at.push(killed);
        epochs.push(held.iter().map(|(p, e)| format!("{p} (epoch {e})")).collect::<Vec<_>>().join(" + "));
        // A replacement, so that two bridges run again (the survivor takes over meanwhile).
        tokio::time::sleep(Duration::from_secs(1)).await;
        bridges[i] = c.spawn_with("arvis-ws-bridge", &[("WS_BRIDGE_ADDR", format!("127.0.0.1:{}", free_port()))]);
        // Takeover: the first answer on each platform the dead bridge held, after the kill.
        for (p, _) in &held {
            let deadline = Instant::now() + Duration::from_secs(20);
            let first = loop {
                let first = answers().into_iter().filter(|a| a.0 == *p && a.3 > killed).map(|a| a.3).min();
                if first.is_some() || Instant::now() > deadline {
                    break first;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            takeovers.push(match first {
                Some(at) => format!("{p} {:.1} s", (at - killed).as_secs_f64()),
                None => format!("{p}: none within 20 s"),
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.cancel();
    let _ = load.await;
    let pushed = pushed.lock().unwrap().clone();
    // Every DM answered (bounded), then a little longer for any late second answer.
    let expected = |text: &str| format!("echo: {text}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: std::collections::HashSet<(&str, String, String)> =
            answers().into_iter().map(|a| (a.0, a.1, a.2)).collect();
        let unanswered = pushed.iter().filter(|(p, ch, t)| !seen.contains(&(*p, ch.clone(), expected(t)))).count();
        if unanswered == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let non_final = c.wait_final(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let all = answers();
    let mut by_dm: std::collections::HashMap<(&str, String, String), Vec<Instant>> = Default::default();
    for (p, ch, text, at) in &all {
        by_dm.entry((*p, ch.clone(), text.clone())).or_default().push(*at);
    }
    let (mut lost, mut doubled, mut window) = (0i64, 0i64, 0i64);
    for (p, ch, text) in &pushed {
        let Some(times) = by_dm.get(&(*p, ch.clone(), expected(text))) else {
            lost += 1;
            continue;
        };
        let mut times = times.clone();
        times.sort();
        for extra in &times[1..] {
            // Telegram's and Slack's documented window: the first send
            // reached the fake at most 2 s before a kill, this one after it.
            let in_window = matches!(*p, "telegram" | "slack")
                && kill_at
                    .iter()
                    .any(|k| times[0] <= *k && k.duration_since(times[0]) <= Duration::from_secs(2) && *extra > *k);
            if in_window {
                window += 1;
            } else {
                doubled += 1;
            }
        }
    }
    let recorded = c.count("SELECT COUNT(*) FROM inbound_messages").await;
    o.sent = pushed.len() as i64;
    o.completed = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").await;
    o.failed = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'failed'").await;
    o.stored = by_dm.len() as i64;
    o.lost = lost + non_final;
    o.duplicated = doubled;
    o.non_final = non_final;
    let per = |p: &str| pushed.iter().filter(|d| d.0 == p).count();
    let mut final_epochs = Vec::new();
    for (p, id) in &bots {
        final_epochs.push((*p, c.store.bot_lease_holder(*id).await.ok().flatten().map(|(_, e)| e)));
    }
    o.notes.push(format!(
        "DMs: {} Telegram + {} Discord + {} Slack; recorded by the intake: {recorded}; answers at the fakes: {}; \
         second Telegram/Slack answers inside the documented at-least-once send window: {window}",
        per("telegram"),
        per("discord"),
        per("slack"),
        all.len()
    ));
    o.notes.push(format!(
        "the killed bridges held: {}; first answer after each kill: {}; epochs at the end: {}",
        epochs.join("; "),
        takeovers.join(", "),
        final_epochs.iter().map(|(p, e)| format!("{p} {}", e.unwrap_or(0))).collect::<Vec<_>>().join(", ")
    ));
    o.notes.push(format!(
        "Telegram 409 conflicts: {}; Discord IDENTIFYs {}, RESUMEs {}; Slack connections {}, \
         envelopes {} for {} events (retried unacknowledged: {})",
        tg.conflicts(),
        dc.identifies().len(),
        dc.resumes().len(),
        sl.connections(),
        sl.deliveries().len(),
        per("slack"),
        sl.deliveries().iter().filter(|d| d.retry_attempt > 0).count()
    ));
    o.ok = o.lost == 0
        && o.duplicated == 0
        && o.failed == 0
        && recorded == pushed.len() as i64
        && kill_at.len() == kills
        && !pushed.is_empty();
    drop(bridges);
    c.close().await;
    o
}

/// 6. SIGTERM to every service under load: nothing left running; then restart.
async fn sigterm_all(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(1500), MockReply::Echo));
    let mut c = Cluster::start("sigterm-all", &ctx.logs, &ctx.pg_admin, &mock, 2, 1, &[]).await;
    let rate = if ctx.quick { 6 } else { 10 };
    let load = Load::start(&c, "sigterm-all", rate, 3);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let running_before = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'running'").await;
    for p in c.services() {
        p.signal("-TERM");
    }
    let mut hung = Vec::new();
    for p in c.services() {
        if !p.wait_exit(Duration::from_secs(15)) {
            hung.push(p.name.clone());
        }
    }
    let running_after = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'running'").await;
    let mut o = Outcome {
        scenario: "sigterm-all".into(),
        load: format!("{rate} chats/s, 2 workers, 1.5 s replies"),
        faults: "SIGTERM to gateway, workers, scheduler, bridge".into(),
        ..Default::default()
    };
    o.notes.push(format!("running at SIGTERM: {running_before}; running after exit: {running_after}"));
    if !hung.is_empty() {
        o.notes.push(format!("did not exit within 15 s: {hung:?}"));
    }
    // Restart everything and let the rest finish.
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.gateway = Some(c.spawn("arvis-gateway"));
    for i in 0..c.workers.len() {
        c.workers[i] = c.spawn("arvis-worker");
    }
    c.schedulers[0] = c.spawn("arvis-scheduler");
    c.bridge = Some(c.spawn("arvis-ws-bridge"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, _) = load.finish().await;
    let non_final = c.wait_final(Duration::from_secs(60)).await;
    account(&c, &mut o, &sent, false).await;
    o.non_final = o.non_final.max(non_final);
    if running_after > 0 || !hung.is_empty() {
        o.ok = false;
    }
    c.close().await;
    o
}

/// 2. nats-server down for 10 s under load, restarted on the same port.
async fn nats_outage(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(300), MockReply::Echo));
    let mut c = Cluster::start("nats-outage", &ctx.logs, &ctx.pg_admin, &mock, 2, 1, &[]).await;
    let rate = if ctx.quick { 6 } else { 10 };
    let down = if ctx.quick { 6 } else { 10 };
    let load = Load::start(&c, "nats-outage", rate, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.nats = None; // killed
    let completed_before = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").await;
    tokio::time::sleep(Duration::from_secs(down)).await;
    let completed_during = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").await - completed_before;
    c.start_nats();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (sent, _) = load.finish().await;
    let non_final = c.wait_final(Duration::from_secs(60)).await;
    // Every service must still be alive (they reconnect by themselves).
    let mut dead = Vec::new();
    for p in c.services() {
        if let Ok(Some(_)) = p.child.try_wait() {
            dead.push(p.name.clone());
        }
    }
    let mut o = Outcome {
        scenario: "nats-outage".into(),
        load: format!("{rate} chats/s, 2 workers"),
        faults: format!("nats-server killed for {down} s"),
        ..Default::default()
    };
    o.notes.push(format!("jobs completed while NATS was down (polling): {completed_during}"));
    account(&c, &mut o, &sent, false).await;
    o.non_final = o.non_final.max(non_final);
    if !dead.is_empty() {
        o.notes.push(format!("processes that exited: {dead:?}"));
        o.ok = false;
    }
    if completed_during == 0 {
        o.notes.push("no job completed during the outage".into());
        o.ok = false;
    }
    c.close().await;
    o
}

/// 5. A provider answering with random 429s, 500s, hangs past the timeout and dropped streams.
async fn provider_chaos(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::Chaos(Chaos {
        rate_limited: 0.15,
        server_error: 0.15,
        hang: 0.1,
        hang_for: Duration::from_secs(3),
        drop_mid_stream: 0.1,
        ok_delay: Duration::from_millis(200),
    }));
    let c = Cluster::start("provider-chaos", &ctx.logs, &ctx.pg_admin, &mock, 2, 1, &[]).await;
    let load = Load::start(&c, "provider-chaos", 8, 3);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (mut sent, _) = load.finish().await;
    let non_final = c.wait_final(Duration::from_secs(90)).await;
    let requests = mock.request_count();
    // Recovery: the provider heals; the account's rest passes; new chats succeed.
    mock.set_default(MockReply::slow(Duration::from_millis(100), MockReply::Echo));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut resting = 1;
    while Instant::now() < deadline {
        resting = c
            .count(&format!(
                "SELECT COUNT(*) FROM accounts WHERE rate_limited_until IS NOT NULL AND rate_limited_until > {}",
                now_ms()
            ))
            .await;
        if resting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = Load::start(&c, "provider-chaos-after", 5, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after_sent, _) = after.finish().await;
    c.wait_final(Duration::from_secs(30)).await;
    let after_ids: Vec<i64> = after_sent.iter().map(|s| s.0).collect();
    let mut after_ok = 0;
    for id in &after_ids {
        after_ok += c.count(&format!("SELECT COUNT(*) FROM jobs WHERE id = {id} AND status = 'completed'")).await;
    }
    let mut o = Outcome {
        scenario: "provider-chaos".into(),
        load: "8 chats/s for 15 s, 2 workers, 1 account".into(),
        faults: "15% 429 (Retry-After 1), 15% 500, 10% hang 3 s (> timeout 2 s), 10% dropped mid-stream".into(),
        ..Default::default()
    };
    o.notes.push(format!("provider requests: {requests}"));
    sent.extend(after_sent);
    account(&c, &mut o, &sent, true).await;
    o.non_final = o.non_final.max(non_final);
    o.notes.push(format!(
        "after recovery: {after_ok}/{} chats completed; accounts still resting: {resting}",
        after_ids.len()
    ));
    if resting != 0 || after_ok != after_ids.len() as i64 || after_ids.is_empty() {
        o.ok = false;
    }
    c.close().await;
    o
}

/// 4. Three schedulers, one killed (-9) and restarted repeatedly, over `every 10s` workflows.
async fn scheduler_kill(ctx: &Ctx) -> Outcome {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(100), MockReply::Echo));
    let mut c = Cluster::start("scheduler-kill", &ctx.logs, &ctx.pg_admin, &mock, 2, 3, &[]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let w = c
            .api_post(
                "/api/workflows",
                json!({"name": format!("tick {i}"), "agentId": c.agent_id, "schedule": "every 10s",
                    "prompt": format!("workflow {i}"), "channelId": format!("wf-{i}"), "platform": "web"}),
            )
            .await;
        ids.push(w["id"].as_i64().unwrap());
    }
    let started = now_ms();
    let secs = 45;
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let i = kills % 3;
        c.schedulers[i].signal("-KILL");
        c.schedulers[i].wait_exit(Duration::from_secs(5));
        c.schedulers[i] = c.spawn("arvis-scheduler");
        kills += 1;
    }
    let ended = now_ms();
    let non_final = c.wait_final(Duration::from_secs(30)).await;
    let mut o = Outcome {
        scenario: "scheduler-kill".into(),
        load: "3 workflows every 10 s, 3 schedulers".into(),
        faults: format!("{kills}× kill -9 scheduler over {secs} s"),
        ..Default::default()
    };
    let mut expected_total = 0;
    let mut bad = Vec::new();
    for id in &ids {
        let created: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT created_at FROM jobs WHERE workflow_id = {id} ORDER BY created_at"
        )))
        .fetch_all(&c.pool)
        .await
        .unwrap();
        let skipped = c.count(&format!("SELECT skipped_runs FROM workflows WHERE id = {id}")).await;
        // Due times: every 10 s from the first after creation; the window holds
        // floor(elapsed / 10) or one fewer.
        let due = (ended - started) / 10_000;
        expected_total += due;
        let n = created.len() as i64 + skipped;
        let close_pairs = created.windows(2).filter(|w| w[1] - w[0] < 5_000).count() as i64;
        o.duplicated += close_pairs;
        if n < due - 1 || n > due + 1 {
            bad.push(format!("workflow {id}: {} jobs + {skipped} skipped for ~{due} due times", created.len()));
        }
        o.sent += created.len() as i64;
    }
    o.completed = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").await;
    o.failed = c.count("SELECT COUNT(*) FROM jobs WHERE status = 'failed'").await;
    o.stored = c.count("SELECT COUNT(*) FROM messages WHERE role = 'assistant'").await;
    o.non_final = non_final;
    o.lost = bad.len() as i64 + non_final;
    o.notes.push(format!("~{expected_total} due times in the window; jobs = sent column"));
    o.notes.extend(bad);
    o.ok = o.lost == 0 && o.duplicated == 0 && o.failed == 0;
    c.close().await;
    o
}

/// 3. Postgres restarted (`pg_ctl restart -m fast`) under load, on a private cluster.
async fn postgres_restart(ctx: &Ctx) -> Outcome {
    let mut o = Outcome {
        scenario: "postgres-restart".into(),
        load: "8 chats/s, 2 workers".into(),
        faults: "pg_ctl restart -m fast (private cluster)".into(),
        ..Default::default()
    };
    let pg = match PrivatePg::start() {
        Ok(pg) => pg,
        Err(e) => {
            o.skipped = true;
            o.ok = true;
            o.notes.push(format!("skipped: {e}"));
            return o;
        }
    };
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::slow(Duration::from_millis(500), MockReply::Echo));
    let c = Cluster::start("postgres-restart", &ctx.logs, &pg.admin(), &mock, 2, 1, &[]).await;
    let load = Load::start(&c, "postgres-restart", 8, 5);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = Instant::now();
    let restarted = pg.ctl("restart");
    o.notes.push(format!("restart took {:.1} s (ok: {restarted})", t.elapsed().as_secs_f64()));
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (sent, errors) = load.finish().await;
    o.notes.push(format!("{errors} enqueue attempts refused while Postgres restarted (not counted as sent)"));
    let non_final = c.wait_final(Duration::from_secs(60)).await;
    let mut dead = Vec::new();
    let mut c = c;
    for p in c.services() {
        if let Ok(Some(_)) = p.child.try_wait() {
            dead.push(p.name.clone());
        }
    }
    account(&c, &mut o, &sent, false).await;
    o.non_final = o.non_final.max(non_final);
    if !dead.is_empty() {
        o.notes.push(format!("processes that exited: {dead:?}"));
        o.ok = false;
    }
    c.close().await;
    drop(pg);
    o
}

/// Every configured secret searched in every log line of every process.
fn secrets_in_logs(logs: &Path) -> Outcome {
    let mut hits = 0i64;
    let mut files = 0;
    let mut lines = 0i64;
    let mut stack = vec![logs.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            files += 1;
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
            for line in text.lines() {
                lines += 1;
                for s in SECRETS {
                    if line.contains(s) {
                        hits += 1;
                        eprintln!("SECRET LEAK in {}: {line}", p.display());
                    }
                }
            }
        }
    }
    Outcome {
        scenario: "secrets-in-logs".into(),
        load: format!("{files} log files, {lines} lines"),
        faults: format!("{} configured secrets searched", SECRETS.len()),
        lost: hits,
        ok: hits == 0 && lines > 0,
        notes: vec![format!("{hits} lines with a secret")],
        ..Default::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    arvis_shared::install_crypto_provider();
    sqlx::any::install_default_drivers();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    let all = [
        "kill-worker",
        "effects-kill",
        "sigterm-all",
        "nats-outage",
        "provider-chaos",
        "scheduler-kill",
        "postgres-restart",
        "bridge-kill",
    ];
    let quick_set = ["kill-worker", "effects-kill", "sigterm-all", "nats-outage", "bridge-kill"];
    let wants = |name: &str| match &only {
        Some(o) => o.iter().any(|x| x == name),
        None => !quick || quick_set.contains(&name),
    };
    let pg_admin = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let keep = tempfile::Builder::new().prefix("arvis-faults-").tempdir().unwrap();
    let ctx = Ctx { logs: keep.path().join("logs"), pg_admin, quick };
    let started = Instant::now();
    let mut results: Vec<Outcome> = Vec::new();
    for name in all {
        if !wants(name) {
            continue;
        }
        eprintln!("== {name} ({:.0} s elapsed)", started.elapsed().as_secs_f64());
        let o = match name {
            "kill-worker" => kill_worker(&ctx).await,
            "effects-kill" => effects_kill(&ctx).await,
            "bridge-kill" => bridge_kill(&ctx).await,
            "sigterm-all" => sigterm_all(&ctx).await,
            "nats-outage" => nats_outage(&ctx).await,
            "provider-chaos" => provider_chaos(&ctx).await,
            "scheduler-kill" => scheduler_kill(&ctx).await,
            "postgres-restart" => postgres_restart(&ctx).await,
            other => panic!("unknown scenario {other}"),
        };
        o.print_json();
        results.push(o);
    }
    let s = secrets_in_logs(&ctx.logs);
    s.print_json();
    results.push(s);

    println!(
        "\n| scenario | load | faults injected | sent | completed | failed | stored | lost | duplicated | non-final | outcome |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for o in &results {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.scenario,
            o.load,
            o.faults,
            o.sent,
            o.completed,
            o.failed,
            o.stored,
            o.lost,
            o.duplicated,
            o.non_final,
            if o.skipped {
                "skipped"
            } else if o.ok {
                "pass"
            } else {
                "FAIL"
            }
        );
    }
    println!();
    for o in &results {
        for n in &o.notes {
            println!("- {}: {n}", o.scenario);
        }
    }
    println!("\ntotal time: {:.0} s", started.elapsed().as_secs_f64());
    if results.iter().any(|o| !o.ok) {
        eprintln!("faults: FAILED (logs kept in {})", keep.keep().display());
        std::process::exit(1);
    }
}
