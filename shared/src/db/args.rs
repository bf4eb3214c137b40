//! [`Arg`]: a bound value that both drivers take, so that a statement run
//! through sqlx *and* through the SQLite fast path ([`super::sqlite`]) has its
//! values listed once — one `fn …_args(…) -> [Arg; N]` beside its `const`
//! SQL text — instead of once per driver's `bind` calls.
//!
//! Values are bound by parameter name (`$1` is the first argument, `$2` the
//! second, …) on both: sqlx numbers them so, and rusqlite binds each by the
//! name it has in the statement (SQLite numbers `$N` parameters by first
//! appearance, so binding by position would go wrong as soon as a statement
//! mentions `$5` before `$3`).
//!
//! The variants are the types the store binds. NULLs are typed (a NULL
//! integer, a NULL text): the Any driver passes the type on to Postgres. There
//! is no NULL real on purpose: the Any driver sends it as `float4`, which
//! breaks the statement for every later non-NULL `float8` on that connection
//! (see `usage::INSERT_USAGE`); a nullable number is bound as a value plus a flag.

use std::borrow::Cow;

use sqlx::any::{Any, AnyTypeInfo};

type AnyArgumentBuffer = <Any as sqlx::Database>::ArgumentBuffer;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
    Real(f64),
    Bool(bool),
}

/// `[Arg; N]` from values of the bound types: `args![id, &name, now]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => { [$($crate::db::args::Arg::from($value)),*] };
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref().map(Cow::Borrowed))
    }
}

impl sqlx::Type<Any> for Arg<'_> {
    fn type_info() -> AnyTypeInfo {
        // Never consulted for a value: `produces` names each value's own type.
        <i64 as sqlx::Type<Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, Any> for Arg<'_> {
    fn encode_by_ref(&self, buf: &mut AnyArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            Arg::Int(v) => <Option<i64> as sqlx::Encode<'q, Any>>::encode_by_ref(v, buf),
            Arg::Text(v) => <Option<String> as sqlx::Encode<'q, Any>>::encode(v.as_deref().map(str::to_string), buf),
            Arg::Real(v) => <f64 as sqlx::Encode<'q, Any>>::encode_by_ref(v, buf),
            Arg::Bool(v) => <bool as sqlx::Encode<'q, Any>>::encode_by_ref(v, buf),
        }
    }

    fn encode(self, buf: &mut AnyArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match self {
            // An owned text moves into the arguments without a copy.
            Arg::Text(v) => <Option<String> as sqlx::Encode<'q, Any>>::encode(v.map(Cow::into_owned), buf),
            other => other.encode_by_ref(buf),
        }
    }

    fn produces(&self) -> Option<AnyTypeInfo> {
        Some(match self {
            Arg::Int(_) => <i64 as sqlx::Type<Any>>::type_info(),
            Arg::Text(_) => <str as sqlx::Type<Any>>::type_info(),
            Arg::Real(_) => <f64 as sqlx::Type<Any>>::type_info(),
            Arg::Bool(_) => <bool as sqlx::Type<Any>>::type_info(),
        })
    }
}

/// The sqlx statements with `args` bound in order (`$1`, `$2`, …).
pub(crate) fn query<'q>(
    text: impl sqlx::SqlSafeStr,
    args: impl IntoIterator<Item = Arg<'q>>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    args.into_iter().fold(sqlx::query(text), |q, a| q.bind(a))
}

pub(crate) fn query_as<'q, R>(
    text: impl sqlx::SqlSafeStr,
    args: impl IntoIterator<Item = Arg<'q>>,
) -> sqlx::query::QueryAs<'q, Any, R, sqlx::any::AnyArguments>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    args.into_iter().fold(sqlx::query_as(text), |q, a| q.bind(a))
}

pub(crate) fn query_scalar<'q, T>(
    text: impl sqlx::SqlSafeStr,
    args: impl IntoIterator<Item = Arg<'q>>,
) -> sqlx::query::QueryScalar<'q, Any, T, sqlx::any::AnyArguments>
where
    (T,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    args.into_iter().fold(sqlx::query_scalar(text), |q, a| q.bind(a))
}
