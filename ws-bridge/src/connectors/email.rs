//! Email (issue #22): IMAP in, SMTP out, one mailbox per bot.
//!
//! Settings come from `EMAIL_*` ([`arvis_shared::config::EmailConfig`]); the
//! password is the bot's `token` variable (`EMAIL_PASSWORD`). `EMAIL_TLS`
//! applies to both servers: `tls` (implicit TLS, the default), `starttls`
//! (refused if the server does not upgrade: never a silent fallback to plain
//! text) or `none`. TLS is rustls with the process's ring provider and the
//! platform's certificate verifier, as for every other outbound connection.
//!
//! Inbound: LOGIN, CAPABILITY, SELECT INBOX, then new mail is fetched by UID
//! (`BODY.PEEK[]`, then flagged `\Seen` once taken in). Where the server
//! offers IDLE the connector waits in IDLE and fetches on any untagged
//! response (EXISTS above all); it re-issues IDLE every [`IDLE_RENEW`]
//! (RFC 2177 asks for less than 29 minutes; 10 minutes also keeps NAT
//! routers from dropping a quiet connection). Without IDLE it polls every
//! [`POLL_EVERY`].
//!
//! The cursor (under the bot's lease) is the mailbox's UIDVALIDITY and the
//! last UID taken in, written after the intake has the messages. On the first
//! start (no cursor) the mail already in the inbox is skipped: a bot pointed
//! at a used mailbox must not answer years of old mail. When UIDVALIDITY
//! changed (the mailbox was rebuilt) the UIDs mean nothing any more: the mail
//! that arrived at or after the newest one seen is taken (IMAP `SINCE`, then
//! INTERNALDATE — the server's clock on both sides, so no clock skew between
//! hosts matters), and the intake's de-duplication by Message-ID keeps what
//! was answered already from being answered again.
//!
//! Every email conversation is a DM with the sender's address (lowercased)
//! as channel. What is ignored so that bots cannot loop: mail from the bot's
//! own address, auto-replies and bulk mail ([`mail::skip_reason`]); and the
//! bot's own replies carry `Auto-Submitted: auto-replied` (RFC 3834), so
//! well-behaved responders — another Arvis included — do not answer them.
//!
//! Outbound: one message per reply through SMTP submission with AUTH,
//! `Subject: Re: …`, `In-Reply-To` and `References` of the answered mail
//! (kept in the delivery's `reply_to` and `thread_id`), and a Message-ID
//! derived from the delivery row, so a retried send carries the same id and
//! a receiver can drop the duplicate. 4xx and connection failures are
//! transient (retried with the outbox's backoff), 5xx permanent with the
//! server's text. The password is scrubbed from every error text.

mod mail;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arvis_shared::clock::now_ms;
use arvis_shared::config::{EmailConfig, EmailTls};
use arvis_shared::db::outbox::DueDelivery;
use arvis_shared::domain::limits::MAX_ID_CHARS;
use arvis_shared::intake::Incoming;
use async_imap::extensions::idle::IdleResponse;
use futures::TryStreamExt as _;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::BotCtx;
use super::http::{Backoff, scrub};
use super::inbound::{ReplyAt, take_in};
use super::outbox::{Outbound, SendError};

/// Longest reply sent as one message, in characters. Email has no practical
/// limit; this one matches the intake's own (a reply longer than anything a
/// user may send is split into follow-ups in the same thread).
const LIMIT: usize = 100_000;
/// How often a server without IDLE is asked for new mail.
pub const POLL_EVERY: Duration = Duration::from_secs(30);
/// How long one IDLE lasts before it is re-issued (RFC 2177: under 29 minutes).
pub const IDLE_RENEW: Duration = Duration::from_secs(10 * 60);
/// Longest wait for one IMAP command's answer, and for a connection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest SMTP conversation for one reply.
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The IMAP byte stream, whatever the TLS mode.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}
type Conn = Box<dyn Io>;
type Session = async_imap::Session<Conn>;

/// The cursor stored under the lease, and the connector's position while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cursor {
    uid_validity: u32,
    /// The last UID taken in (or skipped).
    uid: u32,
    /// The newest INTERNALDATE seen (ms, the IMAP server's clock, so no
    /// skew between the hosts matters): after a UIDVALIDITY change, mail
    /// that arrived at or after it is new.
    at: i64,
}

#[derive(Debug)]
enum ImapError {
    /// The server refused the login: a wrong user or password does not fix itself quickly.
    Refused(String),
    /// Connection, TLS, protocol or timeout trouble: worth reconnecting.
    Unavailable(String),
}

impl ImapError {
    fn text(&self) -> &str {
        match self {
            ImapError::Refused(t) | ImapError::Unavailable(t) => t,
        }
    }
}

/// The settings of one email bot, resolved and checked.
pub struct Email {
    imap_host: String,
    imap_port: u16,
    user: String,
    password: String,
    tls: EmailTls,
    tls_config: Arc<rustls::ClientConfig>,
    from: Mailbox,
    /// Addresses whose mail is the bot's own (lowercased).
    own: Vec<String>,
    /// The domain of our Message-IDs.
    domain: String,
    bot_id: i64,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
}

/// `Auto-Submitted: auto-replied` on every reply (RFC 3834 §5).
#[derive(Clone)]
struct AutoReplied;

impl Header for AutoReplied {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoReplied)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".to_string())
    }
}

impl Email {
    /// The bot's settings; `Err` says which variable is missing or wrong.
    pub fn new(ctx: &BotCtx) -> Result<Email, String> {
        let cfg: &EmailConfig = &ctx.deps.config.email;
        let need = |v: &Option<String>, var: &str| {
            v.clone().ok_or_else(|| format!("the environment variable {var} is not set on this bridge"))
        };
        let imap_host = need(&cfg.imap_host, "EMAIL_IMAP_HOST")?;
        let smtp_host = need(&cfg.smtp_host, "EMAIL_SMTP_HOST")?;
        let user = need(&cfg.user, "EMAIL_USER")?;
        let from_text = cfg.from.clone().unwrap_or_else(|| user.clone());
        let from: Mailbox = from_text.parse().map_err(|e| {
            let var = if cfg.from.is_some() { "EMAIL_FROM" } else { "EMAIL_USER (EMAIL_FROM is not set)" };
            format!("{var} is not an email address ({from_text:?}): {e}")
        })?;
        let address = from.email.to_string().to_lowercase();
        let domain = from.email.domain().to_lowercase();
        let mut own = vec![address];
        if user.contains('@') && !own.contains(&user.to_lowercase()) {
            own.push(user.to_lowercase());
        }
        let password = ctx.token.expose_secret().to_string();
        let tls_config = tls_config().map_err(|e| format!("cannot set up TLS: {e}"))?;
        let mut smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp_host.clone())
            .port(cfg.smtp_port)
            .credentials(Credentials::new(user.clone(), password.clone()))
            .hello_name(ClientId::Domain(domain.clone()))
            .timeout(Some(SMTP_TIMEOUT));
        smtp = match cfg.tls {
            EmailTls::None => smtp.tls(Tls::None),
            mode => {
                let params = TlsParameters::new_rustls(smtp_host.clone())
                    .map_err(|e| format!("cannot set up TLS for {smtp_host}: {e}"))?;
                smtp.tls(if mode == EmailTls::Tls { Tls::Wrapper(params) } else { Tls::Required(params) })
            }
        };
        Ok(Email {
            imap_host,
            imap_port: cfg.imap_port,
            user,
            password,
            tls: cfg.tls,
            tls_config,
            from,
            own,
            domain,
            bot_id: ctx.bot.id,
            smtp: smtp.build(),
        })
    }

    fn scrubbed(&self, text: impl std::fmt::Display) -> String {
        scrub(&text.to_string(), &self.password)
    }

    /// Runs IMAP sessions until the lease is lost, reconnecting with backoff.
    pub async fn run(&self, ctx: &BotCtx) {
        let mut cursor: Option<Cursor> = ctx.lease.cursor.as_deref().and_then(|c| serde_json::from_str(c).ok());
        let mut backoff = Backoff::reconnect();
        loop {
            let error = tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                r = self.session(ctx, &mut cursor, &mut backoff) => match r {
                    Ok(()) => return,
                    Err(e) => e,
                },
            };
            let wait = match &error {
                ImapError::Refused(_) => backoff.next_delay().max(Duration::from_secs(30)),
                ImapError::Unavailable(_) => backoff.next_delay(),
            };
            tracing::warn!(
                bot_id = ctx.bot.id,
                error = error.text(),
                retry_in_ms = wait.as_millis() as u64,
                "email session failed"
            );
            ctx.lease.report("error", Some(error.text())).await;
            tokio::select! {
                () = ctx.lease.lost.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn session(&self, ctx: &BotCtx, cursor: &mut Option<Cursor>, backoff: &mut Backoff) -> Result<(), ImapError> {
        let mut session = self.login().await?;
        let idle = self.within("CAPABILITY", session.capabilities()).await?.has_str("IDLE");
        let mailbox = self.within("SELECT INBOX", session.select("INBOX")).await?;
        let validity = mailbox.uid_validity.unwrap_or(0);
        let newest = match mailbox.uid_next {
            Some(next) => next.saturating_sub(1),
            None => self.newest_uid(&mut session).await?,
        };
        // After a UIDVALIDITY change, mail is picked by arrival time, not by UID.
        let (mut pos, since) = match *cursor {
            Some(c) if c.uid_validity == validity => (c, None),
            Some(c) => {
                tracing::warn!(
                    bot_id = ctx.bot.id,
                    old = c.uid_validity,
                    new = validity,
                    "the mailbox's UIDVALIDITY changed: taking the mail that arrived since the last one seen"
                );
                (Cursor { uid_validity: validity, uid: newest, at: c.at }, Some(c.at))
            }
            // First start: what is in the inbox already is not ours to answer.
            None => {
                let at = self.arrival(&mut session, newest).await?;
                (Cursor { uid_validity: validity, uid: newest, at }, None)
            }
        };
        if cursor.is_none() && !self.save(ctx, cursor, pos).await {
            return Ok(());
        }
        ctx.lease.report("running", None).await;
        backoff.reset();
        tracing::info!(bot_id = ctx.bot.id, idle, uid_validity = validity, last_uid = pos.uid, "email inbox open");
        if let Some(at) = since {
            let uids = self.arrived_since(&mut session, at).await?;
            if !self.take_new(ctx, &mut session, &uids, &mut pos, cursor, Some(at)).await?
                || !self.save(ctx, cursor, pos).await
            {
                return Ok(());
            }
        }
        loop {
            let range = format!("{}:*", pos.uid.saturating_add(1));
            if !self.take_new(ctx, &mut session, &range, &mut pos, cursor, None).await? {
                return Ok(());
            }
            if idle {
                session = self.idle(session).await?;
            } else {
                tokio::time::sleep(POLL_EVERY).await;
                // NOOP is where a server must report new mail (RFC 3501 §6.1.2);
                // a FETCH alone may still see the mailbox as it was.
                self.within("NOOP", session.noop()).await?;
            }
        }
    }

    /// Connects (TLS per `EMAIL_TLS`) and logs in.
    async fn login(&self) -> Result<Session, ImapError> {
        let server = format!("{}:{}", self.imap_host, self.imap_port);
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            ImapError::Unavailable(self.scrubbed(format!("IMAP {server}: {what}: {e}")))
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((self.imap_host.as_str(), self.imap_port)))
            .await
            .map_err(|_| unavailable("connection failed", &"timed out"))?
            .map_err(|e| unavailable("connection failed", &e))?;
        let _ = tcp.set_nodelay(true);
        let client = match self.tls {
            EmailTls::None => self.greeted(Box::new(tcp) as Conn, &server).await?,
            EmailTls::Tls => {
                let tls = self.handshake(tcp).await.map_err(|e| unavailable("TLS handshake failed", &e))?;
                self.greeted(Box::new(tls) as Conn, &server).await?
            }
            EmailTls::StartTls => {
                let mut plain = async_imap::Client::new(tcp);
                self.within("greeting", async { Ok(plain.read_response().await?) }).await?;
                self.within("STARTTLS", plain.run_command_and_check_ok("STARTTLS", None))
                    .await
                    .map_err(|e| ImapError::Unavailable(format!("{} (the server must offer STARTTLS)", e.text())))?;
                let tls =
                    self.handshake(plain.into_inner()).await.map_err(|e| unavailable("TLS handshake failed", &e))?;
                // No greeting after STARTTLS (RFC 3501 §6.2.1).
                async_imap::Client::new(Box::new(tls) as Conn)
            }
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, client.login(&self.user, &self.password)).await {
            Err(_) => Err(unavailable("LOGIN", &"timed out")),
            Ok(Ok(session)) => Ok(session),
            Ok(Err((async_imap::error::Error::No(text), _))) | Ok(Err((async_imap::error::Error::Bad(text), _))) => {
                Err(ImapError::Refused(
                    self.scrubbed(format!("IMAP login as {} refused by {server}: {text}", self.user)),
                ))
            }
            Ok(Err((e, _))) => Err(unavailable("LOGIN", &e)),
        }
    }

    async fn greeted(&self, conn: Conn, server: &str) -> Result<async_imap::Client<Conn>, ImapError> {
        let mut client = async_imap::Client::new(conn);
        match self.within("greeting", async { Ok(client.read_response().await?) }).await? {
            Some(_) => Ok(client),
            None => Err(ImapError::Unavailable(format!("IMAP {server}: closed before its greeting"))),
        }
    }

    async fn handshake(&self, tcp: TcpStream) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = rustls::pki_types::ServerName::try_from(self.imap_host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(self.tls_config.clone());
        tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
    }

    /// One IMAP command with a deadline; errors named and scrubbed.
    async fn within<T>(
        &self,
        what: &str,
        f: impl Future<Output = async_imap::error::Result<T>>,
    ) -> Result<T, ImapError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ImapError::Unavailable(self.scrubbed(format!("IMAP {what}: {e}")))),
            Err(_) => Err(ImapError::Unavailable(format!("IMAP {what}: no answer within {COMMAND_TIMEOUT:?}"))),
        }
    }

    /// The highest UID in the mailbox, for servers that do not send UIDNEXT.
    async fn newest_uid(&self, session: &mut Session) -> Result<u32, ImapError> {
        let uids = self.within("UID SEARCH", session.uid_search("ALL")).await?;
        Ok(uids.into_iter().max().unwrap_or(0))
    }

    /// The INTERNALDATE of message `uid` (ms); now when the mailbox is empty.
    async fn arrival(&self, session: &mut Session, uid: u32) -> Result<i64, ImapError> {
        if uid == 0 {
            return Ok(now_ms());
        }
        let fetched = {
            let stream = self.within("UID FETCH", session.uid_fetch(uid.to_string(), "(UID INTERNALDATE)")).await?;
            self.within("UID FETCH", stream.try_collect::<Vec<_>>()).await?
        };
        Ok(fetched.iter().filter_map(|f| f.internal_date()).map(|d| d.timestamp_millis()).max().unwrap_or_else(now_ms))
    }

    /// UIDs of the mail that arrived since `at` (ms), as a UID set: `SINCE`
    /// takes whole days (a day early, for time zones), the exact time is
    /// checked against INTERNALDATE by [`Email::take_new`].
    async fn arrived_since(&self, session: &mut Session, at: i64) -> Result<String, ImapError> {
        let day = jiff::Timestamp::from_millisecond(at - 86_400_000)
            .map(|t| t.strftime("%d-%b-%Y").to_string())
            .unwrap_or_else(|_| "01-Jan-1970".to_string());
        let mut uids: Vec<u32> =
            self.within("UID SEARCH", session.uid_search(format!("SINCE {day}"))).await?.into_iter().collect();
        uids.sort_unstable();
        Ok(uids.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
    }

    /// Fetches `set`, takes every mail in (above the cursor's UID; or, with
    /// `arrived_after`, every mail that arrived at or after that time), flags
    /// them seen and stores the cursor. `Ok(false)`: the lease is gone.
    async fn take_new(
        &self,
        ctx: &BotCtx,
        session: &mut Session,
        set: &str,
        pos: &mut Cursor,
        cursor: &mut Option<Cursor>,
        arrived_after: Option<i64>,
    ) -> Result<bool, ImapError> {
        if set.is_empty() {
            return Ok(true);
        }
        let mut fetched = {
            let stream = self.within("UID FETCH", session.uid_fetch(set, "(UID INTERNALDATE BODY.PEEK[])")).await?;
            self.within("UID FETCH", stream.try_collect::<Vec<_>>()).await?
        };
        fetched.sort_by_key(|f| f.uid);
        let before = *pos;
        let mut taken: Vec<u32> = Vec::new();
        let mut failure = None;
        for f in &fetched {
            let Some(uid) = f.uid else { continue };
            let arrived = f.internal_date().map(|d| d.timestamp_millis());
            let wanted = match arrived_after {
                // `n:*` returns the newest message even when its UID is below n.
                None => uid > pos.uid,
                Some(at) => arrived.is_none_or(|a| a >= at),
            };
            if !wanted {
                continue;
            }
            if let Some(raw) = f.body() {
                if let Err(why) = self.take(ctx, raw, pos.uid_validity, uid).await {
                    failure = Some(ImapError::Unavailable(why));
                    break;
                }
                taken.push(uid);
            }
            pos.uid = pos.uid.max(uid);
            pos.at = pos.at.max(arrived.unwrap_or(pos.at));
        }
        if !taken.is_empty() {
            let set = taken.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            // Best effort: for a human looking at the mailbox; the cursor is what counts.
            match session.uid_store(&set, "+FLAGS.SILENT (\\Seen)").await {
                Ok(stream) => {
                    if let Err(e) = stream.try_collect::<Vec<_>>().await {
                        tracing::debug!(error = %e, "cannot flag the mail seen");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot flag the mail seen"),
            }
        }
        let alive = *pos == before || self.save(ctx, cursor, *pos).await;
        match failure {
            Some(e) => Err(e),
            None => Ok(alive),
        }
    }

    /// Writes the cursor; `false` when the lease is gone.
    async fn save(&self, ctx: &BotCtx, cursor: &mut Option<Cursor>, pos: Cursor) -> bool {
        let text = serde_json::to_string(&pos).unwrap_or_default();
        if ctx.lease.write_cursor(&text).await {
            *cursor = Some(pos);
            true
        } else {
            // A refused write cancelled the lease; a failed one is retried with the next mail.
            !ctx.lease.lost.is_cancelled()
        }
    }

    /// One mail through the intake (or skipped, with the reason at debug level).
    async fn take(&self, ctx: &BotCtx, raw: &[u8], validity: u32, uid: u32) -> Result<(), String> {
        let m = match mail::read(raw, &self.own) {
            Ok(m) => m,
            Err(skip) => {
                tracing::debug!(bot_id = ctx.bot.id, uid, ?skip, "mail not answered");
                return Ok(());
            }
        };
        if m.from.chars().count() > MAX_ID_CHARS {
            tracing::debug!(bot_id = ctx.bot.id, uid, "mail not answered: the sender's address is too long");
            return Ok(());
        }
        let bound = ctx.bot.channel_bindings.iter().any(|b| b.channel_id.eq_ignore_ascii_case(&m.from));
        let external = m.message_id.clone().unwrap_or_else(|| format!("imap:{validity}:{uid}"));
        let name = m.name.filter(|n| n.chars().count() <= MAX_ID_CHARS && !n.chars().any(char::is_control));
        let incoming = Incoming {
            platform: "email".into(),
            channel_id: m.from.clone(),
            user_id: Some(m.from.clone()),
            user_name: name,
            content: m.content,
            agent_id: if bound { None } else { ctx.bot.default_agent_id },
            is_dm: true,
            external_id: Some(external),
            api: None,
        };
        let at = ReplyAt { reply_to: m.message_id, thread_id: serde_json::to_string(&m.thread).ok() };
        take_in(ctx, incoming, at).await
    }

    /// Waits in IDLE until the server says something or [`IDLE_RENEW`] passed.
    async fn idle(&self, session: Session) -> Result<Session, ImapError> {
        let mut handle = session.idle();
        self.within("IDLE", handle.init()).await?;
        let outcome = {
            let (wait, stop) = handle.wait_with_timeout(IDLE_RENEW);
            tokio::pin!(wait);
            tokio::select! {
                r = &mut wait => r,
                // Servers reset the library's timeout with "* OK Still here": end it ourselves.
                () = tokio::time::sleep(IDLE_RENEW) => {
                    drop(stop);
                    wait.await
                }
            }
        };
        let session = self.within("DONE", handle.done()).await?;
        match outcome {
            Ok(IdleResponse::NewData(_) | IdleResponse::Timeout | IdleResponse::ManualInterrupt) => Ok(session),
            Err(e) => Err(ImapError::Unavailable(self.scrubbed(format!("IMAP IDLE: {e}")))),
        }
    }

    /// A Message-ID for a delivery: the same on every attempt, different
    /// across deliveries, bots and (by the content hash) installations.
    fn message_id(&self, d: &DueDelivery) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in d.channel_id.bytes().chain(d.content.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("<arvis.{}.{}.{h:016x}@{}>", self.bot_id, d.id, self.domain)
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    use rustls_platform_verifier::ConfigVerifierExt as _;
    Ok(Arc::new(rustls::ClientConfig::with_platform_verifier()?))
}

impl Outbound for Email {
    fn limit(&self) -> usize {
        LIMIT
    }

    async fn send(&self, d: &DueDelivery) -> Result<Option<String>, SendError> {
        let to: Mailbox = d
            .channel_id
            .parse()
            .map_err(|e| SendError::Permanent(format!("{:?} is not an email address: {e}", d.channel_id)))?;
        let thread: mail::Thread =
            d.thread_id.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        let subject = if thread.subject.is_empty() { mail::reply_subject("") } else { thread.subject };
        let id = self.message_id(d);
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(id.clone()))
            .date_now()
            .header(AutoReplied)
            .header(ContentType::TEXT_PLAIN);
        if let Some(parent) = &d.reply_to {
            b = b.in_reply_to(parent.clone());
        }
        if !thread.references.is_empty() {
            b = b.references(thread.references);
        }
        let message =
            b.body(d.content.clone()).map_err(|e| SendError::Permanent(format!("cannot build the mail: {e}")))?;
        match self.smtp.send(message).await {
            Ok(_) => Ok(Some(id)),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(self.scrubbed(format!("SMTP: {e}")))),
            Err(e) => Err(SendError::Transient(self.scrubbed(format!("SMTP: {e}")))),
        }
    }

    async fn typing(&self, _channel_id: &str) {}
}
