//! `get_time`: the current date and time, so the model does not guess it.

/// Now, ISO 8601 UTC.
pub fn get_time() -> String {
    arvis_shared::clock::to_rfc3339(arvis_shared::clock::now_ms())
}
