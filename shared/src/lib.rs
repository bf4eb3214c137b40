//! The shared core of Arvis: everything two or more binaries need, and nothing
//! that needs axum or a WebSocket type. (Cron parsing is here because both the
//! gateway, which validates schedules, and the scheduler need it.)
//!
//! A request's path, from any entry point: the entry point (a gateway route,
//! a WebSocket frame, a connector) → a service here ([`intake`] for chats) →
//! the [`db::Store`] → a signal on the [`bus`] after the commit.
//!
//! Layout:
//! - [`config`]: the one configuration read from environment variables (and `.env`).
//! - [`db`]: the [`db::Store`] over SQLite or Postgres, with embedded migrations.
//!   All SQL of the project lives under `db/`.
//! - [`bus`]: signals between processes over NATS, or in-process for the launcher.
//! - [`domain`]: validated types and business rules shared by the services.
//! - [`bootstrap`]: what every process does once at start (migrate, conductor, accounts).
//! - [`shutdown`]: the root cancellation token, the SIGINT/SIGTERM handler, and [`shutdown::Tasks`], the owner of every spawned task.
//! - [`telemetry`]: tracing set-up (readable or JSON logs).
//! - [`logs`]: every process's INFO+ log events into the `logs` table (for `GET /api/logs`), batched, bounded.
//! - [`intake`]: the one chat intake every entry point calls (check → route → store → signal → typed reply events).
//! - [`bot_inbound`]: a bot's message through the intake with its owed reply (the bridge's connectors and the gateway's platform webhooks).
//! - [`routing`]: which agent answers an incoming message (the routing chain).
//! - [`credentials`]: API keys and dashboard sessions, checked the same way by every listener.
//! - [`health`]: the `/healthz`, `/readyz`, `/metrics` replies of every listener, and their own listener on `HEALTH_ADDR` (plain hyper).
//! - [`net`]: outbound HTTP to user-given URLs behind the private-address guard (`http_fetch`, skill import).
//! - [`metrics`]: the process's Prometheus recorder and the metric names.
//! - [`startup`]: the common start of every binary (config, logging, database, bus).
//! - [`clock`]: timestamps as the database stores them (milliseconds) and as the API shows them.

pub mod bootstrap;
pub mod bot_inbound;
pub mod budget;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod db;
pub mod domain;
pub mod health;
pub mod intake;
pub mod jwt_crypto;
pub mod logs;
pub mod metrics;
pub mod net;
pub mod routing;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

use std::sync::Arc;

/// What a service's entry point returns: its whole run, boxed.
///
/// Every service's `run` (gateway, worker, scheduler, ws-bridge) and the
/// start-up steps the binaries call return this from a `#[inline(never)]`
/// function. A release build does not share generic instantiations between
/// crates, and a caller that awaited the service's `async fn` directly made
/// the compiler build the service's whole future — every handler, query and
/// connector it holds — a second time in the caller's crate: the launcher's
/// library and binary spent more CPU time than any service crate
/// (BENCHMARKS.md, "Build time"). Behind a `dyn Future` the caller polls the
/// service through one virtual call, a cost paid once per wake-up of the
/// outermost task, not per request.
pub type ServiceFuture<'a, T = ()> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// What a service needs to run: its configuration, the database and the bus.
/// Cheap to clone; the launcher hands one `Deps` to all four services.
#[derive(Clone)]
pub struct Deps {
    pub config: Arc<config::Config>,
    pub store: db::Store,
    pub bus: bus::Bus,
    /// Every task the services spawn ([`shutdown::Tasks`]); [`Deps::close`] ends them.
    pub tasks: shutdown::Tasks,
}

/// How long [`Deps::close`] waits for the tasks still running after the
/// services returned (each service drained its own work before that).
const TASKS_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long the bus may take to send what it buffered at close.
const BUS_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long closing the database pools may take.
const STORE_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl Deps {
    /// Connects to the database (running migrations) and to the bus named by the
    /// configuration: NATS when `NATS_URL` is set, otherwise the in-process bus.
    pub async fn connect(config: config::Config) -> anyhow::Result<Deps> {
        use anyhow::Context as _;
        let store = db::Store::connect(&config.database_url, config.database_max_connections)
            .await
            .with_context(|| format!("connecting to the database ({})", config.database_url_redacted()))?;
        store.migrate().await.context("running database migrations")?;
        let bus = match &config.nats_url {
            Some(url) => bus::Bus::connect_nats(url).await.with_context(|| format!("connecting to NATS at {url}"))?,
            None => bus::Bus::local(),
        };
        let tasks = shutdown::Tasks::default();
        forget_cached_lists_on_notice(&store, &bus, &tasks).await;
        // This process's log lines into the `logs` table (GET /api/logs), until Deps::close.
        logs::start_writer(
            &tasks,
            store.clone(),
            config.all_secret_values(),
            config.log_retention_rows,
            tasks.stopping(),
        );
        Ok(Deps { config: Arc::new(config), store, bus, tasks })
    }

    /// The last step of every process, after its services returned: ends the
    /// remaining tasks, flushes the bus and closes the database — each with a
    /// bounded wait, so that an unreachable NATS server or database cannot
    /// keep the process alive.
    #[inline(never)]
    pub fn close(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(self.close_all())
    }

    async fn close_all(&self) {
        let left = self.tasks.stop(TASKS_GRACE).await;
        if left > 0 {
            tracing::warn!(tasks = left, "tasks still running at exit were dropped");
        }
        self.bus.close(BUS_CLOSE_TIMEOUT).await;
        if tokio::time::timeout(STORE_CLOSE_TIMEOUT, self.store.close()).await.is_err() {
            tracing::warn!("the database connections did not close in time");
        }
    }

    /// The chat intake over this process's store and bus.
    pub fn intake(&self) -> intake::Intake {
        intake::Intake::new(self.store.clone(), self.bus.clone())
    }
}

/// Keeps the store's agent, skill and settings caches in step with writes of other
/// processes: a `ConfigChanged` notice for the entity (or one without an
/// entity it can decode) invalidates it. Without a subscription the caches'
/// TTL still bounds how stale they can be.
async fn forget_cached_lists_on_notice(store: &db::Store, bus: &bus::Bus, tasks: &shutdown::Tasks) {
    let (agents, skills, settings) = (store.agent_cache(), store.skill_cache(), store.settings_cache());
    match bus.subscribe(bus::subjects::CONFIG_CHANGED).await {
        Ok(mut notices) => {
            tasks.spawn_daemon(async move {
                while let Some(msg) = notices.next().await {
                    match msg.decode::<bus::events::ConfigChanged>() {
                        Some(c) if c.entity == "agent" => agents.invalidate(),
                        Some(c) if c.entity == "skill" => skills.invalidate(),
                        Some(c) if c.entity == "settings" => settings.invalidate(),
                        Some(_) => {}
                        None => {
                            agents.invalidate();
                            skills.invalidate();
                            settings.invalidate();
                        }
                    }
                }
            });
        }
        Err(error) => tracing::warn!(
            %error,
            "no config-change notices: agent and skill edits of other processes show within {} s",
            db::cache::TTL.as_secs()
        ),
    }
}

/// Constant-time equality of two secrets (over their SHA-256 digests, so the
/// comparison leaks neither content nor length).
pub fn secret_eq(given: &str, expected: &str) -> bool {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    let a: [u8; 32] = sha2::Sha256::digest(given.as_bytes()).into();
    let b: [u8; 32] = sha2::Sha256::digest(expected.as_bytes()).into();
    a.ct_eq(&b).into()
}

/// Installs the process-wide TLS crypto provider (ring). Every `main` and the test
/// support call it first: reqwest, sqlx and async-nats all use rustls, and with no
/// provider installed a TLS connect panics (PITFALLS.md).
pub fn install_crypto_provider() {
    // Err means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
