//! Slack (stub while being written).
use arvis_shared::db::outbox::DueDelivery;
use secrecy::SecretString;

use super::BotCtx;
use super::outbox::{Outbound, SendError};

pub struct Slack;
impl Slack {
    pub fn new(_ctx: &BotCtx, _app: SecretString) -> Slack {
        Slack
    }
    pub async fn run(&self, ctx: &BotCtx) {
        ctx.lease.lost.cancelled().await
    }
}
impl Outbound for Slack {
    fn limit(&self) -> usize {
        4000
    }
    async fn send(&self, _d: &DueDelivery) -> Result<Option<String>, SendError> {
        Err(SendError::Transient("todo".into()))
    }
    async fn typing(&self, _c: &str) {}
}
