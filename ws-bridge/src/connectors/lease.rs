//! A bot's lease as its holder keeps it ([`arvis_shared::db::bot_leases`]):
//! renewed every third of its time to live; lost when a renewal is refused
//! (another bridge took the bot after we were paused) or when renewals kept
//! failing until the lease ran out locally. Losing it cancels [`Lease::lost`],
//! which ends the bot's platform session, sender and reply watcher.
//!
//! Besides the epoch check in the database, the holder stops acting a safety
//! margin (a fifth of the time to live) before its own expiry: a send that
//! cannot be fenced by the database (a message to a platform) is not started
//! by a holder whose lease may already belong to someone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arvis_shared::clock::now_ms;
use arvis_shared::db::Store;
use arvis_shared::db::bot_leases::Held;
use tokio_util::sync::CancellationToken;

pub struct Lease {
    store: Store,
    pub bot_id: i64,
    holder: Arc<str>,
    pub epoch: i64,
    ttl_ms: i64,
    expires_at: AtomicI64,
    /// The cursor the previous holder left.
    pub cursor: Option<String>,
    /// Cancelled when the lease is lost or given up.
    pub lost: CancellationToken,
}

impl Lease {
    pub fn new(store: Store, holder: Arc<str>, ttl_ms: i64, held: Held, parent: &CancellationToken) -> Lease {
        Lease {
            store,
            bot_id: held.bot_id,
            holder,
            epoch: held.epoch,
            ttl_ms,
            expires_at: AtomicI64::new(held.expires_at),
            cursor: held.cursor,
            lost: parent.child_token(),
        }
    }

    /// Still ours, with the safety margin.
    pub fn valid(&self) -> bool {
        !self.lost.is_cancelled() && now_ms() + self.ttl_ms / 5 < self.expires_at.load(Ordering::Relaxed)
    }

    /// Renews until the lease is lost or [`Lease::lost`] is cancelled.
    pub async fn keep(&self) {
        let every = Duration::from_millis((self.ttl_ms / 3).max(100) as u64);
        loop {
            tokio::select! {
                () = self.lost.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match self.store.renew_bot_lease(self.bot_id, &self.holder, self.epoch, self.ttl_ms).await {
                Ok(Some(t)) => self.expires_at.store(t, Ordering::Relaxed),
                Ok(None) => {
                    tracing::warn!(bot_id = self.bot_id, epoch = self.epoch, "lost the bot's lease to another bridge");
                    self.lost.cancel();
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, bot_id = self.bot_id, "cannot renew the bot's lease");
                    if !self.valid() {
                        self.lost.cancel();
                        return;
                    }
                }
            }
        }
    }

    /// Stores the resume cursor under the lease; a refusal means the lease is gone.
    pub async fn write_cursor(&self, cursor: &str) -> bool {
        match self.store.write_bot_cursor(self.bot_id, &self.holder, self.epoch, cursor).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(bot_id = self.bot_id, "cursor write refused: the lease belongs to another bridge now");
                self.lost.cancel();
                false
            }
            Err(error) => {
                tracing::warn!(%error, bot_id = self.bot_id, "cannot store the bot's cursor");
                false
            }
        }
    }

    /// Reports the bot's state on its row (`running` | `stopped` | `error`).
    pub async fn report(&self, status: &str, last_error: Option<&str>) {
        if let Err(error) = self.store.set_bot_status(self.bot_id, &self.holder, self.epoch, status, last_error).await {
            tracing::warn!(%error, bot_id = self.bot_id, "cannot record the bot's status");
        }
    }

    /// Gives the lease up so that another bridge can take the bot at once.
    pub async fn release(&self) {
        self.lost.cancel();
        if let Err(error) = self.store.release_bot_lease(self.bot_id, &self.holder, self.epoch).await {
            tracing::warn!(%error, bot_id = self.bot_id, "cannot release the bot's lease; it expires by itself");
        }
    }
}
