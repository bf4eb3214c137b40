//! The SQLite fast path: everything of the store that talks to SQLite through
//! `rusqlite` instead of sqlx. This is the only module that names a rusqlite
//! type.
//!
//! **Why it exists.** SQLite has one writer, and every statement through
//! sqlx is a round trip to the connection's own thread (its result and every
//! row come back as messages on a channel). For the chat's hot path those
//! hand-offs and thread switches cost more than the statements themselves,
//! and they bounded the chat throughput (BENCHMARKS.md). So on SQLite:
//!
//! - the chat's hot writes (enqueue, claim, finish) and the scheduler's batch
//!   claim run in the writer lane ([`lane`]): one thread with a connection of
//!   its own that runs each request's statements itself and commits several
//!   requests per transaction (group commit) — one hand-off in and one out
//!   per request, however many statements it runs ([`queue`], [`scheduling`]);
//! - the per-run reads (usable accounts, prompt memory, a conversation's
//!   tail, the queue's next due time) run on the caller's thread on a few
//!   read connections of the store's own ([`hot`]);
//! - WAL checkpoints run on a thread of their own ([`checkpoint`]), never
//!   inside a writer's commit.
//!
//! **What is *not* here: the SQL.** Each statement of the fast path is a
//! `const` (or a `fn` for the few assembled ones) in its table's file, beside
//! the sqlx code that runs the same text on Postgres — and on SQLite for
//! everything not hot; its values come from one `…_args` function there
//! ([`super::args::Arg`]), its rows are mapped by the same `any_row!`
//! declaration on both drivers. What this module adds is only the order in
//! which the lane runs those statements inside its savepoints, and the
//! plumbing: binding [`Arg`]s by name, reading rows through
//! [`FromSqlite`], classifying rusqlite's errors into [`DbError`].
//!
//! **Why modules, not a `Store` trait with a SQLite and a Postgres impl.**
//! The two dialects share ~all of their SQL through the `Any` driver, and
//! on SQLite everything that is not hot still runs through sqlx: a trait
//! would have to be implemented twice for ~200 methods that are one text,
//! or carry defaults that are the real implementation for both. What
//! differs is a handful of hot statements whose SQLite *driver* differs,
//! not their SQL; so the store keeps one method per operation, in its
//! table's file, which branches once — `if let Some(lite) = self.sqlite()`
//! — to the functions here. Entry point → `Store` method (table file) →
//! this module when the store is SQLite and the operation is hot.

pub mod checkpoint;
pub mod hot;
pub mod lane;
pub(crate) mod queue;
pub(crate) mod scheduling;

use std::sync::Arc;

use rusqlite::types::{FromSql, FromSqlResult, ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, Statement};
use sqlx::AnyPool;

use super::args::Arg;
use super::{DbError, Flag, Result};

/// The fast path's parts, owned by a SQLite store (none on Postgres).
pub(crate) struct Sqlite {
    pub(crate) lane: lane::Lane,
    pub(crate) hot: hot::Readers,
    checkpoints: Arc<checkpoint::Checkpointer>,
}

impl Sqlite {
    /// Starts the checkpoint thread and the writer lane on the database file
    /// at `path`; `write` is the store's one-connection write pool.
    pub(crate) fn start(write: AnyPool, path: &str) -> Result<Sqlite> {
        let checkpoints = Arc::new(checkpoint::Checkpointer::start(path)?);
        Ok(Sqlite {
            lane: lane::Lane::start(write, path, checkpoints.clone())?,
            hot: hot::Readers::new(path),
            checkpoints,
        })
    }

    /// Shutdown: no more hot reads, no more checkpoints. (The lane stops when
    /// the last clone of the store is gone; its write pool is closed by then.)
    pub(crate) fn close(&self) {
        self.hot.close();
        self.checkpoints.stop();
    }
}

/// A row type that can be read from a rusqlite row. `any_row!` implements
/// it beside `sqlx::FromRow`, from the same field list: the column of each
/// field is looked up by name once per statement ([`FromSqlite::columns`]),
/// then every row is read by index.
pub(crate) trait FromSqlite: Sized {
    /// Where each field's column is, in field order.
    type Columns;
    fn columns(statement: &Statement<'_>) -> rusqlite::Result<Self::Columns>;
    fn from_sqlite(row: &rusqlite::Row<'_>, at: &Self::Columns) -> rusqlite::Result<Self>;
}

/// Tuples read by position, as sqlx reads them.
macro_rules! tuple_from_sqlite {
    ($($t:ident $i:tt),+) => {
        impl<$($t: FromSql),+> FromSqlite for ($($t,)+) {
            type Columns = ();
            fn columns(_: &Statement<'_>) -> rusqlite::Result<()> {
                Ok(())
            }
            fn from_sqlite(row: &rusqlite::Row<'_>, _: &()) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($i)?,)+))
            }
        }
    };
}
tuple_from_sqlite!(A 0);
tuple_from_sqlite!(A 0, B 1);
tuple_from_sqlite!(A 0, B 1, C 2, D 3);

/// Parameter names, by argument position.
const NAMES: [&str; 20] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15", "$16", "$17",
    "$18", "$19", "$20",
];

/// Binds `args` to `statement` by name (`$1` the first …). Every parameter
/// of the statement must get a value: a count that does not match is a
/// fault of ours, reported rather than run with NULLs.
fn bind(statement: &mut Statement<'_>, args: &[Arg<'_>]) -> Result<()> {
    if statement.parameter_count() != args.len() {
        return Err(DbError::Other(format!(
            "a statement with {} parameters was given {} values",
            statement.parameter_count(),
            args.len()
        )));
    }
    for (name, arg) in NAMES.iter().zip(args) {
        statement.raw_bind_parameter(*name, arg)?;
    }
    // More values than names: positions from 21 on bind by index (`$21` is
    // then the 21st parameter only if the statement names them in order).
    for (i, arg) in args.iter().enumerate().skip(NAMES.len()) {
        statement.raw_bind_parameter(i + 1, arg)?;
    }
    Ok(())
}

/// Every row of a cached statement.
pub(crate) fn all<R: FromSqlite>(conn: &Connection, sql: &str, args: &[Arg<'_>]) -> Result<Vec<R>> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    let at = R::columns(&statement)?;
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(R::from_sqlite(row, &at)?);
    }
    Ok(out)
}

/// The first row, if any.
pub(crate) fn first<R: FromSqlite>(conn: &Connection, sql: &str, args: &[Arg<'_>]) -> Result<Option<R>> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    let at = R::columns(&statement)?;
    let mut rows = statement.raw_query();
    match rows.next()? {
        Some(row) => Ok(Some(R::from_sqlite(row, &at)?)),
        None => Ok(None),
    }
}

/// The first column of the first row; no row is an error, as sqlx's `fetch_one`.
pub(crate) fn scalar<T: FromSql>(conn: &Connection, sql: &str, args: &[Arg<'_>]) -> Result<T> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    let mut rows = statement.raw_query();
    match rows.next()? {
        Some(row) => Ok(row.get(0)?),
        None => Err(DbError::Other("the statement returned no row".into())),
    }
}

/// Runs a statement that returns no rows; how many rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, args: &[Arg<'_>]) -> Result<usize> {
    let mut statement = conn.prepare_cached(sql)?;
    bind(&mut statement, args)?;
    Ok(statement.raw_execute()?)
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(*v)),
            Arg::Int(None) | Arg::Text(None) => ToSqlOutput::Owned(Value::Null),
            Arg::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Arg::Real(v) => ToSqlOutput::Owned(Value::Real(*v)),
            Arg::Bool(v) => ToSqlOutput::Owned(Value::Integer(i64::from(*v))),
        })
    }
}

/// SQLite stores a boolean as the INTEGER 0/1.
impl FromSql for Flag {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(value).map(|n| Flag(n != 0))
    }
}

/// rusqlite's errors, classified like [`super::classify`] does sqlx's (the
/// same SQLite extended codes).
impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        if let rusqlite::Error::SqliteFailure(failure, message) = &e {
            let message = message.clone().unwrap_or_else(|| failure.to_string());
            match failure.extended_code {
                2067 | 1555 => return DbError::Conflict(message),
                787 => return DbError::MissingReference(message),
                _ => {}
            }
        }
        DbError::Other(format!("sqlite: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    any_row! {
        #[derive(Debug, PartialEq)]
        struct Probe {
            second: String => "b",
            first: i64 => "a",
            flag: bool as Flag,
            nothing: Option<i64> => "missing",
        }
    }

    /// `$N` is the N-th argument however the statement orders its
    /// parameters, and rows map by column name, not by position.
    #[test]
    fn arguments_bind_by_name_and_rows_map_by_column_name() {
        let conn = Connection::open_in_memory().unwrap();
        let rows: Vec<Probe> =
            all(&conn, "SELECT $3 AS missing, $2 AS b, $1 AS a, $4 AS flag", &args![7, "x", None::<i64>, true])
                .unwrap();
        assert_eq!(rows, [Probe { second: "x".into(), first: 7, flag: true, nothing: None }]);
    }

    #[test]
    fn a_wrong_number_of_arguments_is_an_error_not_a_null() {
        let conn = Connection::open_in_memory().unwrap();
        let err = scalar::<i64>(&conn, "SELECT $1 + $2", &args![1]).unwrap_err();
        assert!(matches!(err, DbError::Other(_)), "{err:?}");
    }
}
