//! The web dashboard at `/`: server-rendered HTML pages served by the gateway
//! itself, one module per page, over the same `Store` methods and route
//! functions the REST handlers use (`routes::agents::create`, …) — no SQL here
//! and no second copy of a rule.
//!
//! **Why maud.** Templates are Rust expressions checked and compiled into the
//! binary, escaped by default (`(value)` escapes; raw HTML needs an explicit
//! `PreEscaped`, which only [`markdown`], [`chart`] and the vendored script tags
//! use). maud adds three small crates (`maud`, `maud_macros`,
//! `proc-macro2-diagnostics`) to a tree that already builds `syn`; askama adds
//! a template parser (`askama_parser` + `winnow`), `basic-toml`, `rustc-hash`
//! and its template-file machinery, and a template language of its own to learn.
//!
//! **Scripts.** No JavaScript toolchain: `gateway/assets/` holds htmx (2.0.11,
//! from the npm registry's `htmx.org` package, 0BSD licence, file unchanged)
//! and our own `dashboard.js` / `dashboard.css`, embedded with `include_bytes!`
//! and served under a content-hashed name with a year-long immutable cache
//! ([`assets`]). The Content-Security-Policy (`script-src 'self'`, no inline
//! script, no `unsafe-eval`; see `crate::security_headers`) holds because htmx
//! is configured from a `<meta name="htmx-config">` tag (eval and script tags
//! off) and every behaviour of ours is in `dashboard.js`, wired by `data-`
//! attributes. Every page works without JavaScript too (plain forms,
//! redirect-after-post); the scripts add live refresh and streamed chat.
//!
//! **Access.** Pages pass the same guard as the API (`crate::access`): with
//! `DASHBOARD_PASSWORD` set, a request without a session is sent to `/login`
//! (htmx requests get `HX-Redirect`); cross-origin writes are refused. Without
//! credentials configured the pages are open, and the gateway listens on
//! loopback only, as for the API. Authenticated pages are `no-store`.
//!
//! Layout:
//! - [`layout`]: the page shell (navigation, health badge, logout), the
//!   [`layout::Ctx`] extractor every page takes, the HTML error page.
//! - [`assets`]: the embedded scripts and styles. [`pager`]: the pagination
//!   every list uses. [`form`]: the API's error message placed next to its
//!   field. [`markdown`]: model text → safe HTML. [`chart`]: inline SVG charts.
//! - [`fields`]: the form parts the configuration pages (workflows, webhooks,
//!   skills, bots, accounts, settings) share: the agent picker, enable/disable
//!   and delete buttons, placing messages like `channelBindings.channelId …`.
//! - Pages: [`login`], [`overview`], [`chat`], [`agents`], [`conversations`],
//!   [`queue`], [`usage`], [`logs`], [`workflows`], [`webhooks`], [`skills`],
//!   [`bots`], [`accounts`], [`settings`].
//!
//! ## How to add a page
//! 1. Start from a page like `dashboard/queue.rs`: keep its `NAV`
//!    entry and set `ready: true`, replace `router()` with your routes (page
//!    paths at the top level: `/queue`, `/queue/{id}/retry`).
//! 2. A handler takes [`layout::Ctx`] (current path, health, logout button)
//!    and returns [`layout::PageResult`]; render with
//!    `layout::page(&ctx, "Queue", html! { … })`. Errors: `?` on an `ApiError`
//!    or `DbError` renders the HTML error page (a 5xx is logged, the page says
//!    only "internal server error").
//! 3. Read through `state.deps.store` or, for anything with rules, call the
//!    REST route's function (`routes::queue::…`; split one out of the handler
//!    as `routes::agents::create` is, so both share it). Lists use
//!    [`pager::Pager`] (`?page=N`). Forms post to your page's path, and on a
//!    refusal render again with [`form::Errors`] (`errors.field("name")` next
//!    to each field). After a successful post, redirect ([`layout::see_other`]).
//! 4. Live parts: `hx-get` + `hx-trigger="every 5s"` on a fragment route
//!    (see `overview::live`); no inline script or `style=` attribute (the CSP
//!    refuses both: put behaviour in `dashboard.js`, looks in `dashboard.css`).
//! 5. Tests: `tests/tests/dashboard_pages.rs` shows the rendering helpers
//!    (`app.page(path)`, `seed::messages(&app, agent_id, 10_000)`, …): render your page with
//!    an empty database and with 10 000 rows, assert on the HTML (escaping,
//!    the pager). Browser scenarios: `tests/tests/dashboard_browser.rs` and
//!    `tests/browser/scenarios.mjs`.

pub mod agents;
pub mod assets;
pub mod chart;
pub mod chat;
pub mod fields;
pub mod form;
pub mod layout;
pub mod login;
pub mod markdown;
pub mod overview;
pub mod pager;

pub mod accounts;
pub mod bots;
pub mod conversations;
pub mod logs;
pub mod queue;
pub mod settings;
pub mod skills;
pub mod usage;
pub mod webhooks;
pub mod workflows;

use axum::Router;

use crate::state::AppState;

/// Every page's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(assets::router())
        .merge(layout::router())
        .merge(login::router())
        .merge(overview::router())
        .merge(chat::router())
        .merge(agents::router())
        .merge(conversations::router())
        .merge(queue::router())
        .merge(usage::router())
        .merge(workflows::router())
        .merge(webhooks::router())
        .merge(skills::router())
        .merge(bots::router())
        .merge(accounts::router())
        .merge(logs::router())
        .merge(settings::router())
}

/// The navigation, in order.
pub fn nav() -> [&'static layout::NavItem; 13] {
    [
        &overview::NAV,
        &chat::NAV,
        &agents::NAV,
        &conversations::NAV,
        &queue::NAV,
        &usage::NAV,
        &workflows::NAV,
        &webhooks::NAV,
        &skills::NAV,
        &bots::NAV,
        &accounts::NAV,
        &logs::NAV,
        &settings::NAV,
    ]
}

/// Paths that are dashboard pages (as opposed to the API, `/v1`, webhooks
/// and probes): an unauthenticated request to one is sent to the login page
/// rather than answered with a JSON 401.
pub fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/")
        || path == "/api"
        || path.starts_with("/v1/")
        || path.starts_with("/webhook/")
        || matches!(path, "/metrics" | "/healthz" | "/readyz"))
}

/// Paths served without a session: the login form and the static assets.
pub fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/")
}
