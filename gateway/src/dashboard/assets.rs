//! The dashboard's static files, embedded in the binary and served under a
//! content-hashed name (`/assets/dashboard.3f9a…c1.js`) with a year-long
//! `immutable` cache: a new build with a changed file gets a new URL, so no
//! browser ever runs a stale script against a new page. The hash is the first
//! 12 hex digits of the file's SHA-256, computed once at first use.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use crate::state::AppState;

/// One embedded file.
pub struct Asset {
    /// Name before the hash is inserted (`dashboard.js`).
    pub name: &'static str,
    pub mime: &'static str,
    pub bytes: &'static [u8],
}

/// htmx 2.0.11 (npm `htmx.org`, `dist/htmx.min.js`, 0BSD — `gateway/assets/htmx-LICENSE.txt`).
pub const HTMX: Asset = Asset {
    name: "htmx-2.0.11.min.js",
    mime: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../assets/htmx-2.0.11.min.js"),
};
pub const SCRIPT: Asset = Asset {
    name: "dashboard.js",
    mime: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../assets/dashboard.js"),
};
pub const STYLE: Asset = Asset {
    name: "dashboard.css",
    mime: "text/css; charset=utf-8",
    bytes: include_bytes!("../../assets/dashboard.css"),
};

const ALL: [&Asset; 3] = [&HTMX, &SCRIPT, &STYLE];

/// `(hashed file name, asset)` for every asset.
fn table() -> &'static [(String, &'static Asset)] {
    static TABLE: OnceLock<Vec<(String, &'static Asset)>> = OnceLock::new();
    TABLE.get_or_init(|| ALL.iter().map(|a| (hashed_name(a), *a)).collect())
}

fn hashed_name(asset: &Asset) -> String {
    let digest = hex::encode(Sha256::digest(asset.bytes));
    let hash = digest.get(..12).unwrap_or(&digest);
    match asset.name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{}.{hash}", asset.name),
    }
}

/// The URL a page links the asset by.
pub fn url(asset: &Asset) -> String {
    let name =
        table().iter().find(|(_, a)| a.name == asset.name).map(|(n, _)| n.clone()).unwrap_or_else(|| asset.name.into());
    format!("/assets/{name}")
}

pub fn router() -> Router<AppState> {
    Router::new().route("/assets/{file}", get(serve))
}

async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, asset)) = table().iter().find(|(name, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.mime)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
        ],
        asset.bytes,
    )
        .into_response()
}
