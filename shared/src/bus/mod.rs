//! The bus: signals between processes. NATS (async-nats) when `NATS_URL` is
//! set, an in-process bus otherwise (the launcher on one machine).
//!
//! The bus never carries the only copy of anything: jobs, messages and replies
//! are in the database first, and a signal only says "look now". A consumer
//! that misses a signal (bus down, slow consumer) finds the work on its next
//! database poll. That is why both implementations may drop messages under
//! overload rather than grow without bound.
//!
//! Subjects are built in [`subjects`]; payloads are the versioned structs of
//! [`events`], published with [`Bus::publish`] and read with [`Message::decode`].

pub mod events;
mod local;
pub mod subjects;

use bytes::Bytes;
use futures::StreamExt as _;

pub use events::Event;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus publish failed: {0}")]
    Publish(String),
    #[error("bus subscribe failed: {0}")]
    Subscribe(String),
    #[error("bus flush failed: {0}")]
    Flush(String),
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    pub payload: Bytes,
}

impl Message {
    /// Decodes the payload as `E`; `None` (logged) for a payload that does not parse,
    /// e.g. from a newer version of a peer.
    pub fn decode<E: Event>(&self) -> Option<E> {
        match serde_json::from_slice(&self.payload) {
            Ok(e) => Some(e),
            Err(error) => {
                tracing::warn!(subject = %self.subject, %error, "ignoring an undecodable bus message");
                None
            }
        }
    }
}

/// A handle to the bus; cheap to clone.
#[derive(Clone, Debug)]
pub enum Bus {
    Nats(async_nats::Client),
    Local(local::LocalBus),
}

/// A live subscription; dropping it unsubscribes.
pub enum Subscription {
    Nats(async_nats::Subscriber),
    Local(local::LocalSubscription),
}

impl Subscription {
    /// The next message, or `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<Message> {
        match self {
            Subscription::Nats(s) => {
                s.next().await.map(|m| Message { subject: m.subject.to_string(), payload: m.payload })
            }
            Subscription::Local(s) => s.next().await,
        }
    }
}

impl Bus {
    /// Connects to NATS. The client reconnects by itself after an outage; while
    /// it is away, publishes fail or are buffered and consumers rely on polling.
    pub async fn connect_nats(url: &str) -> Result<Bus, async_nats::ConnectError> {
        let client = async_nats::ConnectOptions::new()
            .name("arvis")
            .retry_on_initial_connect()
            .connection_timeout(std::time::Duration::from_secs(5))
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection event");
            })
            .connect(url)
            .await?;
        Ok(Bus::Nats(client))
    }

    /// A bus inside this process only (the launcher without `NATS_URL`).
    pub fn local() -> Bus {
        Bus::Local(local::LocalBus::default())
    }

    pub fn is_nats(&self) -> bool {
        matches!(self, Bus::Nats(_))
    }

    /// Publishes raw bytes on a subject.
    pub async fn publish_raw(&self, subject: String, payload: Bytes) -> Result<(), BusError> {
        match self {
            Bus::Nats(c) => c.publish(subject, payload).await.map_err(|e| BusError::Publish(e.to_string())),
            Bus::Local(l) => {
                l.publish(&subject, payload);
                Ok(())
            }
        }
    }

    /// Publishes a typed event on its own subject.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<(), BusError> {
        let payload = serde_json::to_vec(event)?;
        self.publish_raw(event.subject(), Bytes::from(payload)).await
    }

    /// Publishes and logs a failure instead of returning it: for signals whose
    /// loss only delays work (the database poll picks it up).
    pub async fn signal<E: Event>(&self, event: &E) {
        if let Err(error) = self.publish(event).await {
            tracing::warn!(%error, subject = %event.subject(), "bus signal not sent; pollers will pick the work up");
        }
    }

    /// Subscribes to a subject (NATS wildcards `*` and `>` work on both buses).
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        match self {
            Bus::Nats(c) => c
                .subscribe(subject.to_string())
                .await
                .map(Subscription::Nats)
                .map_err(|e| BusError::Subscribe(e.to_string())),
            Bus::Local(l) => Ok(Subscription::Local(l.subscribe(subject, None))),
        }
    }

    /// Subscribes as a member of a queue group: each message goes to one member.
    pub async fn queue_subscribe(&self, subject: &str, group: &str) -> Result<Subscription, BusError> {
        match self {
            Bus::Nats(c) => c
                .queue_subscribe(subject.to_string(), group.to_string())
                .await
                .map(Subscription::Nats)
                .map_err(|e| BusError::Subscribe(e.to_string())),
            Bus::Local(l) => Ok(Subscription::Local(l.subscribe(subject, Some(group)))),
        }
    }

    /// Makes sure earlier subscriptions are registered with the server before a
    /// peer publishes (a round trip on NATS; nothing to do in process).
    pub async fn flush(&self) -> Result<(), BusError> {
        match self {
            Bus::Nats(c) => c.flush().await.map_err(|e| BusError::Flush(e.to_string())),
            Bus::Local(_) => Ok(()),
        }
    }

    /// True when the bus can carry messages right now.
    pub fn is_connected(&self) -> bool {
        match self {
            Bus::Nats(c) => c.connection_state() == async_nats::connection::State::Connected,
            Bus::Local(_) => true,
        }
    }

    /// Sends what is buffered, waiting at most `timeout` (shutdown). A flush
    /// waits for the server, so without the bound an unreachable server would
    /// hold the process forever; what is lost then is only signals.
    pub async fn close(&self, timeout: std::time::Duration) {
        if let Bus::Nats(c) = self {
            match tokio::time::timeout(timeout, c.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "nats flush at shutdown failed"),
                Err(_) => tracing::warn!("nats did not take the last signals in time (is the server reachable?)"),
            }
        }
    }
}
