//! PATCH fields that can be cleared: absent → `None` (keep), `null` →
//! `Some(None)` (clear), a value → `Some(Some(v))`. Use with
//! `#[serde(default, deserialize_with = "nullable::field")]`.

use serde::{Deserialize, Deserializer};

pub fn field<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The patched value of a clearable field.
pub fn apply<T: Clone>(patch: Option<Option<T>>, current: &Option<T>) -> Option<T> {
    match patch {
        Some(v) => v,
        None => current.clone(),
    }
}
