//! Test support for the whole workspace, and (under `tests/`) the suite that
//! exercises the services together.
//!
//! - [`TestDb`]: a fresh database per test — a SQLite file in a temp dir, or a
//!   freshly created Postgres database (dropped afterwards) on the machine's
//!   server (`TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`).
//! - [`NatsServer`]: a private `nats-server` on a free port, killed on drop, so a
//!   test can also stop and restart it.
//! - [`TestApp`]: the services running in-process on port-0 listeners, with a
//!   typed HTTP client.
//! - [`MockLlm`]: a loopback LLM provider (OpenAI, Anthropic, Gemini wire formats) scripted per test.
//! - [`fake_telegram`]: a loopback Telegram Bot API (long polling, 429 with retry_after, 409 on a second poller).
//! - [`fake_discord`]: a loopback Discord (a real WebSocket gateway with RESUME replay, op 7/9, close codes; REST with 429s).
//! - [`fake_matrix`]: a loopback Matrix homeserver (sync with real since/next_batch tokens, invites, idempotent txnIds, 429s, dropped syncs).
//! - [`fake_slack`]: a loopback Slack (Web API with 429s; Socket Mode with acks, redelivery and refresh).
//! - [`fake_whatsapp`]: a loopback WhatsApp Cloud API (Graph sends with 429/500s; webhooks signed as Meta signs them).
//! - [`fake_twilio`]: a loopback Twilio (Messages.json with 429/500s; inbound SMS signed as Twilio signs them).
//! - [`mail`]: a private Dovecot (IMAP, IDLE; mail delivered into its Maildir) and an aiosmtpd SMTP receiver (AUTH, 4xx/5xx on demand).
//! - [`dashboard`]: fetch dashboard pages as HTML, assert on them, seed 10 000 rows fast.
//! - [`process`]: a service binary in its own process, stopped with SIGTERM.
//! - [`send_failures`]: the failures the REST platform fakes (WhatsApp, Twilio) answer sends with.
//! - [`harness`]: free ports, child processes killed on drop, scratch and private
//!   Postgres — shared by `process`, the `faults` suite and the `loadgen` benchmarks.
//! - [`both_backends!`]: writes one test twice, for SQLite and for Postgres.

// Test support: failing loudly on broken set-up is the point here.
#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod dashboard;
pub mod db;
pub mod fake_discord;
pub mod fake_matrix;
pub mod fake_slack;
pub mod fake_telegram;
pub mod fake_twilio;
pub mod fake_whatsapp;
pub mod harness;
pub mod mail;
pub mod mock_llm;
pub mod nats;
pub mod process;
pub mod send_failures;

pub use app::{Bridge, TestApp, TestAppBuilder, events_until_final};
pub use db::{Backend, TestDb};
pub use fake_telegram::FakeTelegram;
pub use mock_llm::{Chaos, MockLlm, MockReply};
pub use nats::NatsServer;

/// Runs the same async test body on SQLite and on Postgres:
/// `both_backends!(name, |backend| async move { … });`
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::Backend::Postgres).await
            }
        }
    };
}

/// Logs to the test output when `TEST_LOG` is set; silent otherwise.
pub fn init_test_logging() {
    arvis_shared::install_crypto_provider();
    if std::env::var_os("TEST_LOG").is_some() {
        arvis_shared::telemetry::init(arvis_shared::config::LogFormat::Pretty);
    }
}
