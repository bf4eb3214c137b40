//! [`TestApp`]: the services in-process on port-0 listeners over a fresh
//! database, with an HTTP client.

use std::collections::HashMap;
use std::net::SocketAddr;

use arvis_shared::Deps;
use arvis_shared::config::Config;
use reqwest::Method;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Backend, NatsServer, TestDb};

pub struct TestAppBuilder {
    backend: Backend,
    vars: HashMap<String, String>,
    nats: bool,
    worker: bool,
    scheduler: bool,
    bridge: bool,
}

pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub base: String,
    pub ws_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub deps: Deps,
    pub db: TestDb,
    pub nats: Option<NatsServer>,
    pub data_dir: tempfile::TempDir,
    /// The variables the services were configured with (for more replicas).
    pub vars: HashMap<String, String>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder { backend, vars: HashMap::new(), nats: false, worker: false, scheduler: false, bridge: false }
    }

    /// Just the gateway, no credentials configured.
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::builder(backend).start().await
    }
}

impl TestAppBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }
    pub fn with_nats(mut self) -> Self {
        self.nats = true;
        self
    }
    pub fn with_worker(mut self) -> Self {
        self.worker = true;
        self
    }
    pub fn with_scheduler(mut self) -> Self {
        self.scheduler = true;
        self
    }
    pub fn with_bridge(mut self) -> Self {
        self.bridge = true;
        self
    }

    pub async fn start(self) -> TestApp {
        crate::init_test_logging();
        let db = TestDb::new(self.backend).await;
        let data_dir = tempfile::tempdir().unwrap();
        let nats = self.nats.then(NatsServer::start);
        let mut vars = self.vars;
        vars.insert("DATABASE_URL".into(), db.url.clone());
        vars.insert("ARVIS_DATA_DIR".into(), data_dir.path().display().to_string());
        vars.entry("DATABASE_MAX_CONNECTIONS".into()).or_insert_with(|| "5".into());
        if let Some(n) = &nats {
            vars.insert("NATS_URL".into(), n.url());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let vars_kept = vars.clone();
        let deps = Deps::connect(config).await.expect("connect deps");
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tasks.push(tokio::spawn(arvis_gateway::run(deps.clone(), listener, shutdown.clone())));
        if self.worker {
            tasks.push(tokio::spawn(arvis_worker::run(deps.clone(), shutdown.clone())));
        }
        if self.scheduler {
            tasks.push(tokio::spawn(arvis_scheduler::run(deps.clone(), shutdown.clone())));
        }
        let mut ws_addr = None;
        if self.bridge {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            ws_addr = Some(l.local_addr().unwrap());
            tasks.push(tokio::spawn(arvis_ws_bridge::run(deps.clone(), l, shutdown.clone())));
        }
        let app = TestApp {
            base,
            ws_addr,
            client: reqwest::Client::new(),
            deps,
            db,
            nats,
            data_dir,
            vars: vars_kept,
            shutdown,
            tasks,
        };
        // The gateway bootstraps (conductor, accounts) before it serves; wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while app.client.get(format!("{}/api/health", app.base)).send().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "gateway did not start");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        app
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body), &[]).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(body), &[]).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None, &[]).await
    }

    /// Another gateway replica over the same database and bus (and stopped
    /// with the others); returns its base URL.
    pub async fn spawn_gateway(&mut self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        self.tasks.push(tokio::spawn(arvis_gateway::run(self.deps.clone(), listener, self.shutdown.clone())));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.client.get(format!("{base}/api/health")).send().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "the replica did not start");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        base
    }

    /// Another ws-bridge replica (with its connectors) over the same database
    /// and bus, with a store and tasks of its own, so that it can be stopped
    /// or made to die on its own ([`Bridge::crash`]).
    pub async fn spawn_bridge(&self) -> Bridge {
        let config = Config::from_lookup(|k| self.vars.get(k).cloned()).expect("test config");
        let store = arvis_shared::db::Store::connect(&config.database_url, 5).await.expect("connect store");
        let deps = Deps {
            config: std::sync::Arc::new(config),
            store,
            bus: self.deps.bus.clone(),
            tasks: arvis_shared::shutdown::Tasks::default(),
        };
        let shutdown = CancellationToken::new();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(arvis_ws_bridge::run(deps.clone(), l, shutdown.clone()));
        Bridge { addr, deps, shutdown, task }
    }

    /// The reply events of agent `agent_id`'s dashboard channel (where REST
    /// chat's replies go), registered with the bus before it returns.
    pub async fn subscribe_dashboard(&self, agent_id: i64) -> arvis_shared::bus::Subscription {
        let subject = arvis_shared::bus::subjects::reply("dashboard", &format!("dashboard-agent-{agent_id}"));
        let sub = self.deps.bus.subscribe(&subject).await.unwrap();
        self.deps.bus.flush().await.unwrap();
        sub
    }

    /// Creates the agent the connector tests answer with (`helper`, OpenAI
    /// `gpt-4o-mini`, so the loopback LLM plays its provider); its id.
    pub async fn helper_agent(&self) -> i64 {
        let (status, body) = self
            .post("/api/agents", serde_json::json!({"slug": "helper", "name": "Helper", "model": "openai/gpt-4o-mini"}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Bot `id` as `GET /api/bots` shows it (`Null` when it is not there).
    pub async fn bot(&self, id: i64) -> Value {
        let (_, bots) = self.get("/api/bots").await;
        bots.as_array().and_then(|b| b.iter().find(|b| b["id"] == id).cloned()).unwrap_or(Value::Null)
    }

    /// Waits until bot `id` has `status` (panics after `within`); the bot.
    pub async fn wait_bot_status(&self, id: i64, status: &str, within: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let b = self.bot(id).await;
            if b["status"] == status {
                return b;
            }
            assert!(std::time::Instant::now() < deadline, "bot {id} not {status} within {within:?}: {b}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits until `GET /api/deliveries?status=sent` lists `n` deliveries (at most 5 s).
    pub async fn wait_sent_deliveries(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let (_, sent) = self.get("/api/deliveries?status=sent").await;
            if sent.as_array().map(Vec::len) == Some(n) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{sent}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops every service and waits for them to drain.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A bridge replica started by [`TestApp::spawn_bridge`].
pub struct Bridge {
    pub addr: SocketAddr,
    pub deps: Deps,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Bridge {
    /// A graceful stop: bots stopped, leases released.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        self.deps.tasks.stop(std::time::Duration::from_secs(3)).await;
    }

    /// Dies as under kill -9: every task dropped at once, nothing released
    /// (the leases run out by themselves).
    pub async fn crash(self) {
        self.task.abort();
        self.deps.tasks.stop(std::time::Duration::ZERO).await;
    }
}

/// Reply events until the final message or error (at most 10 s).
pub async fn events_until_final(
    sub: &mut arvis_shared::bus::Subscription,
) -> Vec<arvis_shared::bus::events::ReplyEvent> {
    use arvis_shared::bus::events::{ReplyEvent, ReplyKind};
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let msg = tokio::time::timeout(left, sub.next()).await.expect("no final reply event").unwrap();
        let e: ReplyEvent = msg.decode().unwrap();
        let last = matches!(e.kind, ReplyKind::Message | ReplyKind::Error);
        out.push(e);
        if last {
            return out;
        }
    }
}
