//! The database layer: the one place where SQL lives.
//!
//! [`Store`] is the single interface every service uses. It runs on SQLite or
//! Postgres, chosen once from the URL, through sqlx's `Any` driver: the SQL is
//! written once in the common subset of both dialects (`$1` placeholders,
//! `RETURNING`, `ON CONFLICT`), and the few statements that must differ (the
//! queue claim, pool set-up, migrations) branch on [`Dialect`]. We chose this
//! over two hand-written implementations of a trait because the two would be
//! ~95% identical text to keep in step; the contract tests run every method on
//! both backends, which is what keeps the dialects honest.
//!
//! Conventions: timestamps are `i64` milliseconds (see [`crate::clock`]); JSON
//! columns are TEXT; every multi-statement write is one transaction (on
//! Postgres, an account's success after a served call is the one deliberate
//! exception, see below).
//!
//! A bound row limit is written `LIMIT $n + 0`, never `LIMIT $n`: SQLite
//! (3.47 and later) reads a bare parameter's value while it plans a `LIMIT`
//! and then marks the statement to be compiled again whenever that parameter
//! is bound anew, i.e. on every run. perf showed that re-preparing at ~8 % of
//! the writer thread (the queue claim) and ~6 % of all samples overall. The
//! expression is evaluated at run time instead; Postgres plans it alike.
//! A test below keeps bare `LIMIT $n` out of the SQL.
//!
//! SQLite allows one writer at a time. Rather than let concurrent writers fight
//! over the lock (and fail with `SQLITE_BUSY` on read-to-write upgrades), the
//! SQLite store keeps a single-connection *write* pool beside a *read* pool.
//! On Postgres both are the same pool. On SQLite the chat's hot statements
//! also have a fast path off sqlx, in [`sqlite`]: the writer lane (group
//! commit on a thread of its own), the hot reads on the caller's thread, and
//! the WAL checkpoint thread. That module says why it exists and why it is a
//! module rather than a second implementation of a trait.
//!
//! # Where things are
//!
//! One hop from an entry point to its SQL: a service calls a [`Store`] method;
//! the method lives in the file of the table it is about, with its SQL text
//! (`const`s, written once for both dialects), the values it binds (one
//! `…_args` function of [`args::Arg`]s when both drivers bind them) and its
//! row type (one `any_row!` declaration, which maps rows for sqlx and for
//! rusqlite alike). A hot method branches once on `self.sqlite()`: on SQLite
//! to [`sqlite::queue`] / [`sqlite::scheduling`] (the same statements, run in
//! the writer lane) or to a hot read; otherwise it runs its sqlx code, which
//! is Postgres's path and SQLite's for everything not hot.
//!
//! - `accounts.rs`: LLM accounts — the API's CRUD, the worker's usable
//!   accounts, each call's success and rate limits.
//! - `usage.rs`: usage rows (the one insert, the reports, spend sums).
//! - `queue.rs`: the job queue (enqueue, claim, lease, finish, fail) and the
//!   chat's messages written with it; `jobs.rs`: jobs as the API shows them.
//! - `workflows.rs`: workflows (the one insert, the API's CRUD);
//!   `scheduling.rs`: the scheduler's due-time claims.
//! - `memory_ctx.rs`: what a run reads and writes of its agent's context
//!   (prompt memory, conversation tail, compactions); `memory.rs` and the
//!   other files: one feature each.
//! - [`sqlite`]: the rusqlite side; [`args`]: bound values; `row.rs`: `any_row!`.
//!
//! **An account's success** (rest cleared, message counted) is not part of
//! the write that records a call's usage, on either dialect: it comes last,
//! and a failure there is logged, not returned — the counters are advisory
//! (they order failover), and failing a finish whose reply and usage were
//! already committed made the worker retry it and bill the calls twice. On
//! Postgres it runs after the commit: every run updates the same few account
//! rows, and holding their row locks across the transaction serialised the
//! workers (chat-throughput fell from ~430 to ~230 jobs/s). The SQLite lane
//! runs it at the end of the request's savepoint, in the same commit (one
//! writer, no row locks to hold; a failed statement leaves the savepoint as
//! it was). See [`queue`].

#[macro_use]
mod row;
#[macro_use]
pub(crate) mod args;
pub mod sqlite;

pub mod accounts;
pub mod agents;
pub mod api_keys;
pub mod bot_leases;
pub mod bots;
pub mod cache;
pub mod conversations;
pub mod dashboard;
pub mod dashboard_ops;
pub mod effects;
pub mod jobs;
pub mod logs;
pub mod mcp;
pub mod memory;
pub mod memory_ctx;
pub mod outbox;
pub mod queue;
pub mod rate_events;
pub mod routing;
pub mod scheduling;
pub mod sessions;
pub mod settings;
pub mod skills;
pub mod usage;
pub mod webhook_inbound;
pub mod webhooks;
pub mod workflows;

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _};

/// A database failure, named for the condition. No sqlx or rusqlite type
/// leaves `db`: every driver error is classified here once, and callers (the
/// gateway's status codes, the worker's retry decision) match on these.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (a duplicate slug, name, path…).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A foreign key refused the write (the referenced row does not exist).
    #[error("reference to a missing row: {0}")]
    MissingReference(String),
    /// The database cannot be reached now — the pool timed out, the
    /// connection broke, the server is shutting down or restarting: try again.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The store was closed (the process is shutting down).
    #[error("the store is closed")]
    Closed,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Anything else: a fault of ours (bad SQL, a failed migration) or the database's.
    #[error("database error: {0}")]
    Other(String),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> DbError {
        classify(e)
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(e: sqlx::migrate::MigrateError) -> DbError {
        DbError::Other(format!("migration: {e}"))
    }
}

/// Classifies a driver error: constraint violations to [`DbError::Conflict`] /
/// [`DbError::MissingReference`], an unreachable database to
/// [`DbError::Unavailable`] (Postgres SQLSTATE classes 08, connection
/// exception, and 57P, operator intervention: shutdown, restart), a closed
/// pool to [`DbError::Closed`].
pub(crate) fn classify(e: sqlx::Error) -> DbError {
    match &e {
        sqlx::Error::Database(db) => {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => return DbError::Conflict(db.message().to_string()),
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return DbError::MissingReference(db.message().to_string());
                }
                _ => {}
            }
            // The Any driver does not always carry the kind through; fall back on the
            // engines' stable error codes (SQLite extended codes, Postgres SQLSTATE).
            match db.code().as_deref() {
                Some("2067") | Some("1555") | Some("23505") => return DbError::Conflict(db.message().to_string()),
                Some("787") | Some("23503") => return DbError::MissingReference(db.message().to_string()),
                Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                    return DbError::Unavailable(db.message().to_string());
                }
                _ => {}
            }
            DbError::Other(e.to_string())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => DbError::Unavailable(e.to_string()),
        sqlx::Error::PoolClosed => DbError::Closed,
        _ => DbError::Other(e.to_string()),
    }
}

/// Every SQLite connection's set-up: sqlx's pools, the writer lane's and the
/// hot reads' own connections.
///
/// WAL lets readers proceed during a write; NORMAL is safe with WAL (a power
/// cut may lose the last commits, never corrupt); the busy timeout covers
/// other processes. temp_store=MEMORY keeps statement and savepoint journals
/// (the writer lane's batches) in memory: by default a journal spills to a
/// temporary file past 64 KiB, and those writes were ~6 % of the writer
/// thread's time. wal_autocheckpoint=0: no connection checkpoints inside its
/// own commit; the store's checkpoint thread does it beside the writers
/// ([`sqlite::checkpoint`]), every ~3 000 pages of WAL rather than SQLite's 1000 —
/// under load the same hot pages (the job queue's, the newest messages') are
/// committed again and again, and a checkpoint writes each distinct page
/// once, so fewer checkpoints write far less. Checkpoints and their fsyncs
/// had been ~29 % of the writer lane's samples. journal_size_limit: when the
/// WAL starts over, a file that a burst grew past 64 MiB is cut back to that.
pub(crate) const SQLITE_SETUP: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
     PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=0; \
     PRAGMA journal_size_limit=67108864;";

/// A Postgres connection idle longer than this is pinged before it is used.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The database. Cheap to clone (pools are reference-counted).
#[derive(Clone)]
pub struct Store {
    /// Reads (and, on Postgres, everything).
    read: AnyPool,
    /// Writes: one connection on SQLite, the same pool as `read` on Postgres.
    write: AnyPool,
    dialect: Dialect,
    /// The agent list, shared by every clone of this store ([`cache`]).
    agents: std::sync::Arc<cache::AgentCache>,
    /// The enabled skills, likewise.
    skills: std::sync::Arc<cache::SkillCache>,
    /// The settings, likewise.
    settings: std::sync::Arc<cache::SettingsCache>,
    /// SQLite: the fast path — writer lane, hot-read connections, checkpoint
    /// thread ([`sqlite`]). `None` on Postgres.
    sqlite: Option<std::sync::Arc<sqlite::Sqlite>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database named by `url` (`sqlite://path` or `postgres://…`).
    /// A SQLite file and its directory are created when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            if path == ":memory:" || path.is_empty() {
                // Each connection would get a database of its own.
                return Err(DbError::Other(
                    "SQLite needs a file (sqlite://path/to/arvis.db), not an in-memory database".into(),
                ));
            }
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| DbError::Other(format!("creating {}: {e}", dir.display())))?;
            }
            let url = if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") };
            let options = AnyConnectOptions::from_str(&url)?;
            let pool = |n: u32| {
                AnyPoolOptions::new()
                    .max_connections(n)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    // A SQLite connection is a file handle on its own thread: it
                    // cannot "drop". sqlx's default ping before every acquire
                    // was one extra thread round trip per statement.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_SETUP).await?;
                            Ok(())
                        })
                    })
            };
            let write = pool(1).connect_with(options.clone()).await?;
            let read = pool(max_connections.max(1)).connect_with(options).await?;
            Ok(Store {
                read,
                dialect: Dialect::Sqlite,
                agents: Default::default(),
                skills: Default::default(),
                settings: Default::default(),
                sqlite: Some(std::sync::Arc::new(sqlite::Sqlite::start(write.clone(), path)?)),
                write,
            })
        } else {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(30))
                // sqlx pings before every acquire by default: one extra network
                // round trip per statement. Ping only a connection that sat idle
                // (it may have been cut, e.g. by a database restart); a busy one
                // has just proven itself, and should it fail anyway, the caller
                // sees the error (jobs retry, requests answer 503).
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > IDLE_BEFORE_PING {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect(url)
                .await?;
            Ok(Store {
                read: pool.clone(),
                write: pool,
                dialect: Dialect::Postgres,
                agents: Default::default(),
                skills: Default::default(),
                settings: Default::default(),
                sqlite: None,
            })
        }
    }

    /// Applies the embedded migrations of this dialect. Safe to run from many
    /// processes at once (sqlx takes an advisory lock on Postgres; SQLite has one writer).
    pub async fn migrate(&self) -> Result<()> {
        migrator(self.dialect).run(&self.write).await?;
        Ok(())
    }

    /// True when the database answers and every embedded migration is applied.
    pub async fn ready(&self) -> Result<bool> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&self.read).await?;
        let expected = embedded_migrations(self.dialect).len();
        Ok(applied as usize >= expected)
    }

    /// The agent cache, for invalidation by bus notices from other processes.
    pub fn agent_cache(&self) -> std::sync::Arc<cache::AgentCache> {
        self.agents.clone()
    }

    /// The skill cache, likewise.
    pub fn settings_cache(&self) -> std::sync::Arc<cache::SettingsCache> {
        self.settings.clone()
    }

    pub fn skill_cache(&self) -> std::sync::Arc<cache::SkillCache> {
        self.skills.clone()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The SQLite fast path ([`sqlite`]); `None` on Postgres.
    pub(crate) fn sqlite(&self) -> Option<&sqlite::Sqlite> {
        self.sqlite.as_deref()
    }

    /// How many idle hot-read connections the store keeps now (diagnostics
    /// and tests; always 0 on Postgres, which reads through its pool).
    pub fn hot_idle(&self) -> usize {
        self.sqlite().map_or(0, |lite| lite.hot.idle())
    }

    pub(crate) fn r(&self) -> &AnyPool {
        &self.read
    }

    pub(crate) fn w(&self) -> &AnyPool {
        &self.write
    }

    /// A write transaction that holds the write lock from its first statement
    /// (`BEGIN IMMEDIATE` on SQLite), so it may read before it writes without
    /// risking `SQLITE_BUSY` on the upgrade when another process shares the file.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.write.begin().await?,
        })
    }

    /// Closes both pools (shutdown).
    pub async fn close(&self) {
        if let Some(lite) = &self.sqlite {
            lite.close();
        }
        self.write.close().await;
        self.read.close().await;
    }
}

/// A statement assembled from constant parts (column lists, a dialect branch).
/// Never pass user input here: values are always bound.
pub(crate) fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// `count` numbered placeholders from `$first` on, comma-separated (`$3, $4, $5`),
/// for lists whose length is known only at run time. sqlx's QueryBuilder
/// emits `?` under the Any driver, which Postgres refuses.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// JSON text column → value; a broken stored value is an error, not a panic.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The migrations `shared/build.rs` embedded (what `sqlx::migrate!` would).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

fn embedded_migrations(dialect: Dialect) -> &'static [(i64, &'static str, &'static str)] {
    match dialect {
        Dialect::Sqlite => embedded::SQLITE,
        Dialect::Postgres => embedded::POSTGRES,
    }
}

/// The dialect's migrator, built once per process (each migration's checksum
/// is a SHA-384 of its SQL, as `sqlx::migrate!` computes it).
fn migrator(dialect: Dialect) -> &'static sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    static SQLITE: std::sync::OnceLock<Migrator> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<Migrator> = std::sync::OnceLock::new();
    let cell = match dialect {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| {
        Migrator::with_migrations(
            embedded_migrations(dialect)
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        std::borrow::Cow::Borrowed(*description),
                        MigrationType::Simple,
                        sqlx::SqlStr::from_static(sql),
                        sql.starts_with("-- no-transaction"),
                    )
                })
                .collect(),
        )
    })
}

/// A boolean column as read through the Any driver: Postgres returns BOOLEAN,
/// SQLite returns the INTEGER 0/1 it stores (the Any driver refuses SQLite's
/// BOOLEAN type outright). Writes bind plain `bool` on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub bool);

/// For row fields declared `bool as Flag` (`any_row!`).
impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0
    }
}

impl sqlx::Type<sqlx::Any> for Flag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <bool as sqlx::Type<sqlx::Any>>::type_info()
    }
    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        ty.kind() == sqlx::any::AnyTypeInfoKind::Bool || ty.kind().is_integer()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for Flag {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Flag, sqlx::error::BoxDynError> {
        use sqlx::ValueRef as _;
        if value.type_info().kind() == sqlx::any::AnyTypeInfoKind::Bool {
            <bool as sqlx::Decode<sqlx::Any>>::decode(value).map(Flag)
        } else {
            <i64 as sqlx::Decode<sqlx::Any>>::decode(value).map(|n| Flag(n != 0))
        }
    }
}

#[cfg(test)]
mod migration_tests {
    use super::{Dialect, migrator};

    /// The embedded list is what sqlx itself reads from the directory (the
    /// resolver `sqlx::migrate!` uses): same versions, descriptions, checksums
    /// — so databases migrated by earlier builds stay valid.
    #[tokio::test]
    async fn embedded_migrations_match_what_sqlx_reads_from_disk() {
        for (dialect, dir) in [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres")] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
            let from_disk = sqlx::migrate::Migrator::new(path).await.unwrap();
            let ours: Vec<_> =
                migrator(dialect).iter().map(|m| (m.version, m.description.clone(), m.checksum.clone())).collect();
            let theirs: Vec<_> =
                from_disk.iter().map(|m| (m.version, m.description.clone(), m.checksum.clone())).collect();
            assert!(ours.len() >= 12, "{dir}: {} migrations", ours.len());
            assert_eq!(ours, theirs, "{dir}");
        }
    }
}

#[cfg(test)]
mod placeholder_tests {
    #[test]
    fn placeholders_are_numbered_from_the_first() {
        assert_eq!(super::placeholders(3, 3), "$3, $4, $5");
        assert_eq!(super::placeholders(1, 1), "$1");
        assert_eq!(super::placeholders(2, 0), "");
    }
}

#[cfg(test)]
mod limit_tests {
    /// Every bound `LIMIT` in the SQL of this module is `LIMIT $n + 0` (see
    /// the module docs: a bare parameter makes SQLite re-prepare the
    /// statement on every run).
    #[test]
    fn no_bare_bound_limit() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/db");
        let mut offenders = Vec::new();
        let files = std::fs::read_dir(&dir).unwrap().chain(std::fs::read_dir(dir.join("sqlite")).unwrap());
        for entry in files {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Spelled in two parts so that this test's own text does not match.
            let needle = concat!("LIMIT ", "$");
            for (at, _) in text.match_indices(needle) {
                let rest = &text[at + needle.len()..];
                let param = rest.find(|c: char| !(c.is_ascii_digit() || c == '{' || c == '}')).unwrap_or(rest.len());
                if !rest[param..].starts_with(" + 0") && param > 0 {
                    offenders.push(format!("{}: parameter {}", path.display(), &rest[..param]));
                }
            }
        }
        assert!(offenders.is_empty(), "bare bound LIMITs: {offenders:?}");
    }
}
