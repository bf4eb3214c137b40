//! Recent log lines in the database, for `GET /api/logs`.
//!
//! [`DbLogLayer`] is part of the subscriber [`crate::telemetry::init`] installs:
//! events at INFO and above are handed to a bounded channel with `try_send`
//! (dropped when full or when no writer runs — logging never blocks or fails).
//! [`start_writer`] — every process runs one, started by
//! [`crate::Deps::connect`], so the worker's job lines, the scheduler's and the
//! bridge's reach `GET /api/logs` in the split topology as the gateway's do —
//! drains the channel, inserts in batches (every 500 ms or 200 lines) and
//! prunes the table to the newest `LOG_RETENTION_ROWS` lines (default 10 000)
//! once a minute. Lines are those `RUST_LOG` lets through, at INFO and above.
//!
//! The channel's sender is a process-wide slot that the writer fills, so the
//! layer can be installed before the database exists, and tests that never
//! install the global subscriber are unaffected.

use std::sync::RwLock;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::clock::now_ms;
use crate::db::Store;
use crate::domain::logs::NewLogRow;

const CHANNEL_CAPACITY: usize = 10_000;
const BATCH_ROWS: usize = 200;
const BATCH_INTERVAL: Duration = Duration::from_millis(500);
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Longest stored message / field value, in characters.
const MAX_TEXT: usize = 4_000;

static SINK: RwLock<Option<mpsc::Sender<NewLogRow>>> = RwLock::new(None);

fn set_sink(sender: Option<mpsc::Sender<NewLogRow>>) {
    if let Ok(mut slot) = SINK.write() {
        *slot = sender;
    }
}

/// The tracing layer that feeds the database writer.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbLogLayer;

/// `arvis_worker::…` → `worker`, and so on.
pub fn service_of(target: &str) -> &'static str {
    let krate = target.split("::").next().unwrap_or(target);
    match krate {
        "arvis_gateway" => "gateway",
        "arvis_worker" => "worker",
        "arvis_scheduler" => "scheduler",
        "arvis_ws_bridge" => "ws-bridge",
        "arvis_shared" => "shared",
        _ => "arvis",
    }
}

fn clip(mut s: String) -> String {
    if s.chars().count() > MAX_TEXT {
        s = s.chars().take(MAX_TEXT).collect();
    }
    s.replace('\0', "")
}

#[derive(Default)]
struct Fields {
    msg: String,
    agent_id: Option<i64>,
    job_id: Option<i64>,
    duration_ms: Option<i64>,
    other: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    fn number(&mut self, field: &Field, n: i64) -> bool {
        match field.name() {
            "agent_id" => self.agent_id = Some(n),
            "job_id" => self.job_id = Some(n),
            "duration_ms" => self.duration_ms = Some(n),
            _ => return false,
        }
        true
    }
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.number(field, value) {
            self.other.insert(field.name().into(), value.into());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.number(field, i64::try_from(value).unwrap_or(i64::MAX)) {
            self.other.insert(field.name().into(), value.into());
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.other.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = clip(value.to_string());
        } else if let Ok(n) = value.parse::<i64>()
            && self.number(field, n)
        {
        } else {
            self.other.insert(field.name().into(), clip(value.to_string()).into());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.msg = clip(text);
        } else if let Ok(n) = text.parse::<i64>()
            && self.number(field, n)
        {
        } else {
            self.other.insert(field.name().into(), clip(text).into());
        }
    }
}

impl<S: Subscriber> Layer<S> for DbLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // More verbose levels compare greater in tracing.
        if *meta.level() > Level::INFO {
            return;
        }
        let target = meta.target();
        // The database driver's own lines and this module's would loop back here.
        if target.starts_with("sqlx") || target.starts_with("arvis_shared::logs") {
            return;
        }
        let Ok(slot) = SINK.read() else { return };
        let Some(sender) = slot.as_ref() else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => "info",
        };
        let row = NewLogRow {
            level: level.into(),
            service: service_of(target).into(),
            target: clip(target.to_string()),
            msg: fields.msg,
            fields: serde_json::Value::Object(fields.other).to_string(),
            agent_id: fields.agent_id,
            job_id: fields.job_id,
            duration_ms: fields.duration_ms,
            created_at: now_ms(),
        };
        // Full: drop the line rather than block the caller.
        let _ = sender.try_send(row);
    }
}

/// Starts the task that writes queued log lines to the database, until
/// `shutdown` fires (then it flushes what is queued). Any of the `redact`
/// values (the configured secrets) that shows up in a line is replaced by
/// `[REDACTED]` before it is stored — a second line of defence; secrets are
/// not logged in the first place.
pub fn start_writer(
    tasks: &crate::shutdown::Tasks,
    store: Store,
    redact: Vec<String>,
    keep_rows: i64,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    set_sink(Some(tx));
    let redact: Vec<String> = redact.into_iter().filter(|s| s.len() >= 4).collect();
    tasks.spawn(write_loop(store, redact, keep_rows, rx, shutdown))
}

async fn write_loop(
    store: Store,
    redact: Vec<String>,
    keep_rows: i64,
    mut rx: mpsc::Receiver<NewLogRow>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<NewLogRow> = Vec::with_capacity(BATCH_ROWS);
    let mut tick = tokio::time::interval(BATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            line = rx.recv() => match line {
                Some(line) => {
                    batch.push(scrub(line, &redact));
                    if batch.len() >= BATCH_ROWS {
                        flush(&store, &mut batch).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => flush(&store, &mut batch).await,
            _ = prune.tick() => {
                if let Err(e) = store.prune_logs(keep_rows).await {
                    tracing::debug!(error = %e, "pruning the logs table failed");
                }
            }
        }
    }
    while let Ok(line) = rx.try_recv() {
        batch.push(scrub(line, &redact));
    }
    flush(&store, &mut batch).await;
}

fn scrub(mut line: NewLogRow, redact: &[String]) -> NewLogRow {
    for secret in redact {
        if line.msg.contains(secret.as_str()) {
            line.msg = line.msg.replace(secret.as_str(), "[REDACTED]");
        }
        if line.fields.contains(secret.as_str()) {
            line.fields = line.fields.replace(secret.as_str(), "[REDACTED]");
        }
    }
    line
}

async fn flush(store: &Store, batch: &mut Vec<NewLogRow>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.insert_logs(batch).await {
        tracing::debug!(error = %e, lines = batch.len(), "writing log lines failed; dropped");
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn events_become_rows_with_their_fields() {
        let (tx, mut rx) = mpsc::channel(10);
        set_sink(Some(tx));
        let subscriber = tracing_subscriber::registry().with(DbLogLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "arvis_worker::run", agent_id = 2, job_id = 42u64, duration_ms = 1200, model = "m", "Job completed");
            tracing::debug!("not stored");
            tracing::warn!(target: "sqlx::query", "not stored either");
        });
        set_sink(None);
        let row = rx.try_recv().unwrap();
        assert_eq!(row.level, "info");
        assert_eq!(row.msg, "Job completed");
        assert_eq!(row.service, "worker");
        assert_eq!((row.agent_id, row.job_id, row.duration_ms), (Some(2), Some(42), Some(1200)));
        assert!(row.fields.contains("\"model\""));
        assert!(rx.try_recv().is_err());
    }
}
