//! Tracing set-up shared by every binary: readable logs by default, one JSON
//! object per line with `LOG_FORMAT=json`; the level comes from `RUST_LOG`
//! (default `info`). Secrets never reach a log line: configuration values that
//! hold secrets are `SecretString`s whose `Debug` is redacted. INFO+ events also
//! go to the database for `GET /api/logs` once a writer runs (see [`crate::logs`]).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Installs the global subscriber. Calling it twice is harmless (the second call
/// is ignored), which keeps tests that start several services simple.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // async-imap traces every command it writes, LOGIN with its password
    // included: that target stays off whatever RUST_LOG says (the more
    // specific directive wins over `async_imap=trace`).
    let filter = match "async_imap::imap_stream=off".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    };
    let registry = tracing_subscriber::registry().with(filter).with(crate::logs::DbLogLayer);
    let _ = match format {
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json().flatten_event(true)).try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
}
