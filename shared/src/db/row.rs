//! [`any_row!`]: a row struct and its two mappers — `sqlx::FromRow` for the
//! `Any` driver and [`FromSqlite`](super::sqlite::FromSqlite) for the SQLite
//! fast path's rusqlite connections — from one declaration, without sqlx's
//! proc-macro crate.
//!
//! Why not `#[derive(sqlx::FromRow)]`: the derive lives in `sqlx-macros`, and
//! with the `sqlite` and `postgres` features on, that crate builds a second
//! sqlx for the compiler host — sqlx-core, both drivers, tokio and the bundled
//! SQLite in C — only to expand derives we can write with `macro_rules!`
//! (README, "Build time").
//!
//! Both mappers read each field by its name (or the column named after `=>`),
//! as the derive does; the rusqlite one looks the names up once per statement
//! and then reads every row by index. A field written `bool as Flag` is read
//! as the type after `as` and converted with `From` (a boolean column: see
//! [`super::Flag`]). So a row is declared once, and a statement that both
//! drivers run maps its rows through the same declaration on both.
//!
//! ```ignore
//! any_row! {
//!     #[derive(Debug)]
//!     pub struct AccountRow {
//!         pub id: i64,
//!         pub kind: String => "type",
//!         pub is_active: bool as Flag,
//!     }
//! }
//! // The mappers only, for a struct declared elsewhere (a domain type):
//! any_row! { impl UsageRecord { account_id: Option<i64>, … } }
//! ```

macro_rules! any_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty $(as $via:ty)? $(=> $col:literal)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        any_row! { impl $name { $( $field : $ty $(as $via)? $(=> $col)? ),* } }
    };
    (
        impl $name:ident {
            $( $field:ident : $ty:ty $(as $via:ty)? $(=> $col:literal)? ),* $(,)?
        }
    ) => {
        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $name {
            fn from_row(row: &'r sqlx::any::AnyRow) -> ::std::result::Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok($name { $( $field: any_row!(@any row, any_row!(@column $field $($col)?), $ty $(, $via)?), )* })
            }
        }

        impl $crate::db::sqlite::FromSqlite for $name {
            type Columns = [usize; any_row!(@count $($field)*)];
            fn columns(statement: &rusqlite::Statement<'_>) -> rusqlite::Result<Self::Columns> {
                Ok([ $( statement.column_index(any_row!(@column $field $($col)?))?, )* ])
            }
            fn from_sqlite(row: &rusqlite::Row<'_>, at: &Self::Columns) -> rusqlite::Result<Self> {
                // Fields in declaration order, each at the index its name was found at.
                let mut at = at.iter().copied();
                Ok($name { $( $field: any_row!(@sqlite row, at.next().unwrap_or(usize::MAX), $ty $(, $via)?), )* })
            }
        }
    };
    (@column $field:ident) => { stringify!($field) };
    (@column $field:ident $col:literal) => { $col };
    (@count) => { 0usize };
    (@count $head:ident $($tail:ident)*) => { 1usize + any_row!(@count $($tail)*) };
    (@any $row:ident, $col:expr, $ty:ty) => { $row.try_get::<$ty, _>($col)? };
    (@any $row:ident, $col:expr, $ty:ty, $via:ty) => { <$ty>::from($row.try_get::<$via, _>($col)?) };
    (@sqlite $row:ident, $at:expr, $ty:ty) => { $row.get::<_, $ty>($at)? };
    (@sqlite $row:ident, $at:expr, $ty:ty, $via:ty) => { <$ty>::from($row.get::<_, $via>($at)?) };
}
