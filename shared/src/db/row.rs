//! [`any_row!`]: a row struct and its `sqlx::FromRow` for the `Any` driver,
//! without sqlx's proc-macro crate.
//!
//! Why not `#[derive(sqlx::FromRow)]`: the derive lives in `sqlx-macros`, and
//! with the `sqlite` and `postgres` features on, that crate builds a second
//! sqlx for the compiler host — sqlx-core, both drivers, tokio and the bundled
//! SQLite in C — only to expand derives we can write with `macro_rules!`
//! (README, "Build time"). Every store query reads through the `Any` pool, so
//! one impl per struct, for `AnyRow`, is all the store needs; each field is read
//! by its name (or the column named after `=>`), as the derive does.
//!
//! ```ignore
//! any_row! {
//!     #[derive(Debug)]
//!     struct AccountRow {
//!         id: i64,
//!         kind: String => "type",
//!     }
//! }
//! ```

macro_rules! any_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty $(=> $col:literal)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $name {
            fn from_row(row: &'r sqlx::any::AnyRow) -> ::std::result::Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok($name { $( $field: row.try_get(any_row!(@column $field $($col)?))?, )* })
            }
        }
    };
    (@column $field:ident) => { stringify!($field) };
    (@column $field:ident $col:literal) => { $col };
}
