//! Fan-out: one bus subscription per bridge, dispatched in process to the
//! sockets joined on each channel.
//!
//! The bridge subscribes once to every web reply (`arvis.reply.web.*`), however
//! many sockets it holds, and keeps a map channel → sockets. Each event is
//! encoded once and handed to every socket on its channel with a non-blocking
//! `try_send` into that socket's bounded queue, so one slow client never
//! delays the others or the subscription itself (a stalled subscription is
//! what makes NATS drop messages, PITFALLS.md). A socket whose queue is full is
//! disconnected as a slow consumer (close 1008); it can reconnect and `resume`
//! from the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arvis_shared::bus::Subscription;
use arvis_shared::bus::events::ReplyEvent;
use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::protocol;

/// The platform the bridge's chats are stored and addressed under.
pub const PLATFORM: &str = "web";

/// Close codes the bridge uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const UNAUTHORIZED: u16 = 4001;
}

/// Why a socket is being closed (first reason wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

pub const SLOW_CONSUMER: CloseReason =
    CloseReason { code: close::POLICY, reason: "slow consumer: outgoing buffer full" };

/// The part of a session the fan-out (and the session's own reader) write to.
#[derive(Debug)]
pub struct SessionHandle {
    pub id: u64,
    tx: mpsc::Sender<Utf8Bytes>,
    /// Fired to close the socket; the writer sends the Close frame.
    pub kill: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl SessionHandle {
    pub fn new(id: u64, tx: mpsc::Sender<Utf8Bytes>) -> SessionHandle {
        SessionHandle { id, tx, kill: CancellationToken::new(), reason: OnceLock::new() }
    }

    /// Queues a frame without waiting; a full queue disconnects the client.
    pub fn offer(&self, frame: Utf8Bytes) {
        match self.tx.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.kill.is_cancelled() {
                    tracing::info!(session = self.id, "disconnecting a slow consumer");
                }
                self.close(SLOW_CONSUMER);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues a frame, waiting for room at most `patience`; a client that does
    /// not read for that long is disconnected as a slow consumer.
    pub async fn send(&self, frame: Utf8Bytes, patience: std::time::Duration) {
        tokio::select! {
            r = tokio::time::timeout(patience, self.tx.send(frame)) => {
                if r.is_err() {
                    self.close(SLOW_CONSUMER);
                }
            }
            () = self.kill.cancelled() => {}
        }
    }

    /// Asks the writer to close the socket with `reason` (the first reason wins).
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.kill.cancel();
    }

    pub fn close_reason(&self) -> CloseReason {
        self.reason.get().copied().unwrap_or(CloseReason { code: close::NORMAL, reason: "" })
    }
}

/// Channel → sockets joined on it.
#[derive(Debug, Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, HashMap<u64, Arc<SessionHandle>>>>,
}

impl Hub {
    pub fn join(&self, channel_id: &str, session: &Arc<SessionHandle>) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.entry(channel_id.to_string()).or_default().insert(session.id, session.clone());
        }
    }

    pub fn leave(&self, channel_id: &str, session_id: u64) {
        if let Ok(mut channels) = self.channels.lock()
            && let Some(sockets) = channels.get_mut(channel_id)
        {
            sockets.remove(&session_id);
            if sockets.is_empty() {
                channels.remove(channel_id);
            }
        }
    }

    /// Hands `frame` to every socket on `channel_id`; returns how many.
    pub fn deliver(&self, channel_id: &str, frame: &Utf8Bytes) -> usize {
        let Ok(channels) = self.channels.lock() else { return 0 };
        let Some(sockets) = channels.get(channel_id) else { return 0 };
        for s in sockets.values() {
            s.offer(frame.clone());
        }
        sockets.len()
    }

    /// Channels with at least one socket.
    pub fn channel_count(&self) -> usize {
        self.channels.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// Reads the bridge's subscription until shutdown, dispatching each reply event.
pub async fn run(mut subscription: Subscription, hub: Arc<Hub>, shutdown: CancellationToken) {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            m = subscription.next() => m,
        };
        let Some(message) = message else {
            if !shutdown.is_cancelled() {
                tracing::warn!("the bus closed the reply subscription; live replies stop until restart");
            }
            break;
        };
        let Some(event) = message.decode::<ReplyEvent>() else { continue };
        if event.platform != PLATFORM {
            continue;
        }
        let delivered = hub.deliver(&event.channel_id, &protocol::reply(&event));
        tracing::trace!(channel = %event.channel_id, kind = ?event.kind, delivered, "reply event");
    }
}
