//! Chat (placeholder while the skeleton builds).
use super::layout::NavItem;
use crate::state::AppState;
use axum::Router;
pub const NAV: NavItem = NavItem { href: "/chat", label: "Chat", ready: false };
pub fn router() -> Router<AppState> {
    Router::new().route(NAV.href, axum::routing::get(page))
}
async fn page(ctx: super::layout::Ctx) -> super::layout::PageResult {
    super::layout::coming_soon(&ctx, &NAV)
}
