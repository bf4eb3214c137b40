//! The page shell every page is rendered in: a skip link, the top bar (name,
//! health badge, logout), the navigation to every page, and the main column.
//! Also the request context pages take ([`Ctx`]), the HTML error page
//! ([`PageError`]) and the health badge's fragment route (`/ui/health`).
//!
//! Responsive by CSS only (`dashboard.css`): a side navigation from 720 px up,
//! a wrapping bar above the content below that. Keyboard: the skip link, visible
//! focus rings, real links and buttons everywhere (nothing clickable is a `div`).

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};

use arvis_shared::db::DbError;

use super::assets;
use crate::error::ApiError;
use crate::state::AppState;

/// htmx's settings, read from a meta tag (no inline script): no `eval` (the
/// CSP forbids it anyway), no script tags from swapped HTML, no inline
/// indicator styles (the CSP refuses them), requests to our own origin only.
pub const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;

/// One entry of the navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    /// False while the page shows "coming soon".
    pub ready: bool,
}

/// What every page handler gets besides its own inputs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The request path (the navigation marks its section as current).
    pub path: String,
    /// Password login is on: show the logout button.
    pub can_logout: bool,
    /// The database answered its last health check.
    pub healthy: bool,
    /// The request came from htmx (a fragment is wanted, not a whole page).
    pub htmx: bool,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, Self::Rejection> {
        Ok(Ctx {
            path: parts.uri.path().to_string(),
            can_logout: state.auth.password_enabled(),
            healthy: state.health.database_ok(&state.deps.store).await,
            htmx: parts.headers.contains_key("hx-request"),
        })
    }
}

/// What a page handler returns.
pub type PageResult = Result<Response, PageError>;

/// An HTML response with this status.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], markup.into_string())
        .into_response()
}

/// A whole page, 200.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> PageResult {
    Ok(html_response(StatusCode::OK, shell(ctx, title, body)))
}

/// A whole page with another status (a form refused: 400/409 with the form again).
pub fn page_with_status(ctx: &Ctx, status: StatusCode, title: &str, body: Markup) -> PageResult {
    Ok(html_response(status, shell(ctx, title, body)))
}

/// Redirect after a successful post (303: the browser follows with a GET).
pub fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The section of the navigation a path belongs to (`/agents/3` → `/agents`).
fn section(path: &str) -> &str {
    let rest = path.trim_start_matches('/');
    match rest.find('/') {
        Some(i) => &path[..i + 1],
        None => path,
    }
}

/// The HTML page around `body`.
pub fn shell(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    let current = section(&ctx.path);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · Arvis" }
                // No favicon request (it would be a 404 in every page's console).
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::url(&assets::STYLE));
                script src=(assets::url(&assets::HTMX)) defer {}
                script src=(assets::url(&assets::SCRIPT)) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Arvis" }
                    (health_badge(ctx.healthy))
                    @if ctx.can_logout {
                        form.logout method="post" action="/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                }
                div.frame {
                    nav.side aria-label="Pages" {
                        ul {
                            @for item in super::nav() {
                                li {
                                    a href=(item.href)
                                        aria-current=[(item.href == current).then_some("page")] {
                                        (item.label)
                                        @if !item.ready { " " span.soon { "soon" } }
                                    }
                                }
                            }
                        }
                    }
                    main #main tabindex="-1" {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
    }
}

/// The health indicator; htmx replaces it every 15 s from `/ui/health`.
pub fn health_badge(ok: bool) -> Markup {
    html! {
        span #health .badge .(if ok { "ok" } else { "bad" }) role="status"
            hx-get="/ui/health" hx-trigger="every 15s" hx-swap="outerHTML" {
            @if ok { "● healthy" } @else { "● database unreachable" }
        }
    }
}

/// The body of a page that is not built yet.
pub fn coming_soon(ctx: &Ctx, item: &NavItem) -> PageResult {
    page(
        ctx,
        item.label,
        html! {
            p.notice { "This page is coming soon. Until then the REST API has it: see "
                a href="/api/docs" { "the API documentation" } "." }
        },
    )
}

pub fn router() -> Router<AppState> {
    Router::new().route("/ui/health", get(health))
}

async fn health(State(state): State<AppState>) -> Response {
    html_response(StatusCode::OK, health_badge(state.health.database_ok(&state.deps.store).await))
}

/// A page handler's failure, shown as an HTML page with the API's message
/// (a 5xx was logged by `ApiError::internal` and shows a generic text).
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        PageError(e)
    }
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> PageError {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.0.status, &self.0.message)
    }
}

/// A standalone error page (no navigation state needed).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let ctx = Ctx { path: String::new(), can_logout: false, healthy: true, htmx: false };
    let title = status.canonical_reason().unwrap_or("Error");
    html_response(
        status,
        shell(
            &ctx,
            title,
            html! {
                p.error role="alert" { (message) }
                p { a href="/" { "Back to the overview" } }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_belongs_to_its_top_level_section() {
        assert_eq!(section("/"), "/");
        assert_eq!(section("/agents"), "/agents");
        assert_eq!(section("/agents/3/memory"), "/agents");
    }
}
