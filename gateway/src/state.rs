//! The gateway's shared state.

use std::sync::Arc;
use std::time::Instant;

use arvis_shared::Deps;

use crate::auth::Auth;

#[derive(Clone)]
pub struct AppState {
    pub deps: Deps,
    pub auth: Arc<Auth>,
    pub started: Instant,
    /// The serialized OpenAPI document, set once the router is built.
    pub openapi: Arc<std::sync::OnceLock<String>>,
}
