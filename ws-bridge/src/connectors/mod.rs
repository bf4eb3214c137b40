//! Chat-platform connectors (issues #19, #22): Telegram, Discord, Slack and Matrix bots that
//! answer, survive restarts, reconnects and takeovers, and never lose or
//! double a message.
//!
//! Layout:
//! - [`run`] (this file): the manager. It seeds bots from the environment once,
//!   then every 2 s — and at once on a `ConfigChanged` bot notice — compares
//!   the enabled bots with the supervisors it runs: a new or re-enabled bot
//!   gets one, a disabled, deleted or re-bound bot's is stopped (and a changed
//!   one restarted), so edits take effect within 5 s without a restart.
//! - a supervisor per bot ([`supervise`]): every bridge runs one for every
//!   enabled bot, and the one that takes the bot's lease in the database
//!   ([`lease`]) holds it; the others look again every 2 s, so a dead
//!   holder's bots move within the lease's time to live (`BOT_LEASE_MS`,
//!   10 s) plus 2 s. The holder runs four things side by side until it loses
//!   the lease or is stopped: lease renewal, the platform session (with
//!   capped, jittered reconnects; `status`/`lastError` on the bot row say what
//!   is wrong), the reply watcher and the sender ([`outbox`]).
//! - [`telegram`]: the Bot API (getMe, getUpdates long polling, sendMessage,
//!   sendChatAction).
//! - [`discord`]: Gateway v10 (JSON) with heartbeats, RESUME and the close
//!   codes that forbid reconnecting; REST for messages and typing.
//! - [`slack`]: Socket Mode (apps.connections.open, acknowledged envelopes,
//!   refresh without a gap) and the Web API (auth.test, chat.postMessage).
//! - [`matrix`]: the Client-Server API v3 (whoami, `/sync` long polling with
//!   `next_batch` as the cursor, joining invites, `send` with the outbox
//!   row as transaction id, typing).
//! - [`whatsapp`]: the WhatsApp Cloud API's sends (Graph `/{phone-number-id}/messages`);
//!   [`sms`]: Twilio's (`Messages.json`). Their inbound messages arrive as
//!   webhooks on the gateway, which takes them in for the bot; the holder
//!   checks the credentials, then only runs the outbox.
//! - [`email`]: IMAP (IDLE, else polling; UIDVALIDITY+UID cursor) in, SMTP
//!   submission out, threaded with `In-Reply-To`/`References`.
//! - [`inbound`]: taking a message in (intake, owed reply, announce) the same
//!   way on every platform; [`chunk`]: splitting replies at the platform's
//!   limit; [`http`]: the HTTP client, backoff, retry-after, token scrubbing.
//!
//! Every inbound message goes through the chat intake with its platform id
//! (Telegram `<bot user id>:<update_id>`, the Discord message id, the Slack
//! `event_id`, Matrix `<bot id>:<event_id>`, the WhatsApp `wamid`, the Twilio `MessageSid`, the
//! email's Message-ID), so a redelivery is a duplicate with nothing
//! written; the job the bot owes an answer for is recorded before the
//! platform's cursor moves. Why one task per bot instead of a task per
//! platform: a platform's outage or a bad token then stops only its bot.
//! Every future of a held bot runs inside the supervisor's task (no spawns),
//! so ending that task ends all of it.

mod chunk;
mod discord;
mod email;
mod http;
mod inbound;
mod lease;
mod matrix;
mod outbox;
mod slack;
mod sms;
mod telegram;
mod whatsapp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arvis_shared::Deps;
use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::bus::subjects;
use arvis_shared::db::bots::Seeded;
use arvis_shared::domain::bot::{Bot, BotFields, BotSettings, SmsVars, WhatsAppVars};
use arvis_shared::intake::Intake;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use lease::Lease;
use outbox::Owed;

/// Platforms with a connector in this bridge.
pub const SUPPORTED: &[&str] = &["telegram", "discord", "slack", "matrix", "whatsapp", "sms", "email"];
/// How often the manager re-reads the bots, and a non-holder looks for a free lease.
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// How long stopping a bot may take before the manager moves on.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a bot whose token variable is missing waits before it tries again.
const MISSING_TOKEN_RETRY: Duration = Duration::from_secs(30);

/// What every supervisor of this bridge shares.
struct Shared {
    deps: Deps,
    intake: Intake,
    http: reqwest::Client,
    /// This bridge's name in the lease rows.
    holder: Arc<str>,
}

/// A held bot, as its four parts see it.
pub struct BotCtx {
    pub deps: Deps,
    pub intake: Intake,
    pub http: reqwest::Client,
    pub bot: Bot,
    pub lease: Lease,
    pub owed: Owed,
    /// Wakes the sender: a reply or a notice was written.
    pub outbox_ready: Notify,
    pub token: SecretString,
}

struct Running {
    key: BotKey,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// What a running supervisor depends on: a change restarts it.
#[derive(Debug, Clone, PartialEq)]
struct BotKey {
    platform: String,
    token: String,
    default_agent_id: Option<i64>,
    bindings: Vec<(String, i64)>,
    settings: Option<BotSettings>,
}

fn key(b: &Bot) -> BotKey {
    BotKey {
        platform: b.platform.clone(),
        token: b.token.clone(),
        default_agent_id: b.default_agent_id,
        bindings: b.channel_bindings.iter().map(|c| (c.channel_id.clone(), c.agent_id)).collect(),
        settings: b.settings.clone(),
    }
}

/// Counts a delivery outcome (`sent`, `retried`, `failed`) per platform.
pub fn metric(platform: &str, outcome: &'static str) {
    metrics::counter!("arvis_deliveries_total", "platform" => platform.to_string(), "outcome" => outcome).increment(1);
}

/// Runs the connectors of this bridge until `shutdown`; then stops every held
/// bot (status `stopped`, lease released) within [`STOP_TIMEOUT`].
pub async fn run(deps: Deps, shutdown: CancellationToken) {
    seed(&deps).await;
    let holder: Arc<str> = Arc::from(format!("bridge-{}", uuid::Uuid::new_v4()));
    tracing::info!(%holder, "connectors started");
    let shared = Arc::new(Shared { intake: deps.intake(), http: http::client(), holder, deps });
    let mut notices = shared.deps.bus.subscribe(subjects::CONFIG_CHANGED).await.ok();
    let mut running: HashMap<i64, Running> = HashMap::new();
    loop {
        match shared.deps.store.list_bots().await {
            Ok(bots) => reconcile(&shared, &mut running, bots, &shutdown).await,
            Err(error) => tracing::warn!(%error, "cannot read the bots; running ones keep running"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(LOOK_EVERY) => {}
            () = bot_notice(&mut notices) => {}
        }
    }
    stop_all(running.into_values().collect()).await;
    tracing::info!("connectors stopped");
}

/// Resolves on the next bot change notice (never, without a subscription).
async fn bot_notice(notices: &mut Option<arvis_shared::bus::Subscription>) {
    loop {
        let Some(sub) = notices.as_mut() else { return std::future::pending().await };
        match sub.next().await {
            None => *notices = None,
            Some(m) => match m.decode::<ConfigChanged>() {
                Some(c) if c.entity != "bot" => {}
                _ => return,
            },
        }
    }
}

async fn reconcile(
    shared: &Arc<Shared>,
    running: &mut HashMap<i64, Running>,
    bots: Vec<Bot>,
    shutdown: &CancellationToken,
) {
    let wanted: HashMap<i64, Bot> = bots
        .into_iter()
        .filter(|b| b.is_enabled && SUPPORTED.contains(&b.platform.as_str()))
        .map(|b| (b.id, b))
        .collect();
    let stale: Vec<i64> =
        running.iter().filter(|(id, r)| wanted.get(id).is_none_or(|b| key(b) != r.key)).map(|(id, _)| *id).collect();
    stop_all(stale.iter().filter_map(|id| running.remove(id)).collect()).await;
    for (id, bot) in wanted {
        if running.contains_key(&id) {
            continue;
        }
        let stop = shutdown.child_token();
        let task = shared.deps.tasks.spawn_daemon(supervise(shared.clone(), bot.clone(), stop.clone()));
        running.insert(id, Running { key: key(&bot), stop, task });
    }
}

async fn stop_all(bots: Vec<Running>) {
    for r in &bots {
        r.stop.cancel();
    }
    let all = futures::future::join_all(bots.into_iter().map(|r| r.task));
    if tokio::time::timeout(STOP_TIMEOUT, all).await.is_err() {
        tracing::warn!("a bot did not stop in time");
    }
}

/// Takes the bot's lease whenever it is free and runs the bot while held.
async fn supervise(shared: Arc<Shared>, bot: Bot, stop: CancellationToken) {
    let store = &shared.deps.store;
    let ttl = shared.deps.config.bot_lease_ms;
    loop {
        match store.acquire_bot_lease(bot.id, &shared.holder, ttl).await {
            Ok(Some(held)) => {
                tracing::info!(bot_id = bot.id, epoch = held.epoch, platform = %bot.platform, "holding bot");
                let lease = Lease::new(store.clone(), shared.holder.clone(), ttl, held, &stop);
                hold(&shared, &bot, lease, &stop).await;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, bot_id = bot.id, "cannot look at the bot's lease"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(LOOK_EVERY) => {}
        }
    }
}

/// Runs a held bot until the lease is lost or the bot is stopped.
async fn hold(shared: &Shared, bot: &Bot, lease: Lease, stop: &CancellationToken) {
    let Some(token) = shared.deps.config.bot_secret(&bot.token) else {
        missing_token(&lease, &bot.token, stop).await;
        return;
    };
    let ctx = BotCtx {
        deps: shared.deps.clone(),
        intake: shared.intake.clone(),
        http: shared.http.clone(),
        bot: bot.clone(),
        lease,
        owed: Owed::default(),
        outbox_ready: Notify::new(),
        token,
    };
    match bot.platform.as_str() {
        "telegram" => {
            let tg = telegram::Telegram::new(&ctx);
            tokio::join!(
                ctx.lease.keep(),
                tg.run(&ctx),
                outbox::send_deliveries(&ctx, &tg),
                outbox::watch_replies(&ctx, &tg)
            );
        }
        "discord" => {
            let dc = discord::Discord::new(&ctx);
            tokio::join!(
                ctx.lease.keep(),
                dc.run(&ctx),
                outbox::send_deliveries(&ctx, &dc),
                outbox::watch_replies(&ctx, &dc)
            );
        }
        "slack" => {
            let var = BotFields::slack_app_token_var(bot.settings.as_ref()).to_string();
            let Some(app_token) = shared.deps.config.bot_secret(&var) else {
                missing_token(&ctx.lease, &var, stop).await;
                return;
            };
            let sl = slack::Slack::new(&ctx, app_token);
            tokio::join!(
                ctx.lease.keep(),
                sl.run(&ctx),
                outbox::send_deliveries(&ctx, &sl),
                outbox::watch_replies(&ctx, &sl)
            );
        }
        "matrix" => {
            let (url_var, user_var) = BotFields::matrix_vars(bot.settings.as_ref());
            let Some(homeserver) = shared.deps.config.bot_secret(url_var) else {
                missing_token(&ctx.lease, url_var, stop).await;
                return;
            };
            let user =
                shared.deps.config.bot_secret(user_var).map(|u| (u.expose_secret().to_string(), user_var.to_string()));
            let mx = match matrix::Matrix::new(&ctx, homeserver.expose_secret(), url_var, user) {
                Ok(mx) => mx,
                Err(why) => {
                    give_up(&ctx.lease, &why, stop).await;
                    return;
                }
            };
            tokio::join!(
                ctx.lease.keep(),
                mx.run(&ctx),
                outbox::send_deliveries(&ctx, &mx),
                outbox::watch_replies(&ctx, &mx)
            );
        }
        "whatsapp" => {
            let vars = WhatsAppVars::of(bot.settings.as_ref());
            // The app secret and verify token are the gateway's (webhook
            // signatures); they are checked here too, so that the bot's status
            // says what is missing.
            let Some([phone_number_id, ..]) =
                required(shared, &ctx.lease, stop, [&vars.phone_number_id, &vars.app_secret, &vars.verify_token]).await
            else {
                return;
            };
            let wa = whatsapp::WhatsApp::new(&ctx, &phone_number_id);
            tokio::join!(
                ctx.lease.keep(),
                wa.run(&ctx),
                outbox::send_deliveries(&ctx, &wa),
                outbox::watch_replies(&ctx, &wa)
            );
        }
        "sms" => {
            let vars = SmsVars::of(bot.settings.as_ref());
            let Some([account_sid, phone_number]) =
                required(shared, &ctx.lease, stop, [&vars.account_sid, &vars.phone_number]).await
            else {
                return;
            };
            let sms = sms::Sms::new(&ctx, &account_sid, &phone_number);
            tokio::join!(
                ctx.lease.keep(),
                sms.run(&ctx),
                outbox::send_deliveries(&ctx, &sms),
                outbox::watch_replies(&ctx, &sms)
            );
        }
        "email" => {
            let em = match email::Email::new(&ctx) {
                Ok(em) => em,
                Err(why) => {
                    give_up(&ctx.lease, &why, stop).await;
                    return;
                }
            };
            tokio::join!(
                ctx.lease.keep(),
                em.run(&ctx),
                outbox::send_deliveries(&ctx, &em),
                outbox::watch_replies(&ctx, &em)
            );
        }
        _ => {}
    }
    if stop.is_cancelled() {
        ctx.lease.report("stopped", None).await;
        ctx.lease.release().await;
        tracing::info!(bot_id = bot.id, "bot stopped");
    }
}

/// The values of the variables a bot needs besides its token, in order; when
/// any is not set, the bot is given up as by [`missing_token`], naming every
/// missing variable (never a value).
async fn required<const N: usize>(
    shared: &Shared,
    lease: &Lease,
    stop: &CancellationToken,
    vars: [&String; N],
) -> Option<[SecretString; N]> {
    let values = vars.map(|v| shared.deps.config.bot_secret(v));
    let missing: Vec<&str> = vars.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(n, _)| n.as_str()).collect();
    if !missing.is_empty() {
        missing_token(lease, &missing.join(", "), stop).await;
        return None;
    }
    Some(values.map(Option::unwrap_or_default))
}

/// Reports a token variable (or several, comma-separated) that is not set,
/// gives the bot up and waits before the supervisor looks again.
async fn missing_token(lease: &Lease, var: &str, stop: &CancellationToken) {
    let why = if var.contains(", ") {
        format!("the environment variables {var} are not set on this bridge")
    } else {
        format!("the environment variable {var} is not set on this bridge")
    };
    give_up(lease, &why, stop).await;
}

/// Reports a configuration the bot cannot run with, gives the bot up and
/// waits before the supervisor looks again.
async fn give_up(lease: &Lease, why: &str, stop: &CancellationToken) {
    tracing::warn!(bot_id = lease.bot_id, "{why}");
    lease.report("error", Some(why)).await;
    lease.release().await;
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(MISSING_TOKEN_RETRY) => {}
    }
}

/// Creates a bot for each platform whose variables are set (the first is the
/// bot's `token`), once per
/// (platform, token variable) in the life of the database: a seeded bot the
/// user deleted stays deleted.
async fn seed(deps: &Deps) {
    const SEEDS: &[(&str, &str, &[&str])] = &[
        ("telegram", "Telegram bot", &["TELEGRAM_BOT_TOKEN"]),
        ("discord", "Discord bot", &["DISCORD_BOT_TOKEN"]),
        ("slack", "Slack bot", &["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"]),
        ("matrix", "Matrix bot", &["MATRIX_ACCESS_TOKEN", "MATRIX_HOMESERVER_URL", "MATRIX_USER_ID"]),
        (
            "whatsapp",
            "WhatsApp bot",
            &["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"],
        ),
        ("sms", "SMS bot", &["TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_PHONE_NUMBER"]),
        // The token is the password; the other required settings must be there too.
        ("email", "Email bot", &["EMAIL_PASSWORD", "EMAIL_IMAP_HOST", "EMAIL_SMTP_HOST", "EMAIL_USER"]),
    ];
    for (platform, name, vars) in SEEDS {
        if !vars.iter().all(|v| deps.config.env_present(v)) {
            continue;
        }
        let fields = BotFields {
            name: (*name).to_string(),
            platform: (*platform).to_string(),
            token: vars[0].to_string(),
            default_agent_id: None,
            channel_bindings: Vec::new(),
            is_enabled: true,
            settings: None,
        };
        match deps.store.seed_bot(&fields).await {
            Ok(Seeded::Created(bot)) => tracing::info!(bot_id = bot.id, platform, "bot created from the environment"),
            Ok(Seeded::InUse | Seeded::SeededBefore) => {}
            Err(error) => tracing::warn!(%error, platform, "cannot seed the bot from the environment"),
        }
    }
}
