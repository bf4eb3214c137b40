use super::*;

/// The split topology for one scenario, on a fresh database: its own
/// `nats-server`, a gateway, workers, schedulers and a bridge as processes,
/// each logging into the scenario's folder. The processes are declared before
/// the database, so they are killed before it is dropped.
pub struct Cluster {
    pub gateway: Option<Proc>,
    pub workers: Vec<Proc>,
    pub schedulers: Vec<Proc>,
    pub bridge: Option<Proc>,
    pub nats: NatsServer,
    pub logs: PathBuf,
    work: tempfile::TempDir,
    pub gw_port: u16,
    pub ws_port: u16,
    env: Vec<(String, String)>,
    seq: usize,
    pub store: Store,
    pub pool: PgPool,
    pub bus: Bus,
    pub agent_id: i64,
    http: reqwest::Client,
    /// Held only to be dropped last: the scenario's database goes after its processes.
    _db: ScratchPg,
}

impl Cluster {
    pub async fn start(
        scenario: &str,
        logs: &Path,
        pg_admin: &str,
        mock: &MockLlm,
        workers: usize,
        schedulers: usize,
        extra_env: &[(&str, &str)],
    ) -> Cluster {
        let db_name = format!("faults_{}_{}", scenario.replace('-', "_"), hex::encode(rand::random::<[u8; 4]>()));
        let db =
            ScratchPg::create(pg_admin, &db_name).unwrap_or_else(|| panic!("cannot create a database at {pg_admin}"));
        let logs = logs.join(scenario);
        std::fs::create_dir_all(&logs).unwrap();
        let nats = NatsServer::start_with(true, Some(logs.join("nats-server.log")));
        let work = tempfile::tempdir().unwrap();
        let (gw_port, ws_port) = (free_port(), free_port());
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL", db.url.clone()),
            ("DATABASE_MAX_CONNECTIONS", "5".into()),
            ("NATS_URL", nats.url()),
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
        let store = Store::connect(&db.url, 5).await.unwrap();
        let pool = PgPool::connect(&db.url).await.unwrap();
        let bus = Bus::connect_nats(&nats.url()).await.unwrap();
        let mut c = Cluster {
            gateway: None,
            workers: Vec::new(),
            schedulers: Vec::new(),
            bridge: None,
            nats,
            logs,
            work,
            gw_port,
            ws_port,
            env,
            seq: 0,
            store,
            pool,
            bus,
            agent_id: 0,
            http: reqwest::Client::new(),
            _db: db,
        };
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

    pub fn spawn(&mut self, bin: &str) -> Proc {
        self.spawn_with(bin, &[])
    }

    /// [`Cluster::spawn`] with some variables of its own (a second bridge's address).
    pub fn spawn_with(&mut self, bin: &str, own_env: &[(&str, String)]) -> Proc {
        let log = self.logs.join(format!("{bin}-{}.log", self.seq));
        self.seq += 1;
        let env: Vec<(&str, String)> =
            self.env.iter().map(|(k, v)| (k.as_str(), v.clone())).chain(own_env.iter().cloned()).collect();
        Proc::service(bin, &env, self.work.path(), Output::File(log))
    }

    pub async fn wait_gateway(&self) {
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

    pub async fn api_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
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
    pub fn services(&mut self) -> Vec<&mut Proc> {
        let mut v: Vec<&mut Proc> = Vec::new();
        v.extend(self.gateway.as_mut());
        v.extend(self.workers.iter_mut());
        v.extend(self.schedulers.iter_mut());
        v.extend(self.bridge.as_mut());
        v
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&self.pool).await.unwrap_or(-1)
    }

    /// Waits until no job is pending or running; returns how many still are.
    pub async fn wait_final(&self, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        loop {
            let open = self.count("SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')").await;
            if open == 0 || Instant::now() > deadline {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn close(mut self) {
        self.pool.close().await;
        self.store.close().await;
        self.gateway = None;
        self.workers.clear();
        self.schedulers.clear();
        self.bridge = None;
        // The database goes as `self` drops (after its last connections closed).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one chat through the bridge (authenticated with WEB_API_KEY on the
/// upgrade) and returns the job id of its ack.
pub async fn bridge_send(ws: &mut Option<Ws>, port: u16, agent: i64, channel: &str, text: &str) -> Option<i64> {
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

/// A steady load of chats enqueued through the store (each acknowledged
/// request is counted exactly; each has a unique text and its own channel).
pub struct Load {
    sent: Arc<Mutex<Vec<(i64, String)>>>,
    via_bridge: Arc<Mutex<u64>>,
    errors: Arc<Mutex<u64>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(c: &Cluster, scenario: &str, per_sec: u32, max_attempts: i64) -> Load {
        Load::spawn(c, scenario, per_sec, max_attempts, false)
    }

    /// Like [`Load::start`], each chat carrying a delegation to `helper` and a
    /// memory fact, both with the chat's unique token: the echoed reply's tags.
    pub fn start_tagged(c: &Cluster, scenario: &str, per_sec: u32, max_attempts: i64) -> Load {
        Load::spawn(c, scenario, per_sec, max_attempts, true)
    }

    pub fn spawn(c: &Cluster, scenario: &str, per_sec: u32, max_attempts: i64, tagged: bool) -> Load {
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
    pub async fn finish(self) -> (Vec<(i64, String)>, u64) {
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
pub fn tags_for(token: &str) -> String {
    format!("[DELEGATE:helper]task {token}[/DELEGATE] [MEMORY:faults] fact {token}")
}

/// The reply the worker stores for `text`: the mock's echo with the tags stripped.
pub fn expected_reply(text: &str) -> String {
    let echo = format!("echo: {text}");
    if text.contains('[') { arvis_worker::agent::tags::parse_reply(&echo, false).clean } else { echo }
}
