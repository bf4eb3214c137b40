//! One WebSocket connection: a reader (this task) and a writer task.
//!
//! The writer owns the socket's sending half and a bounded queue of encoded
//! frames; everything that talks to the client (this session's replies, the
//! fan-out's reply events) goes through that queue. The writer ends on the
//! shutdown token (Close 1001), on the session's kill token (Close with the
//! recorded reason: 1008 slow consumer or abuse, 4001 unauthorized, …) or
//! when the reader is done. The reader parses frames, enforces the limits and
//! runs the commands: auth, message (route → store → ack → JobReady), resume,
//! ping.
//!
//! Per-connection state is small on purpose (no per-socket buffers beyond the
//! queue and tungstenite's configured buffers): a bridge should hold tens of
//! thousands of idle sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arvis_shared::domain::limits::check_id;
use arvis_shared::intake::{Incoming, IntakeError};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;

use crate::Ctx;
use crate::fanout::{CloseReason, SessionHandle, close};
use crate::protocol::{self, Ack, ClientFrame};

/// Frames queued for one client before it counts as a slow consumer.
pub const OUTGOING_QUEUE: usize = 256;
/// How long an unauthenticated connection has to send its `auth` frame.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Refused frames (over the rate) tolerated before the client is disconnected.
const MAX_RATE_STRIKES: u32 = 40;
/// Channels one socket may listen on (its own plus those it sent to or resumed).
const MAX_CHANNELS: usize = 16;
/// Stored messages one `resume` replays at most.
const RESUME_LIMIT: i64 = 500;
/// How long a session-originated frame may wait for room in the queue.
const SEND_PATIENCE: Duration = Duration::from_secs(10);
/// The writer pings every socket this often; clients answer with a pong (browsers
/// and WebSocket libraries do it on their own), so a live connection is never silent long.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// A connection that sent nothing — not even a pong — for this long is dead
/// (a vanished peer would otherwise hold its socket until TCP gives up).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the Close frame may take to go out before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing session waits for the client's Close in return.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

const UNAUTHORIZED: CloseReason = CloseReason { code: close::UNAUTHORIZED, reason: "unauthorized" };
const RATE_ABUSE: CloseReason = CloseReason { code: close::POLICY, reason: "rate limit exceeded" };
const IDLE: CloseReason = CloseReason { code: close::GOING_AWAY, reason: "idle timeout" };
const TOO_BIG: CloseReason = CloseReason { code: close::TOO_BIG, reason: "message too big" };

/// Serves one upgraded socket until it closes. `authenticated` says whether the
/// upgrade request already carried valid credentials (or none are required).
pub async fn serve(socket: WebSocket, ctx: Arc<Ctx>, authenticated: bool) {
    let id = ctx.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
    let handle = Arc::new(SessionHandle::new(id, tx));
    let writer = ctx.tracker.spawn(write_loop(sink, rx, handle.clone(), ctx.shutdown.clone()));
    let client_id = uuid::Uuid::new_v4().to_string();
    let mut session = Session {
        default_channel: format!("web-{client_id}"),
        client_id,
        ctx: ctx.clone(),
        handle: handle.clone(),
        authenticated,
        user_id: None,
        user_name: None,
        channels: Vec::new(),
        bucket: Bucket::new(f64::from(ctx.deps.config.ws_frames_per_sec)),
    };
    let first = session.default_channel.clone();
    session.join(&first);
    session.read_loop(&mut stream).await;
    for channel in &session.channels {
        ctx.hub.leave(channel, id);
    }
    handle.close(CloseReason { code: close::NORMAL, reason: "" });
    // The closing handshake: read (and drop) what the client still sends until
    // its Close answers ours. Closing a socket with unread input makes the
    // kernel reset the connection, and the client then loses the frames (the
    // error that explains the close, pongs) already sent to it.
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    let _ = writer.await;
}

struct Session {
    client_id: String,
    ctx: Arc<Ctx>,
    handle: Arc<SessionHandle>,
    authenticated: bool,
    user_id: Option<String>,
    user_name: Option<String>,
    /// Where messages without a `channelId` go (`web-<clientId>` unless set by `auth`).
    default_channel: String,
    /// Channels this socket receives replies for.
    channels: Vec<String>,
    bucket: Bucket,
}

impl Session {
    async fn read_loop(&mut self, stream: &mut futures::stream::SplitStream<WebSocket>) {
        let auth_deadline = tokio::time::sleep(AUTH_TIMEOUT);
        tokio::pin!(auth_deadline);
        let idle = tokio::time::sleep(IDLE_TIMEOUT);
        tokio::pin!(idle);
        loop {
            let next = tokio::select! {
                biased;
                () = self.handle.kill.cancelled() => return,
                () = self.ctx.shutdown.cancelled() => return,
                () = &mut auth_deadline, if !self.authenticated => {
                    self.reply(protocol::error("authentication required: send {\"type\":\"auth\",\"apiKey\":…}")).await;
                    self.handle.close(UNAUTHORIZED);
                    return;
                }
                () = &mut idle => {
                    tracing::debug!(session = self.handle.id, "closing a silent connection");
                    self.handle.close(IDLE);
                    return;
                }
                m = stream.next() => m,
            };
            idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
            match next {
                None | Some(Ok(Message::Close(_))) => return,
                Some(Err(error)) => {
                    // Oversized frames end here (tungstenite refuses them); so do broken connections.
                    tracing::debug!(session = self.handle.id, %error, "websocket read failed");
                    let too_big = matches!(
                        error.into_inner().downcast_ref::<tokio_tungstenite::tungstenite::Error>(),
                        Some(tokio_tungstenite::tungstenite::Error::Capacity(_))
                    );
                    self.handle.close(if too_big { TOO_BIG } else { CloseReason { code: close::NORMAL, reason: "" } });
                    return;
                }
                // Control frames count against the rate too (each ping makes us write a pong).
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    self.admit().await;
                }
                Some(Ok(Message::Binary(_))) => {
                    if self.admit().await {
                        self.reply(protocol::error("binary frames are not supported: send JSON text frames")).await;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if self.admit().await {
                        self.on_text(text.as_str()).await;
                    }
                }
            }
        }
    }

    /// The rate limit: false (and an error frame, or a disconnect for sustained
    /// abuse) when the client sends faster than allowed.
    async fn admit(&mut self) -> bool {
        match self.bucket.take() {
            Admit::Yes => true,
            Admit::No => {
                let text = format!("rate limit: at most {} frames per second", self.ctx.deps.config.ws_frames_per_sec);
                self.reply(protocol::error(&text)).await;
                false
            }
            Admit::Abuse => {
                self.reply(protocol::error("rate limit exceeded repeatedly: disconnecting")).await;
                self.handle.close(RATE_ABUSE);
                false
            }
        }
    }

    async fn on_text(&mut self, text: &str) {
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err(e) => {
                if !self.authenticated {
                    return self.refuse().await;
                }
                return self.reply(protocol::error(&e.to_string())).await;
            }
        };
        if !self.authenticated && !frame.is_auth() {
            return self.refuse().await;
        }
        match frame {
            ClientFrame::Ping => self.reply(protocol::pong()).await,
            ClientFrame::Auth(a) => self.on_auth(a).await,
            ClientFrame::Message(m) => self.on_message(m).await,
            ClientFrame::Resume(r) => self.on_resume(r).await,
        }
    }

    async fn refuse(&mut self) {
        self.reply(protocol::error("unauthorized: a valid apiKey is required")).await;
        self.handle.close(UNAUTHORIZED);
    }

    async fn on_auth(&mut self, a: protocol::AuthFrame) {
        if self.ctx.key_required {
            match a.api_key.as_deref() {
                Some(given) if self.ctx.credentials.is_api_key(given) => self.authenticated = true,
                // Already authenticated by the upgrade request: identity only.
                None if self.authenticated => {}
                _ => return self.refuse().await,
            }
        } else {
            self.authenticated = true;
        }
        for (field, value) in [("userId", &a.user_id), ("userName", &a.user_name)] {
            if let Some(v) = value
                && let Err(e) = check_id(field, v)
            {
                return self.reply(protocol::error(&e.to_string())).await;
            }
        }
        if a.user_id.is_some() {
            self.user_id = a.user_id;
        }
        if a.user_name.is_some() {
            self.user_name = a.user_name;
        }
        if let Some(channel) = a.channel_id {
            if let Err(e) = check_id("channelId", &channel) {
                return self.reply(protocol::error(&e.to_string())).await;
            }
            if !self.join(&channel) {
                return self.reply(protocol::error("too many channels on one connection")).await;
            }
            self.default_channel = channel;
        }
        let user = self.user_id.clone().unwrap_or_else(|| self.client_id.clone());
        self.reply(protocol::auth_ok(&self.client_id, &user, &self.default_channel)).await;
    }

    async fn on_message(&mut self, m: protocol::MessageFrame) {
        let channel = m.channel_id.unwrap_or_else(|| self.default_channel.clone());
        if let Err(e) = check_id("channelId", &channel) {
            return self.reply(protocol::error(&e.to_string())).await;
        }
        let incoming = Incoming {
            platform: crate::fanout::PLATFORM.to_string(),
            channel_id: channel.clone(),
            user_id: Some(self.user_id.clone().unwrap_or_else(|| self.client_id.clone())),
            user_name: Some(self.user_name.clone().unwrap_or_else(|| "Web User".into())),
            content: m.content,
            agent_id: m.agent_id,
            is_dm: true,
            external_id: None,
            api: None,
        };
        // Joined before the message is stored, so its reply events reach this socket.
        if !self.join(&channel) {
            return self.reply(protocol::error("too many channels on one connection")).await;
        }
        let accepted = match self.ctx.intake.accept(incoming).await {
            Ok(a) => a,
            Err(e) => {
                if let IntakeError::Unavailable(error) = &e {
                    tracing::error!(%error, "storing a web message failed");
                }
                return self.reply(protocol::error(&e.user_message())).await;
            }
        };
        // The ack is queued before the job is announced, so it reaches the
        // client before any reply event of that job.
        self.reply(protocol::ack(&Ack {
            message_id: accepted.message_id,
            job_id: accepted.job_id,
            conversation_id: &accepted.conversation_id,
            channel_id: &channel,
            agent_id: accepted.agent_id,
        }))
        .await;
        self.ctx.intake.announce(&accepted).await;
    }

    async fn on_resume(&mut self, r: protocol::ResumeFrame) {
        let channel = r.channel_id.unwrap_or_else(|| self.default_channel.clone());
        if let Err(e) = check_id("channelId", &channel) {
            return self.reply(protocol::error(&e.to_string())).await;
        }
        if !self.join(&channel) {
            return self.reply(protocol::error("too many channels on one connection")).await;
        }
        let messages = match self
            .ctx
            .deps
            .store
            .channel_messages_after(crate::fanout::PLATFORM, &channel, r.after, RESUME_LIMIT)
            .await
        {
            Ok(m) => m,
            Err(error) => {
                tracing::error!(%error, "reading channel history failed");
                return self.reply(protocol::error("history is unavailable right now; try again")).await;
            }
        };
        for m in &messages {
            self.reply(protocol::stored(m, &channel)).await;
        }
        let more = messages.len() as i64 >= RESUME_LIMIT;
        self.reply(protocol::resumed(&channel, messages.len(), messages.last().map(|m| m.id), more)).await;
    }

    /// Starts receiving replies for `channel`; false when the socket already
    /// listens on too many channels.
    fn join(&mut self, channel: &str) -> bool {
        if self.channels.iter().any(|c| c == channel) {
            return true;
        }
        if self.channels.len() >= MAX_CHANNELS {
            return false;
        }
        self.ctx.hub.join(channel, &self.handle);
        self.channels.push(channel.to_string());
        true
    }

    async fn reply(&self, frame: Utf8Bytes) {
        self.handle.send(frame, SEND_PATIENCE).await;
    }
}

/// Sends queued frames until the session ends, then the Close frame.
async fn write_loop(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    handle: Arc<SessionHandle>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    const GOING_AWAY: CloseReason = CloseReason { code: close::GOING_AWAY, reason: "server shutting down" };
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => break GOING_AWAY,
            () = handle.kill.cancelled() => break handle.close_reason(),
            f = rx.recv() => match f {
                Some(f) => Message::Text(f),
                None => break handle.close_reason(),
            },
            _ = heartbeat.tick() => Message::Ping(Default::default()),
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break GOING_AWAY,
            () = handle.kill.cancelled() => break handle.close_reason(),
            r = sink.send(message) => if r.is_err() {
                handle.close(CloseReason { code: close::NORMAL, reason: "" });
                return;
            },
        }
    };
    handle.close(reason);
    let close = Message::Close(Some(CloseFrame { code: reason.code, reason: Utf8Bytes::from_static(reason.reason) }));
    // Frames queued before a deliberate close (the error frame that explains a
    // 4001 or 1008) go out first — except to a slow consumer, whose queue is
    // the problem, and at shutdown.
    let flush_queue = reason != crate::fanout::SLOW_CONSUMER && reason.code != close::GOING_AWAY;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while flush_queue && let Ok(frame) = rx.try_recv() {
            if sink.feed(Message::Text(frame)).await.is_err() {
                return;
            }
        }
        if sink.send(close).await.is_ok() {
            let _ = sink.close().await;
        }
    })
    .await;
}

enum Admit {
    Yes,
    No,
    Abuse,
}

/// A token bucket: `rate` frames per second (`WS_FRAMES_PER_SEC`) with a
/// burst of as many. Refused frames count as strikes, forgiven once the
/// client has been quiet long enough to refill the bucket.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
    strikes: u32,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket { rate, tokens: rate, last: Instant::now(), strikes: 0 }
    }

    fn take(&mut self) -> Admit {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= self.rate {
            self.strikes = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admit::Yes;
        }
        self.strikes += 1;
        if self.strikes > MAX_RATE_STRIKES { Admit::Abuse } else { Admit::No }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_refuses_then_disconnects() {
        let mut b = Bucket::new(20.0);
        for _ in 0..20 {
            assert!(matches!(b.take(), Admit::Yes));
        }
        for _ in 0..MAX_RATE_STRIKES {
            assert!(matches!(b.take(), Admit::No));
        }
        assert!(matches!(b.take(), Admit::Abuse));
    }
}
