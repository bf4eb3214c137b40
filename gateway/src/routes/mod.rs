//! One file per endpoint group of the REST reference; each owns its
//! `router()`, request/response types and handlers, documented for OpenAPI.

pub mod agents;
pub mod auth;
pub mod health;
pub mod openapi;
pub mod ops;
pub mod webhook_in;

use serde::Serialize;
use utoipa::ToSchema;

/// `{"ok": true}`: the body of successful deletes and actions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ok {
    pub ok: bool,
}

impl Ok {
    pub fn json() -> axum::Json<Ok> {
        axum::Json(Ok { ok: true })
    }
}
