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
    /// `GET /api/agents` as JSON bytes, with the cached list they were made
    /// from: reused while the store serves that same list.
    pub agents_json: Arc<std::sync::Mutex<Option<AgentsJson>>>,
    /// The database check behind `GET /api/health`, made at most once a second.
    pub health: Arc<arvis_shared::health::DatabaseCheck>,
}

/// A cached agent list and its JSON.
pub type AgentsJson = (Arc<Vec<arvis_shared::domain::agent::Agent>>, bytes::Bytes);
