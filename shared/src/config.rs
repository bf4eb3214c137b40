//! Configuration, read once at start from environment variables (and from a
//! `.env` file in the working directory when one exists; real environment
//! variables win over it). Every variable is listed in the README.
//!
//! A bad value is a startup error that names the variable. Secrets are held as
//! [`SecretString`], whose `Debug` prints `[REDACTED]`, so a `{:?}` of the
//! configuration can be logged safely.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

mod email;
pub use email::{EmailConfig, EmailTls};

/// A configuration error: always names the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {problem}")]
    Invalid { var: String, problem: String },
    #[error("{0}")]
    Io(String),
}

fn invalid(var: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var: var.to_string(), problem: problem.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// An LLM account discovered from the environment (behaviour reference §5).
/// The key itself stays in the environment: the database and the API only ever
/// see the *name* of the variable that holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSpec {
    pub name: String,
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub priority: i64,
}

/// The whole configuration. One struct serves every binary; each reads the
/// fields it needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://path` or `postgres://…`. Default: `sqlite://$ARVIS_DATA_DIR/arvis.db`.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS` (default 10): pool size for Postgres and for SQLite readers.
    pub database_max_connections: u32,
    /// `NATS_URL`: when set, the bus is NATS; otherwise the launcher uses an in-process bus.
    pub nats_url: Option<String>,
    /// `GATEWAY_ADDR` (default 127.0.0.1:5100).
    pub gateway_addr: SocketAddr,
    /// `WS_BRIDGE_ADDR` (default 127.0.0.1:5070).
    pub ws_bridge_addr: SocketAddr,
    /// `ARVIS_DATA_DIR` (default ./data): the SQLite file, the generated JWT secret.
    pub data_dir: PathBuf,
    /// `DASHBOARD_PASSWORD`: enables login and cookie sessions.
    pub dashboard_password: Option<SecretString>,
    /// `DASHBOARD_API_KEY`: accepted in `X-API-Key` or `Authorization: Bearer`.
    pub dashboard_api_key: Option<SecretString>,
    /// `JWT_SECRET`: signs session cookies; generated into the data dir when unset.
    pub jwt_secret: Option<SecretString>,
    /// `WEB_API_KEY`: required by the WebSocket bridge when set.
    pub web_api_key: Option<SecretString>,
    /// `WS_MAX_CONNECTIONS` (default 20 000): open WebSockets one bridge accepts;
    /// further upgrades get 503.
    pub ws_max_connections: usize,
    /// `WS_FRAMES_PER_SEC` (default 20): frames one WebSocket client may send
    /// per second (a token bucket with a burst of as many).
    pub ws_frames_per_sec: u32,
    /// `COOKIE_SECURE` (default false): add `Secure` to the session cookie (set it behind HTTPS).
    pub cookie_secure: bool,
    /// `LOG_FORMAT`: `pretty` (default) or `json`.
    pub log_format: LogFormat,
    /// `WORKER_CONCURRENCY` (default 8): jobs one worker runs at once.
    pub worker_concurrency: usize,
    /// `CHAT_TIMEOUT_SECS` (default 120): how long `POST /api/agents/{id}/chat` waits for the reply.
    pub chat_timeout: Duration,
    /// `SCHEDULER_TZ` (else `TZ`; default UTC): the IANA time zone the scheduler reads cron fields in.
    pub scheduler_tz: jiff::tz::TimeZone,
    /// `WEBHOOK_RATE_LIMIT_PER_MIN` (default 60): deliveries one inbound webhook accepts per minute.
    pub webhook_rate_limit_per_min: u32,
    /// `LOG_RETENTION_ROWS` (default 10 000): log lines `GET /api/logs` keeps, newest first.
    pub log_retention_rows: i64,
    /// `HEALTH_ADDR`: where worker and scheduler serve /healthz, /readyz and /metrics (off when unset).
    pub health_addr: Option<SocketAddr>,
    /// `METRICS_PUBLIC` (default false): serve /metrics without credentials.
    pub metrics_public: bool,
    /// `HTTP_FETCH_ALLOW_PRIVATE` (default false): let the `http_fetch` tool reach
    /// loopback, private and link-local addresses.
    pub http_fetch_allow_private: bool,
    /// `WEB_SEARCH_URL`: the endpoint the `web_search` tool queries (`GET …?q=`, JSON results).
    pub web_search_url: Option<String>,
    /// `MCP_STDIO_ALLOWED` (default true): let workers start stdio MCP servers
    /// (child processes). `false` for deployments that must not spawn processes:
    /// such servers get status `error` saying so.
    pub mcp_stdio_allowed: bool,
    /// `MCP_CALL_TIMEOUT_MS` (default 30000): how long one MCP `tools/call` may take.
    pub mcp_call_timeout: Duration,
    /// `MCP_RESULT_MAX_BYTES` (default 65536): the most of an MCP tool's text result fed to the model.
    pub mcp_result_max_bytes: usize,
    /// `WORKER_SHUTDOWN_GRACE_SECS` (default 25): on shutdown, how long running jobs may finish before they are released.
    pub worker_shutdown_grace: Duration,
    /// `WORKER_LEASE_MS` (default 30000): how long a claimed job stays held without a renewal.
    pub worker_lease_ms: i64,
    /// `WORKER_RETRY_BASE_MS` (default 2000): base of the exponential retry backoff (base · 2^attempt, max 5 min).
    pub worker_retry_base_ms: i64,
    /// `WORKER_EFFECTS_DELAY_MS` (default 0): fault injection for the `faults` suite only — a
    /// pause between storing a tagged reply and applying its effects, so that a killed worker
    /// lands in that window (RELIABILITY.md). Never set it in production: it only delays.
    pub worker_effects_delay_ms: u64,
    /// `PROVIDER_TIMEOUT_SECS` (default 120): the whole-request timeout of one LLM provider call.
    pub provider_timeout: Duration,
    /// `MODEL_PRICES_FILE`: a JSON file in LiteLLM's `model_prices_and_context_window.json`
    /// format whose entries extend or replace the worker's embedded price and context-window table.
    pub model_prices_file: Option<PathBuf>,
    /// LLM accounts found in the environment, in discovery order.
    pub accounts: Vec<AccountSpec>,
    /// Values of the secret variables the accounts name (`ANTHROPIC_API_KEY_2`, …), by name.
    secrets: BTreeMap<String, SecretString>,
    /// Which connector variables (`DISCORD_BOT_TOKEN`, …) were set at load time; names only.
    env_present: std::collections::BTreeSet<String>,
    /// `TELEGRAM_API_URL` (default `https://api.telegram.org`): the Bot API's base, without `/bot<token>`.
    pub telegram_api_url: String,
    /// `DISCORD_API_URL` (default `https://discord.com/api/v10`): the REST base; the gateway URL comes from `GET /gateway/bot`.
    pub discord_api_url: String,
    /// `SLACK_API_URL` (default `https://slack.com/api`): the Web API base; the socket URL comes from `apps.connections.open`.
    pub slack_api_url: String,
    /// `WHATSAPP_API_URL` (default `https://graph.facebook.com/v21.0`): the Graph API base
    /// that replies go to (`POST {base}/{phone-number-id}/messages`).
    pub whatsapp_api_url: String,
    /// `TWILIO_API_URL` (default `https://api.twilio.com`): the REST base that SMS replies go to.
    pub twilio_api_url: String,
    /// `TWILIO_WEBHOOK_URL`: the public URL Twilio calls for inbound SMS, which its
    /// `X-Twilio-Signature` is computed over. When absent, the URL is rebuilt from the
    /// request (`X-Forwarded-Proto` or http, the `Host` header, the path and query).
    pub twilio_webhook_url: Option<String>,
    /// `BOT_LEASE_MS` (default 10000): how long a bridge holds a bot without renewing.
    /// Another bridge takes a dead holder's bots over within this plus its 2 s look-up period.
    pub bot_lease_ms: i64,
    /// The email connector's server, account and TLS settings (`EMAIL_*`; the
    /// password is the bot's `token` variable).
    pub email: EmailConfig,
    /// Values of the connector variables seen at load time (`TELEGRAM_BOT_TOKEN`,
    /// `TELEGRAM_BOT_TOKEN_2`, …), by name; see [`Config::bot_secret`].
    bot_secrets: BTreeMap<String, SecretString>,
    /// Loaded from the process environment: a bot may name any variable, read when its connector starts.
    process_env: bool,
}

impl Config {
    /// Reads the process environment, after loading `.env` when present.
    pub fn from_env() -> Result<Config, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::Io(format!(".env: {e}"))),
        }
        let mut config = Config::from_lookup(|name| std::env::var(name).ok())?;
        config.process_env = true;
        Ok(config)
    }

    /// Builds the configuration from any variable lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let data_dir = PathBuf::from(get("ARVIS_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = match get("DATABASE_URL") {
            Some(url) => {
                if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(invalid("DATABASE_URL", "must start with sqlite: or postgres://"));
                }
                url
            }
            None => format!("sqlite://{}", data_dir.join("arvis.db").display()),
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("LOG_FORMAT", format!("expected pretty or json, got {other:?}"))),
        };
        let secret = |name: &str| get(name).map(SecretString::from);
        let (accounts, secrets) = discover_accounts(&get)?;
        Ok(Config {
            database_url,
            database_max_connections: parse_or(&get, "DATABASE_MAX_CONNECTIONS", 10)?,
            nats_url: get("NATS_URL"),
            gateway_addr: parse_or(&get, "GATEWAY_ADDR", SocketAddr::from(([127, 0, 0, 1], 5100)))?,
            ws_bridge_addr: parse_or(&get, "WS_BRIDGE_ADDR", SocketAddr::from(([127, 0, 0, 1], 5070)))?,
            data_dir,
            dashboard_password: secret("DASHBOARD_PASSWORD"),
            dashboard_api_key: secret("DASHBOARD_API_KEY"),
            jwt_secret: secret("JWT_SECRET"),
            web_api_key: secret("WEB_API_KEY"),
            ws_max_connections: parse_or(&get, "WS_MAX_CONNECTIONS", 20_000usize)
                .and_then(|n| if n == 0 { Err(invalid("WS_MAX_CONNECTIONS", "must be at least 1")) } else { Ok(n) })?,
            ws_frames_per_sec: parse_or(&get, "WS_FRAMES_PER_SEC", 20u32).and_then(|n| {
                if (1..=100_000).contains(&n) {
                    Ok(n)
                } else {
                    Err(invalid("WS_FRAMES_PER_SEC", "must be between 1 and 100000"))
                }
            })?,
            cookie_secure: parse_bool(&get, "COOKIE_SECURE", false)?,
            log_format,
            worker_concurrency: parse_or(&get, "WORKER_CONCURRENCY", 8usize)
                .and_then(|n| if n == 0 { Err(invalid("WORKER_CONCURRENCY", "must be at least 1")) } else { Ok(n) })?,
            chat_timeout: Duration::from_secs(parse_or(&get, "CHAT_TIMEOUT_SECS", 120u64)?),
            scheduler_tz: scheduler_tz(&get)?,
            log_retention_rows: parse_or(&get, "LOG_RETENTION_ROWS", 10_000i64).and_then(|n| {
                if (100..=10_000_000).contains(&n) {
                    Ok(n)
                } else {
                    Err(invalid("LOG_RETENTION_ROWS", "must be between 100 and 10000000"))
                }
            })?,
            webhook_rate_limit_per_min: parse_or(&get, "WEBHOOK_RATE_LIMIT_PER_MIN", 60u32).and_then(|n| {
                if n == 0 { Err(invalid("WEBHOOK_RATE_LIMIT_PER_MIN", "must be at least 1")) } else { Ok(n) }
            })?,
            health_addr: match get("HEALTH_ADDR") {
                None => None,
                Some(v) => {
                    Some(v.trim().parse().map_err(|e| invalid("HEALTH_ADDR", format!("cannot parse {v:?}: {e}")))?)
                }
            },
            metrics_public: parse_bool(&get, "METRICS_PUBLIC", false)?,
            http_fetch_allow_private: parse_bool(&get, "HTTP_FETCH_ALLOW_PRIVATE", false)?,
            web_search_url: match get("WEB_SEARCH_URL") {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => Some(u.trim().to_string()),
                Some(_) => return Err(invalid("WEB_SEARCH_URL", "must be an http:// or https:// URL")),
                None => None,
            },
            mcp_stdio_allowed: parse_bool(&get, "MCP_STDIO_ALLOWED", true)?,
            mcp_call_timeout: Duration::from_millis(parse_or(&get, "MCP_CALL_TIMEOUT_MS", 30_000u64).and_then(
                |n| if n < 10 { Err(invalid("MCP_CALL_TIMEOUT_MS", "must be at least 10")) } else { Ok(n) },
            )?),
            mcp_result_max_bytes: parse_or(&get, "MCP_RESULT_MAX_BYTES", 65_536usize).and_then(|n| {
                if n < 256 { Err(invalid("MCP_RESULT_MAX_BYTES", "must be at least 256")) } else { Ok(n) }
            })?,
            worker_shutdown_grace: Duration::from_secs(parse_or(&get, "WORKER_SHUTDOWN_GRACE_SECS", 25u64)?),
            worker_lease_ms: parse_or(&get, "WORKER_LEASE_MS", 30_000i64)
                .and_then(|n| if n < 100 { Err(invalid("WORKER_LEASE_MS", "must be at least 100")) } else { Ok(n) })?,
            worker_retry_base_ms: parse_or(&get, "WORKER_RETRY_BASE_MS", 2_000i64).and_then(|n| {
                if n < 0 { Err(invalid("WORKER_RETRY_BASE_MS", "must not be negative")) } else { Ok(n) }
            })?,
            worker_effects_delay_ms: parse_or(&get, "WORKER_EFFECTS_DELAY_MS", 0u64)?,
            provider_timeout: Duration::from_secs(parse_or(&get, "PROVIDER_TIMEOUT_SECS", 120u64)?.max(1)),
            model_prices_file: get("MODEL_PRICES_FILE").map(|p| PathBuf::from(p.trim())),
            accounts,
            secrets,
            env_present: crate::domain::connectors::CONNECTORS
                .iter()
                .flat_map(|(_, vars)| vars.iter())
                .filter(|v| get(v).is_some())
                .map(|v| v.to_string())
                .collect(),
            telegram_api_url: api_url(&get, "TELEGRAM_API_URL", "https://api.telegram.org")?,
            discord_api_url: api_url(&get, "DISCORD_API_URL", "https://discord.com/api/v10")?,
            slack_api_url: api_url(&get, "SLACK_API_URL", "https://slack.com/api")?,
            whatsapp_api_url: api_url(&get, "WHATSAPP_API_URL", "https://graph.facebook.com/v21.0")?,
            twilio_api_url: api_url(&get, "TWILIO_API_URL", "https://api.twilio.com")?,
            twilio_webhook_url: match get("TWILIO_WEBHOOK_URL") {
                Some(u) if u.trim().starts_with("http://") || u.trim().starts_with("https://") => {
                    Some(u.trim().to_string())
                }
                Some(_) => return Err(invalid("TWILIO_WEBHOOK_URL", "must be an http:// or https:// URL")),
                None => None,
            },
            bot_lease_ms: parse_or(&get, "BOT_LEASE_MS", 10_000i64)
                .and_then(|n| if n < 500 { Err(invalid("BOT_LEASE_MS", "must be at least 500")) } else { Ok(n) })?,
            email: EmailConfig::from_lookup(&get)?,
            bot_secrets: bot_secrets(&get),
            process_env: false,
        })
    }

    /// The secret a bot's `token` names. From the variables seen at load time
    /// (every connector variable and its `_1`…`_9` forms); when the
    /// configuration came from the process environment, any other variable is
    /// read when the bot starts (a bot may name any variable, and a restart
    /// must not be needed to pick up a new bot).
    pub fn bot_secret(&self, var: &str) -> Option<SecretString> {
        if let Some(s) = self.bot_secrets.get(var) {
            return Some(s.clone());
        }
        if self.process_env {
            return std::env::var(var).ok().filter(|v| !v.trim().is_empty()).map(SecretString::from);
        }
        None
    }

    /// The value of a secret variable that an account names (its API key).
    pub fn secret(&self, var: &str) -> Option<&SecretString> {
        self.secrets.get(var)
    }

    /// Every configured secret value, for tests and log scrubbing checks.
    pub fn all_secret_values(&self) -> Vec<String> {
        let mut out: Vec<String> = self.secrets.values().map(|s| s.expose_secret().to_string()).collect();
        out.extend(self.bot_secrets.values().map(|s| s.expose_secret().to_string()));
        for s in [&self.dashboard_password, &self.dashboard_api_key, &self.jwt_secret, &self.web_api_key]
            .into_iter()
            .flatten()
        {
            out.push(s.expose_secret().to_string());
        }
        out
    }

    /// The database URL with any password replaced, for log lines.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }

    /// Whether a connector variable (see `domain::connectors::CONNECTORS`) was
    /// set when the configuration was loaded. Values are never kept.
    pub fn env_present(&self, name: &str) -> bool {
        self.env_present.contains(name)
    }

    /// True when some credential protects the API.
    pub fn api_auth_configured(&self) -> bool {
        self.dashboard_password.is_some() || self.dashboard_api_key.is_some()
    }

    /// Where the SQLite file's directory and the generated JWT secret live.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// An http(s) or ws(s) base URL, without a trailing slash.
fn api_url(get: &impl Fn(&str) -> Option<String>, var: &str, default: &str) -> Result<String, ConfigError> {
    let url = get(var).map(|u| u.trim().to_string()).unwrap_or_else(|| default.to_string());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid(var, "must be an http:// or https:// URL"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Connector variables and their numbered forms, with their values; settings
/// (`SETTING_VARS`: hosts, ports) are not secrets and are read elsewhere.
fn bot_secrets(get: &impl Fn(&str) -> Option<String>) -> BTreeMap<String, SecretString> {
    let mut out = BTreeMap::new();
    for (_, vars) in crate::domain::connectors::CONNECTORS {
        for var in vars.iter().filter(|v| !crate::domain::connectors::SETTING_VARS.contains(v)) {
            for name in std::iter::once(var.to_string()).chain((1..10).map(|i| format!("{var}_{i}"))) {
                if let Some(v) = get(&name) {
                    out.insert(name, SecretString::from(v));
                }
            }
        }
    }
    out
}

fn redact_url(url: &str) -> String {
    // scheme://user:password@host → scheme://user:***@host
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

fn parse_or<T: FromStr>(get: &impl Fn(&str) -> Option<String>, var: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(var) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e| invalid(var, format!("cannot parse {v:?}: {e}"))),
    }
}

/// The scheduler's time zone: `SCHEDULER_TZ`, else `TZ`, else UTC. A name that
/// is not a known IANA zone is an error naming the variable it came from. `TZ`
/// may also be POSIX's `:Zone/Name` or a path to a TZif file (`/etc/localtime`).
fn scheduler_tz(get: &impl Fn(&str) -> Option<String>) -> Result<jiff::tz::TimeZone, ConfigError> {
    let Some((var, value)) = get("SCHEDULER_TZ").map(|v| ("SCHEDULER_TZ", v)).or_else(|| get("TZ").map(|v| ("TZ", v)))
    else {
        return Ok(jiff::tz::TimeZone::UTC);
    };
    let name = value.trim().trim_start_matches(':');
    if name.starts_with('/') {
        let bytes =
            std::fs::read(name).map_err(|e| invalid(var, format!("cannot read time zone file {name:?}: {e}")))?;
        return jiff::tz::TimeZone::tzif(name, &bytes)
            .map_err(|e| invalid(var, format!("{name:?} is not a time zone file: {e}")));
    }
    jiff::tz::TimeZone::get(name)
        .map_err(|e| invalid(var, format!("unknown time zone {name:?} (use an IANA name like Europe/Berlin): {e}")))
}

fn parse_bool(get: &impl Fn(&str) -> Option<String>, var: &str, default: bool) -> Result<bool, ConfigError> {
    match get(var).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(v) => Err(invalid(var, format!("expected true or false, got {v:?}"))),
    }
}

type Discovered = (Vec<AccountSpec>, BTreeMap<String, SecretString>);

/// Accounts from the environment, with the names and priority bands of the
/// original (behaviour reference §5). Indexed keys (`_1`, `_2`, …) stop at the
/// first gap. Every `*_BASE_URL` must be an http(s) URL.
fn discover_accounts(get: &impl Fn(&str) -> Option<String>) -> Result<Discovered, ConfigError> {
    struct Family {
        key: &'static str,
        provider: &'static str,
        name: &'static str,
        model_var: &'static str,
        default_model: &'static str,
        base_var: Option<&'static str>,
        priority: i64,
    }
    const FAMILIES: &[Family] = &[
        Family {
            key: "ANTHROPIC_API_KEY",
            provider: "anthropic",
            name: "anthropic-api",
            model_var: "ANTHROPIC_API_MODEL",
            default_model: "claude-haiku-4-5-20251001",
            base_var: Some("ANTHROPIC_BASE_URL"),
            priority: 20,
        },
        Family {
            key: "OPENAI_API_KEY",
            provider: "openai",
            name: "openai-api",
            model_var: "OPENAI_MODEL",
            // gpt-4o-mini shuts down 2027-01-14; gpt-6-luna is OpenAI's named replacement.
            default_model: "gpt-6-luna",
            base_var: Some("OPENAI_BASE_URL"),
            priority: 50,
        },
        Family {
            key: "OPENROUTER_API_KEY",
            provider: "openrouter",
            name: "openrouter-api",
            model_var: "OPENROUTER_MODEL",
            default_model: "anthropic/claude-sonnet-4.6",
            base_var: Some("OPENROUTER_BASE_URL"),
            priority: 60,
        },
        Family {
            key: "GOOGLE_API_KEY",
            provider: "google",
            name: "google-api",
            model_var: "GOOGLE_MODEL",
            // gemini-2.0-flash was shut down on 2026-06-01 (and 2.5 is being retired).
            default_model: "gemini-3.5-flash",
            base_var: Some("GOOGLE_BASE_URL"),
            priority: 70,
        },
    ];
    let mut accounts = Vec::new();
    let mut secrets = BTreeMap::new();
    let check_url = |var: &str, url: String| -> Result<String, ConfigError> {
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(url.trim_end_matches('/').to_string())
        } else {
            Err(invalid(var, "must be an http:// or https:// URL"))
        }
    };
    for f in FAMILIES {
        // Index 0 is the plain variable; then _1, _2, … until the first gap.
        // A plain key and `_1` may both exist; `_1` still counts as the second key.
        for i in 0usize.. {
            let suffix = if i == 0 { String::new() } else { format!("_{i}") };
            let key_var = format!("{}{suffix}", f.key);
            let Some(value) = get(&key_var) else {
                if i == 0 {
                    continue;
                }
                break;
            };
            let model = get(&format!("{}{suffix}", f.model_var))
                .or_else(|| get(f.model_var))
                .unwrap_or_else(|| f.default_model.to_string());
            let base_url = match f.base_var {
                Some(bv) => {
                    let var = format!("{bv}{suffix}");
                    match get(&var).map(|u| (var.clone(), u)).or_else(|| get(bv).map(|u| (bv.to_string(), u))) {
                        Some((var, u)) => Some(check_url(&var, u)?),
                        None => None,
                    }
                }
                None => None,
            };
            let name = if i == 0 { f.name.to_string() } else { format!("{}-{}", f.name, i + 1) };
            secrets.insert(key_var.clone(), SecretString::from(value));
            accounts.push(AccountSpec {
                name,
                provider: f.provider.to_string(),
                model,
                base_url,
                api_key_env: Some(key_var),
                priority: f.priority + i as i64,
            });
        }
    }
    if let Some(url) = get("OLLAMA_BASE_URL") {
        let mut url = check_url("OLLAMA_BASE_URL", url)?;
        if !url.ends_with("/v1") {
            url.push_str("/v1");
        }
        accounts.push(AccountSpec {
            name: "ollama-local".into(),
            provider: "ollama".into(),
            model: get("OLLAMA_MODEL").unwrap_or_else(|| "qwen2.5-coder:7b".into()),
            base_url: Some(url),
            api_key_env: None,
            priority: 200,
        });
    }
    Ok((accounts, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_environment_at_all() {
        let c = config(&[]).unwrap();
        assert_eq!(c.gateway_addr.to_string(), "127.0.0.1:5100");
        assert_eq!(c.ws_bridge_addr.to_string(), "127.0.0.1:5070");
        assert_eq!(c.database_url, "sqlite://./data/arvis.db");
        assert!(c.nats_url.is_none());
        assert!(c.accounts.is_empty());
    }

    #[test]
    fn email_settings_are_not_secrets_but_its_password_is() {
        let c = config(&[
            ("EMAIL_IMAP_HOST", "127.0.0.1"),
            ("EMAIL_USER", "bot@example.test"),
            ("EMAIL_PASSWORD", "pw-secret"),
            ("EMAIL_PASSWORD_2", "pw-other"),
        ])
        .unwrap();
        let secrets = c.all_secret_values();
        assert!(secrets.contains(&"pw-secret".to_string()) && secrets.contains(&"pw-other".to_string()));
        assert!(!secrets.iter().any(|s| s == "127.0.0.1" || s == "bot@example.test"), "{secrets:?}");
        assert_eq!(c.email.imap_host.as_deref(), Some("127.0.0.1"));
        assert!(c.bot_secret("EMAIL_PASSWORD_2").is_some());
        assert!(c.env_present("EMAIL_IMAP_HOST") && !c.env_present("EMAIL_SMTP_HOST"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = config(&[("GATEWAY_ADDR", "not-an-address")]).unwrap_err().to_string();
        assert!(err.starts_with("GATEWAY_ADDR:"), "{err}");
        let err = config(&[("WORKER_CONCURRENCY", "0")]).unwrap_err().to_string();
        assert!(err.starts_with("WORKER_CONCURRENCY:"), "{err}");
        let err = config(&[("DATABASE_URL", "mysql://x")]).unwrap_err().to_string();
        assert!(err.starts_with("DATABASE_URL:"), "{err}");
        let err = config(&[("OPENAI_API_KEY", "k"), ("OPENAI_BASE_URL", "ftp://x")]).unwrap_err().to_string();
        assert!(err.starts_with("OPENAI_BASE_URL:"), "{err}");
    }

    #[test]
    fn scheduler_time_zone_comes_from_scheduler_tz_then_tz() {
        assert_eq!(config(&[]).unwrap().scheduler_tz, jiff::tz::TimeZone::UTC);
        let c = config(&[("SCHEDULER_TZ", "Europe/Berlin"), ("TZ", "Asia/Tokyo")]).unwrap();
        assert_eq!(c.scheduler_tz.iana_name(), Some("Europe/Berlin"));
        let c = config(&[("TZ", ":Asia/Tokyo")]).unwrap();
        assert_eq!(c.scheduler_tz.iana_name(), Some("Asia/Tokyo"));
        let err = config(&[("SCHEDULER_TZ", "Mars/Olympus")]).unwrap_err().to_string();
        assert!(err.starts_with("SCHEDULER_TZ:"), "{err}");
        let err = config(&[("TZ", "Nowhere/Land")]).unwrap_err().to_string();
        assert!(err.starts_with("TZ:"), "{err}");
        assert_eq!(config(&[]).unwrap().webhook_rate_limit_per_min, 60);
        assert_eq!(config(&[]).unwrap().log_retention_rows, 10_000);
        assert!(config(&[("LOG_RETENTION_ROWS", "5")]).unwrap_err().to_string().starts_with("LOG_RETENTION_ROWS:"));
        let err = config(&[("WEBHOOK_RATE_LIMIT_PER_MIN", "0")]).unwrap_err().to_string();
        assert!(err.starts_with("WEBHOOK_RATE_LIMIT_PER_MIN:"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = config(&[("DASHBOARD_PASSWORD", "hunter2-pw"), ("ANTHROPIC_API_KEY", "sk-ant-secret")]).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2-pw"), "{debug}");
        assert!(!debug.contains("sk-ant-secret"), "{debug}");
        assert_eq!(
            c.secret("ANTHROPIC_API_KEY").map(|s| s.expose_secret().to_string()).as_deref(),
            Some("sk-ant-secret")
        );
    }

    #[test]
    fn indexed_keys_stop_at_the_first_gap() {
        let c = config(&[
            ("OPENAI_API_KEY", "a"),
            ("OPENAI_API_KEY_1", "b"),
            ("OPENAI_API_KEY_2", "c"),
            ("OPENAI_API_KEY_4", "skipped"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("OLLAMA_BASE_URL", "http://localhost:11434"),
        ])
        .unwrap();
        let names: Vec<_> = c.accounts.iter().map(|a| (a.name.as_str(), a.priority)).collect();
        assert_eq!(names, [("openai-api", 50), ("openai-api-2", 51), ("openai-api-3", 52), ("ollama-local", 200)]);
        assert_eq!(c.accounts[0].base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert_eq!(c.accounts[3].base_url.as_deref(), Some("http://localhost:11434/v1"));
        assert_eq!(c.accounts[1].api_key_env.as_deref(), Some("OPENAI_API_KEY_1"));
    }

    #[test]
    fn agent_tool_settings() {
        let c = config(&[]).unwrap();
        assert!(!c.http_fetch_allow_private);
        assert!(c.web_search_url.is_none());
        let c = config(&[("HTTP_FETCH_ALLOW_PRIVATE", "true"), ("WEB_SEARCH_URL", "http://127.0.0.1:8888/search")])
            .unwrap();
        assert!(c.http_fetch_allow_private);
        assert_eq!(c.web_search_url.as_deref(), Some("http://127.0.0.1:8888/search"));
        let err = config(&[("WEB_SEARCH_URL", "duckduckgo")]).unwrap_err().to_string();
        assert!(err.starts_with("WEB_SEARCH_URL:"), "{err}");
    }

    #[test]
    fn database_passwords_are_redacted_for_logs() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("sqlite://data/arvis.db"), "sqlite://data/arvis.db");
    }
}
