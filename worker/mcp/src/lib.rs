//! The worker's MCP client (issue 23): connections to the MCP servers its
//! agents use, over the official SDK `rmcp` — stdio (a child process per
//! server per worker) and Streamable HTTP (over this workspace's reqwest).
//!
//! Connections are made **lazily**: the first run of an agent that names a
//! server's tools starts a supervisor task for it, which connects, lists the
//! tools, and then keeps the connection: a dead child or a dropped session is
//! reconnected with capped exponential backoff, `notifications/tools/list_changed`
//! re-lists, and every change is written to the database (status, last error,
//! tools) for the API and the dashboard. A server edited or removed through the
//! API (a `ConfigChanged` notice, or the periodic re-read) is stopped, and
//! started again with its new configuration on next use. At shutdown every
//! connection is closed and every child killed (each child also runs with
//! kill-on-drop, in its own process group, so nothing outlives the worker).
//!
//! Safety: `MCP_STDIO_ALLOWED=false` refuses stdio servers (their status says
//! why); an HTTP server's address goes through the same private-address guard
//! as `http_fetch` (checked after DNS resolution, connections pinned to the
//! checked addresses, no redirects) unless `HTTP_FETCH_ALLOW_PRIVATE`. A child
//! gets only a minimal environment (`PATH`, `HOME`, locale) plus the variables
//! its configuration names — never the worker's provider keys.
//!
//! Calls: [`McpManager::call`] runs `tools/call` under `MCP_CALL_TIMEOUT_MS`,
//! caps the text at `MCP_RESULT_MAX_BYTES`, and turns every failure (an
//! `isError` result, a timeout, a dead server) into `Err(text)` for the model:
//! a tool error is never a failed run. Each call is counted in
//! `arvis_mcp_tool_calls_total{server,tool,outcome}` and timed in
//! `arvis_mcp_tool_call_duration_seconds`, with one log line.
//!
//! Why a crate of its own (`worker/mcp`, re-exported as `arvis_worker::mcp`):
//! so that this cold code — and the rmcp generics it instantiates, a quarter of
//! the worker's machine code at `-O3` — is compiled at a low opt-level
//! (`[profile.release.package.arvis-mcp]` in Cargo.toml) without slowing the
//! worker's hot paths. Its entry points return boxed futures from
//! `#[inline(never)]` functions, so their bodies are compiled here once rather
//! than again, at the worker's level, in every crate that awaits them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arvis_shared::db::Store;
use arvis_shared::domain::mcp::{self as domain, McpServer, McpStatus, McpTool};
use arvis_shared::shutdown::Tasks;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use futures::future::BoxFuture;

/// How long a run waits for a server that is (re)connecting before it goes on
/// without its tools (or, for a call, answers the model with an error).
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long connecting (spawn + `initialize` + `tools/list`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// First and largest pause between reconnects; doubled after each failure,
/// reset by a connection that worked.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the configuration is re-read, in case a bus notice was missed.
const REREAD_EVERY: Duration = Duration::from_secs(30);
/// How long a closing connection may take at shutdown (the child is killed after).
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The variables every stdio child gets from the worker (besides its own `env`).
const BASE_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"];

/// What the manager takes from the configuration.
#[derive(Debug, Clone)]
pub struct McpSettings {
    pub stdio_allowed: bool,
    pub allow_private: bool,
    pub call_timeout: Duration,
    pub max_result_bytes: usize,
}

impl McpSettings {
    pub fn from_config(c: &arvis_shared::config::Config) -> McpSettings {
        McpSettings {
            stdio_allowed: c.mcp_stdio_allowed,
            allow_private: c.http_fetch_allow_private,
            call_timeout: c.mcp_call_timeout,
            max_result_bytes: c.mcp_result_max_bytes,
        }
    }
}

/// One MCP tool as declared to the model for one run: its provider-safe wire
/// name and what it maps back to.
#[derive(Debug, Clone, PartialEq)]
pub struct McpBinding {
    pub wire: String,
    pub server: String,
    pub tool: String,
}

/// One MCP tool offered to the model for one run: what it maps back to
/// (`binding.wire` is its name on the wire), what it does, and the JSON Schema
/// of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct McpOffer {
    pub binding: McpBinding,
    pub description: String,
    pub parameters: Value,
}

/// A connection's state, as runs see it.
#[derive(Clone)]
enum Conn {
    Connecting,
    Ready {
        peer: Peer<RoleClient>,
        tools: Arc<Vec<McpTool>>,
    },
    /// `permanent`: retrying cannot help (stdio disabled, a variable missing).
    Down {
        error: String,
        permanent: bool,
    },
}

struct Slot {
    config: McpServer,
    state: watch::Receiver<Conn>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The worker's MCP connections, by server name.
pub struct McpManager {
    store: Store,
    settings: McpSettings,
    tasks: Tasks,
    stop: CancellationToken,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl std::fmt::Debug for McpManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpManager").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl McpManager {
    pub fn new(store: Store, settings: McpSettings, tasks: Tasks) -> Arc<McpManager> {
        Arc::new(McpManager {
            store,
            settings,
            tasks,
            stop: CancellationToken::new(),
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// Follows configuration changes: `ConfigChanged` notices for MCP servers
    /// and a periodic re-read. Ends at [`McpManager::shutdown`].
    #[inline(never)]
    pub fn watch_config<'a>(self: &'a Arc<Self>, bus: &'a arvis_shared::bus::Bus) -> BoxFuture<'a, ()> {
        Box::pin(self.watch_config_inner(bus))
    }

    async fn watch_config_inner(self: &Arc<Self>, bus: &arvis_shared::bus::Bus) {
        let mut notices = match bus.subscribe(arvis_shared::bus::subjects::CONFIG_CHANGED).await {
            Ok(s) => Some(s),
            Err(error) => {
                tracing::warn!(%error, "no config-change notices: MCP server edits show within {} s", REREAD_EVERY.as_secs());
                None
            }
        };
        let me = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(REREAD_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let notice = async {
                    match notices.as_mut() {
                        Some(n) => n.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = me.stop.cancelled() => return,
                    _ = tick.tick() => me.reconcile().await,
                    msg = notice => match msg {
                        Some(msg) => match msg.decode::<arvis_shared::bus::events::ConfigChanged>() {
                            Some(c) if c.entity != "mcp_server" => {}
                            _ => me.reconcile().await,
                        },
                        None => notices = None,
                    },
                }
            }
        });
    }

    /// Stops the connections whose server was removed, disabled or changed;
    /// the next run that needs one starts it again from the new configuration.
    async fn reconcile(&self) {
        let servers = match self.store.list_mcp_servers().await {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "cannot re-read the MCP servers");
                return;
            }
        };
        let stale: Vec<Arc<Slot>> = {
            let Ok(mut slots) = self.slots.lock() else { return };
            let names: Vec<String> = slots
                .iter()
                .filter(|(name, slot)| {
                    !servers.iter().any(|s| &s.name == *name && s.revision == slot.config.revision && s.is_enabled)
                })
                .map(|(name, _)| name.clone())
                .collect();
            names.into_iter().filter_map(|n| slots.remove(&n)).collect()
        };
        for slot in stale {
            tracing::info!(server = %slot.config.name, "MCP server changed or removed: closing its connection");
            slot.stop.cancel();
        }
    }

    /// The slot of server `name`, started on first use; `None` if no enabled
    /// server has that name.
    async fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        if let Some(slot) = self.slots.lock().ok()?.get(name).cloned() {
            return Some(slot);
        }
        let config = match self.store.list_mcp_servers().await {
            Ok(servers) => servers.into_iter().find(|s| s.name == name && s.is_enabled)?,
            Err(error) => {
                tracing::warn!(%error, server = name, "cannot read the MCP server");
                return None;
            }
        };
        let mut slots = self.slots.lock().ok()?;
        if let Some(slot) = slots.get(name) {
            return Some(slot.clone());
        }
        if self.stop.is_cancelled() {
            return None;
        }
        let (tx, rx) = watch::channel(Conn::Connecting);
        let stop = self.stop.child_token();
        let slot = Arc::new(Slot { config: config.clone(), state: rx, stop: stop.clone(), task: Mutex::new(None) });
        let supervisor = Supervisor { store: self.store.clone(), settings: self.settings.clone(), config, tx, stop };
        let handle = self.tasks.spawn(supervisor.run(self.tasks.clone()));
        if let Ok(mut t) = slot.task.lock() {
            *t = Some(handle);
        }
        slots.insert(name.to_string(), slot.clone());
        Some(slot)
    }

    /// Waits (at most `within`) for the server to be ready or down.
    async fn ready(&self, name: &str, within: Duration) -> Result<(Peer<RoleClient>, Arc<Vec<McpTool>>), String> {
        let slot = self.slot(name).await.ok_or_else(|| format!("there is no enabled MCP server named {name:?}"))?;
        let mut state = slot.state.clone();
        let wait = async {
            loop {
                let now = state.borrow_and_update().clone();
                match now {
                    Conn::Ready { peer, tools } => return Ok((peer, tools)),
                    Conn::Down { error, permanent: true } => return Err(error),
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err("the MCP connection was closed".to_string());
                }
            }
        };
        match tokio::time::timeout(within, wait).await {
            Ok(result) => result,
            Err(_) => match &*slot.state.borrow() {
                Conn::Down { error, .. } => Err(format!("MCP server {name} is unavailable: {error}")),
                _ => Err(format!("MCP server {name} is still connecting")),
            },
        }
    }

    /// The MCP tools `allowed` grants, with their wire names, for one run.
    /// A server that is not ready within [`CONNECT_WAIT`] contributes none
    /// (the run goes on with the rest).
    #[inline(never)]
    pub fn tools_for<'a>(&'a self, allowed: &'a [String], taken: &'a [String]) -> BoxFuture<'a, Vec<McpOffer>> {
        Box::pin(self.tools_for_inner(allowed, taken))
    }

    async fn tools_for_inner(&self, allowed: &[String], taken: &[String]) -> Vec<McpOffer> {
        let mut out: Vec<McpOffer> = Vec::new();
        let mut used: Vec<String> = taken.to_vec();
        for server in domain::referenced_servers(allowed) {
            let tools = match self.ready(server, CONNECT_WAIT).await {
                Ok((_, tools)) => tools,
                Err(error) => {
                    tracing::warn!(server, %error, "MCP server not available: its tools are left out of this run");
                    continue;
                }
            };
            for tool in tools.iter().filter(|t| domain::allows(allowed, server, &t.name)) {
                let wire = wire_name(server, &tool.name, &used);
                used.push(wire.clone());
                let description = if tool.description.is_empty() {
                    format!("{} (MCP server {server})", tool.name)
                } else {
                    tool.description.clone()
                };
                out.push(McpOffer {
                    binding: McpBinding { wire, server: server.to_string(), tool: tool.name.clone() },
                    description,
                    parameters: parameters(&tool.input_schema),
                });
            }
        }
        out
    }

    /// Runs one `tools/call`; the text for the model, or the error for it.
    #[inline(never)]
    pub fn call<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        arguments: &'a Value,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(self.call_logged(server, tool, arguments))
    }

    async fn call_logged(&self, server: &str, tool: &str, arguments: &Value) -> Result<String, String> {
        let started = Instant::now();
        let result = self.call_inner(server, tool, arguments).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CallError::Timeout(_)) => "timeout",
            Err(CallError::Tool(_)) => "tool_error",
            Err(CallError::Unavailable(_)) => "unavailable",
        };
        let elapsed = started.elapsed();
        metrics::counter!("arvis_mcp_tool_calls_total", "server" => server.to_string(), "tool" => tool.to_string(),
            "outcome" => outcome)
        .increment(1);
        metrics::histogram!("arvis_mcp_tool_call_duration_seconds", "server" => server.to_string(),
            "tool" => tool.to_string())
        .record(elapsed.as_secs_f64());
        let duration_ms = elapsed.as_millis() as u64;
        match &result {
            Ok(_) => tracing::info!(server, tool, durationMs = duration_ms, outcome, "MCP tool call"),
            Err(e) => tracing::warn!(server, tool, durationMs = duration_ms, outcome, error = %e, "MCP tool call"),
        }
        result.map_err(|e| e.to_string())
    }

    async fn call_inner(&self, server: &str, tool: &str, arguments: &Value) -> Result<String, CallError> {
        // Waiting for a (re)connection is not the call's time: a server that
        // died a moment ago is usually back within CONNECT_WAIT.
        let (peer, _) = self.ready(server, CONNECT_WAIT).await.map_err(CallError::Unavailable)?;
        let mut params = CallToolRequestParams::new(tool.to_string());
        match arguments {
            Value::Object(map) => params = params.with_arguments(map.clone()),
            Value::Null => {}
            other => {
                return Err(CallError::Tool(format!("the arguments must be a JSON object, not {other}")));
            }
        }
        let timeout = self.settings.call_timeout;
        let result = match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Err(_) => return Err(CallError::Timeout(timeout)),
            Ok(Err(e)) => return Err(CallError::Unavailable(format!("MCP server {server}: {e}"))),
            Ok(Ok(result)) => result,
        };
        let value = serde_json::to_value(&result).unwrap_or(Value::Null);
        let text = result_text(&value, self.settings.max_result_bytes);
        if result.is_error == Some(true) {
            return Err(CallError::Tool(text));
        }
        Ok(text)
    }

    /// Closes every connection (children are killed) and waits for the
    /// supervisors, each bounded by [`CLOSE_GRACE`].
    #[inline(never)]
    pub fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.shutdown_inner())
    }

    async fn shutdown_inner(&self) {
        self.stop.cancel();
        let slots: Vec<Arc<Slot>> = match self.slots.lock() {
            Ok(mut s) => s.drain().map(|(_, v)| v).collect(),
            Err(_) => vec![],
        };
        for slot in slots {
            let handle = slot.task.lock().ok().and_then(|mut t| t.take());
            if let Some(handle) = handle
                && tokio::time::timeout(CLOSE_GRACE * 2, handle).await.is_err()
            {
                tracing::warn!(server = %slot.config.name, "an MCP connection did not close in time");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("the MCP tool did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("{0}")]
    Tool(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The text of a `tools/call` result: its text blocks joined (other blocks
/// named by type; `structuredContent` when there is no text), cut at
/// `max_bytes` on a character boundary with a note saying so.
pub fn result_text(result: &Value, max_bytes: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(blocks) = result.get("content").and_then(Value::as_array) {
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(block.get("text").and_then(Value::as_str).unwrap_or("").to_string()),
                Some("resource") => match block.pointer("/resource/text").and_then(Value::as_str) {
                    Some(text) => parts.push(text.to_string()),
                    None => parts.push("[binary resource omitted]".into()),
                },
                Some(kind) => parts.push(format!("[{kind} content omitted]")),
                None => {}
            }
        }
    }
    if parts.is_empty()
        && let Some(structured) = result.get("structuredContent").filter(|v| !v.is_null())
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    if text.len() <= max_bytes {
        return text;
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n…[truncated: the result was {} bytes, the limit is {max_bytes}]", &text[..cut], text.len())
}

/// The model's view of a tool's arguments: its input schema, as an object schema.
fn parameters(schema: &Value) -> Value {
    match schema {
        Value::Object(map) if map.get("type").and_then(Value::as_str) == Some("object") => schema.clone(),
        Value::Object(map) if !map.contains_key("type") => {
            let mut m = map.clone();
            m.insert("type".into(), Value::String("object".into()));
            Value::Object(m)
        }
        _ => serde_json::json!({"type": "object", "properties": {}}),
    }
}

/// A provider-safe tool name for `server`'s `tool`, unique among `taken`.
///
/// Every provider accepts `^[a-zA-Z0-9_-]{1,64}$` starting with a letter
/// (OpenAI's rule; Anthropic's and Gemini's are as strict or looser). The
/// name is `mcp_<server>_<tool>` with other characters made `_`; when that
/// changed the name, is longer than 64 or is taken, a short hash of the
/// exact pair replaces the tail, so two different tools never share a name.
/// The run keeps the [`McpBinding`]s to map the name back.
pub fn wire_name(server: &str, tool: &str, taken: &[String]) -> String {
    let clean: String =
        tool.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    let plain = format!("mcp_{server}_{clean}");
    if clean == tool && plain.len() <= 64 && !taken.contains(&plain) {
        return plain;
    }
    for salt in 0u32.. {
        let hash = fnv1a(&format!("{server}/{tool}#{salt}"));
        let tail = format!("_{:08x}", hash as u32);
        let room = 64 - tail.len();
        let mut name: String = plain.chars().take(room).collect();
        name.push_str(&tail);
        if !taken.contains(&name) {
            return name;
        }
    }
    plain
}

fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The client side of one connection: `notifications/tools/list_changed`
/// wakes the supervisor to re-list.
#[derive(Clone)]
struct Handler {
    refresh: Arc<Notify>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }
}

type Running = RunningService<RoleClient, Handler>;

/// Either transport behind one type. rmcp's client loop (`serve_inner`, the
/// start-up handshake and their drop glue) is generic over the transport, so
/// serving the two types directly compiled all of it twice into this crate;
/// through this enum it is compiled once (build time, issue #17).
enum AnyTransport {
    Stdio(rmcp::transport::TokioChildProcess),
    Http(rmcp::transport::StreamableHttpClientTransport<reqwest::Client>),
}

/// A transport's error, whichever transport it came from.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct TransportError(Box<dyn std::error::Error + Send + Sync>);

impl TransportError {
    fn new(error: impl std::error::Error + Send + Sync + 'static) -> TransportError {
        TransportError(Box::new(error))
    }
}

impl rmcp::transport::Transport<RoleClient> for AnyTransport {
    type Error = TransportError;

    fn name() -> std::borrow::Cow<'static, str> {
        "MCP".into()
    }

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send + 'static {
        use futures::TryFutureExt as _;
        use futures::future::Either;
        match self {
            AnyTransport::Stdio(t) => Either::Left(t.send(item).map_err(TransportError::new)),
            AnyTransport::Http(t) => Either::Right(t.send(item).map_err(TransportError::new)),
        }
    }

    async fn receive(&mut self) -> Option<rmcp::service::RxJsonRpcMessage<RoleClient>> {
        match self {
            AnyTransport::Stdio(t) => t.receive().await,
            AnyTransport::Http(t) => t.receive().await,
        }
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        match self {
            AnyTransport::Stdio(t) => t.close().await.map_err(TransportError::new),
            AnyTransport::Http(t) => t.close().await.map_err(TransportError::new),
        }
    }
}

/// Keeps one server connected until stopped.
struct Supervisor {
    store: Store,
    settings: McpSettings,
    config: McpServer,
    tx: watch::Sender<Conn>,
    stop: CancellationToken,
}

/// Why a connection attempt failed.
struct ConnectError {
    message: String,
    permanent: bool,
}

impl ConnectError {
    fn retry(message: impl Into<String>) -> ConnectError {
        ConnectError { message: message.into(), permanent: false }
    }
    fn permanent(message: impl Into<String>) -> ConnectError {
        ConnectError { message: message.into(), permanent: true }
    }
}

impl Supervisor {
    async fn run(self, tasks: Tasks) {
        let name = self.config.name.clone();
        let mut backoff = BACKOFF_FIRST;
        loop {
            let _ = self.tx.send(Conn::Connecting);
            let attempt = tokio::select! {
                () = self.stop.cancelled() => return,
                r = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(&tasks)) => r,
            };
            let attempt = attempt.unwrap_or_else(|_| {
                Err(ConnectError::retry(format!("connecting took longer than {} s", CONNECT_TIMEOUT.as_secs())))
            });
            match attempt {
                Ok((running, refresh)) => {
                    backoff = BACKOFF_FIRST;
                    match self.serve(running, refresh).await {
                        Served::Stopped => return,
                        Served::Lost(error) => {
                            tracing::warn!(server = %name, %error, "MCP server connection lost; reconnecting");
                            self.report("error", Some(error.clone()), None).await;
                            let _ = self.tx.send(Conn::Down { error, permanent: false });
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(server = %name, error = %e.message, "cannot connect to the MCP server");
                    self.report("error", Some(e.message.clone()), None).await;
                    let _ = self.tx.send(Conn::Down { error: e.message, permanent: e.permanent });
                    if e.permanent {
                        // A configuration problem: wait for an edit (which stops this slot).
                        self.stop.cancelled().await;
                        return;
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// A live connection: re-lists on `list_changed`, returns when it ends.
    async fn serve(&self, running: Running, refresh: Arc<Notify>) -> Served {
        let peer = running.peer().clone();
        let cancel = running.cancellation_token();
        let mut waiting = Box::pin(running.waiting());
        let publish = |tools: Vec<McpTool>| {
            let _ = self.tx.send(Conn::Ready { peer: peer.clone(), tools: Arc::new(tools) });
        };
        match list_tools(&peer).await {
            Ok(tools) => {
                tracing::info!(server = %self.config.name, tools = tools.len(), "MCP server ready");
                self.report("ready", None, Some(tools.clone())).await;
                publish(tools);
            }
            Err(error) => {
                cancel.cancel();
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut waiting).await;
                return Served::Lost(error);
            }
        }
        // Protocol 2026-07-28 sends list_changed only on a `subscriptions/listen`
        // stream; older servers send it unasked (to the handler). Try the former,
        // keep the latter.
        let filter = rmcp::model::SubscriptionFilter::builder().tools_list_changed().build();
        let mut subscription = match tokio::time::timeout(CLOSE_GRACE, peer.listen(filter)).await {
            Ok(Ok(sub)) if sub.acknowledged().tools_list_changed == Some(true) => Some(sub),
            Ok(Ok(_)) => None,
            Ok(Err(error)) => {
                tracing::debug!(server = %self.config.name, %error, "no subscriptions/listen: relying on plain notifications");
                None
            }
            Err(_) => None,
        };
        loop {
            let from_subscription = async {
                match subscription.as_mut() {
                    Some(sub) => sub.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = from_subscription => match n {
                    Ok(Some(rmcp::model::ServerNotification::ToolListChangedNotification(_))) => refresh.notify_one(),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => subscription = None,
                },
                quit = &mut waiting => {
                    return Served::Lost(match quit {
                        Ok(reason) => format!("the server closed the connection ({reason:?})"),
                        Err(e) => format!("the connection task failed: {e}"),
                    });
                }
                () = refresh.notified() => match list_tools(&peer).await {
                    Ok(tools) => {
                        tracing::info!(server = %self.config.name, tools = tools.len(), "MCP tool list changed");
                        self.report("ready", None, Some(tools.clone())).await;
                        publish(tools);
                    }
                    Err(error) => tracing::warn!(server = %self.config.name, %error, "cannot re-list MCP tools"),
                },
                () = self.stop.cancelled() => {
                    cancel.cancel();
                    if tokio::time::timeout(CLOSE_GRACE, &mut waiting).await.is_err() {
                        tracing::warn!(server = %self.config.name, "MCP connection did not close in time; dropping it");
                    }
                    return Served::Stopped;
                }
            }
        }
    }

    async fn report(&self, status: &'static str, last_error: Option<String>, tools: Option<Vec<McpTool>>) {
        let s = McpStatus { status, last_error, tools };
        if let Err(error) = self.store.record_mcp_status(self.config.id, self.config.revision, &s).await {
            tracing::warn!(server = %self.config.name, %error, "cannot record the MCP server's status");
        }
    }

    async fn connect(&self, tasks: &Tasks) -> Result<(Running, Arc<Notify>), ConnectError> {
        let refresh = Arc::new(Notify::new());
        let handler = Handler { refresh: refresh.clone() };
        let transport = match self.config.transport.as_str() {
            "stdio" => AnyTransport::Stdio(self.spawn_child(tasks)?),
            _ => AnyTransport::Http(self.http_transport().await?),
        };
        let running = handler.serve(transport).await.map_err(|e| ConnectError::retry(format!("initialize: {e}")))?;
        Ok((running, refresh))
    }

    fn spawn_child(&self, tasks: &Tasks) -> Result<rmcp::transport::TokioChildProcess, ConnectError> {
        if !self.settings.stdio_allowed {
            return Err(ConnectError::permanent(
                "stdio MCP servers are disabled on this worker (MCP_STDIO_ALLOWED=false)",
            ));
        }
        let program = self.config.command.as_deref().map(str::trim).unwrap_or("");
        if program.is_empty() {
            return Err(ConnectError::permanent("the server has no command"));
        }
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.config.args).env_clear().kill_on_drop(true);
        for var in BASE_ENV {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        // The configured names: read from the worker's environment now (the
        // API holds names only; values never leave this process but to the child).
        for var in &self.config.env {
            match std::env::var_os(var) {
                Some(v) => {
                    cmd.env(var, v);
                }
                None => {
                    return Err(ConnectError::permanent(format!(
                        "environment variable {var} (listed in env) is not set on this worker"
                    )));
                }
            }
        }
        let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
        wrapped.wrap(process_wrap::tokio::ProcessGroup::leader()).wrap(process_wrap::tokio::KillOnDrop);
        let (child, stderr) = rmcp::transport::TokioChildProcess::builder(wrapped)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| ConnectError::retry(format!("cannot start {program:?}: {e}")))?;
        if let Some(stderr) = stderr {
            let server = self.config.name.clone();
            tasks.spawn(async move {
                use tokio::io::AsyncBufReadExt as _;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(server = %server, line = %line.chars().take(500).collect::<String>(), "MCP server stderr");
                }
            });
        }
        Ok(child)
    }

    async fn http_transport(
        &self,
    ) -> Result<rmcp::transport::StreamableHttpClientTransport<reqwest::Client>, ConnectError> {
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        let raw = self.config.url.as_deref().unwrap_or("");
        let url = arvis_shared::net::parse_http_url(raw).map_err(ConnectError::permanent)?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .user_agent(concat!("arvis/", env!("CARGO_PKG_VERSION"), " (mcp)"));
        // The http_fetch guard: resolve, check every address, connect only to those.
        let addrs = arvis_shared::net::resolve_checked(&url, self.settings.allow_private)
            .await
            .map_err(|e| ConnectError { permanent: e.starts_with("refusing"), message: e })?;
        if let Some(host) = url.host_str()
            && host.parse::<std::net::IpAddr>().is_err()
            && !host.starts_with('[')
        {
            builder = builder.resolve_to_addrs(host, &addrs);
        }
        let client = builder.build().map_err(|e| ConnectError::retry(format!("HTTP client: {e}")))?;
        let mut headers = HashMap::new();
        for (name, var) in &self.config.headers {
            let value = std::env::var(var).map_err(|_| {
                ConnectError::permanent(format!(
                    "environment variable {var} (for header {name}) is not set on this worker"
                ))
            })?;
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ConnectError::permanent(format!("header {name}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(&value)
                .map_err(|_| ConnectError::permanent(format!("the value of {var} is not a valid header value")))?;
            headers.insert(name, value);
        }
        let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(headers);
        Ok(rmcp::transport::StreamableHttpClientTransport::with_client(client, config))
    }
}

enum Served {
    Stopped,
    Lost(String),
}

async fn list_tools(peer: &Peer<RoleClient>) -> Result<Vec<McpTool>, String> {
    let tools = tokio::time::timeout(CONNECT_TIMEOUT, peer.list_all_tools())
        .await
        .map_err(|_| "tools/list timed out".to_string())?
        .map_err(|e| format!("tools/list: {e}"))?;
    Ok(tools
        .into_iter()
        .map(|t| McpTool {
            name: t.name.to_string(),
            description: t.description.map(|d| d.to_string()).unwrap_or_default(),
            input_schema: Value::Object((*t.input_schema).clone()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_names_are_safe_unique_and_stable() {
        let ok = |n: &str| {
            n.len() <= 64
                && n.starts_with(|c: char| c.is_ascii_alphabetic())
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        assert_eq!(wire_name("everything", "echo", &[]), "mcp_everything_echo");
        let dotted = wire_name("fs", "read.file", &[]);
        assert!(ok(&dotted) && dotted.starts_with("mcp_fs_read_file_"), "{dotted}");
        assert_ne!(dotted, wire_name("fs", "read_file", &[]));
        let long = wire_name(&"s".repeat(32), &"t".repeat(100), &[]);
        assert!(ok(&long), "{long}");
        let taken = vec!["mcp_a_b".to_string()];
        let second = wire_name("a", "b", &taken);
        assert!(ok(&second) && second != "mcp_a_b");
        assert_eq!(wire_name("fs", "read.file", &[]), dotted);
    }

    #[test]
    fn results_become_text_and_are_capped() {
        let r = json!({"content": [{"type": "text", "text": "one"}, {"type": "image", "data": "…"}, {"type": "text", "text": "two"}]});
        assert_eq!(result_text(&r, 1000), "one\n[image content omitted]\ntwo");
        let r = json!({"content": [], "structuredContent": {"sum": 3}});
        assert_eq!(result_text(&r, 1000), "{\"sum\":3}");
        let r = json!({"content": [{"type": "text", "text": "é".repeat(1000)}]});
        let t = result_text(&r, 301);
        assert!(t.starts_with(&"é".repeat(150)) && t.contains("truncated: the result was 2000 bytes"), "{t}");
    }
}
