//! One fault scenario per file; each returns its [`Outcome`](super::Outcome).

use super::*;

mod bridge_kill;
mod effects_kill;
mod kill_worker;
mod nats_outage;
mod postgres_restart;
mod provider_chaos;
mod scheduler_kill;
mod secrets_in_logs;
mod sigterm_all;

pub use bridge_kill::bridge_kill;
pub use effects_kill::effects_kill;
pub use kill_worker::kill_worker;
pub use nats_outage::nats_outage;
pub use postgres_restart::postgres_restart;
pub use provider_chaos::provider_chaos;
pub use scheduler_kill::scheduler_kill;
pub use secrets_in_logs::secrets_in_logs;
pub use sigterm_all::sigterm_all;
