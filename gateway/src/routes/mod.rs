//! One file per endpoint group of the REST reference; each owns its
//! `router()`, request/response types and handlers, documented for OpenAPI.

pub mod accounts;
pub mod agents;
pub mod auth;
pub mod bots;
pub mod chat;
pub mod connectors;
pub mod deliveries;
pub mod health;
pub mod keys;
pub mod logs;
pub mod mcp_servers;
pub mod memory;
pub mod openapi;
pub mod ops;
pub mod platform_in;
pub mod queue;
pub mod sessions;
pub mod settings;
pub mod skills;
pub mod usage;
pub mod v1;
pub mod webhook_in;
pub mod webhooks;
pub mod workflows;

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
