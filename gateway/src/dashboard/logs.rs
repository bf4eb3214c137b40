//! The Logs page (issue #20) — not built yet: it shows "coming soon".
//! To build it, see "How to add a page" in `dashboard/mod.rs`.

use axum::Router;
use axum::routing::get;

use super::layout::{Ctx, NavItem, PageResult, coming_soon};
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/logs", label: "Logs", ready: false };

pub fn router() -> Router<AppState> {
    Router::new().route(NAV.href, get(page))
}

async fn page(ctx: Ctx) -> PageResult {
    coming_soon(&ctx, &NAV)
}
