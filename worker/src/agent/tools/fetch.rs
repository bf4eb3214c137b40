//! `http_fetch`: a page or API by URL, as text (HTML reduced to its readable
//! text, at most [`MAX_RESULT_CHARS`](super::MAX_RESULT_CHARS) characters).
//! The address rules — private and local targets refused after DNS
//! resolution, every redirect re-checked, unless `HTTP_FETCH_ALLOW_PRIVATE` —
//! are [`arvis_shared::net`]'s, shared with the gateway's skill import.

use arvis_shared::net::{self, FetchLimits};

use super::{FETCH_TIMEOUT, MAX_DOWNLOAD_BYTES, MAX_RESULT_CHARS, truncate};

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// Fetches a URL's text.
pub async fn http_fetch(raw: &str, allow_private: bool) -> Result<String, String> {
    let limits = FetchLimits {
        timeout: FETCH_TIMEOUT,
        max_bytes: MAX_DOWNLOAD_BYTES,
        max_redirects: MAX_REDIRECTS,
        allow_private,
        user_agent: concat!("Arvis/", env!("CARGO_PKG_VERSION"), " (http_fetch)"),
    };
    let fetched = net::fetch(raw, &limits).await?;
    let is_html = fetched.content_type.as_deref().is_some_and(|ct| ct.contains("html"));
    let text = String::from_utf8_lossy(&fetched.body);
    let looks_html = is_html || text.trim_start().starts_with('<');
    let text = if looks_html { strip_html(&text) } else { text.trim().to_string() };
    let text = truncate(&text, MAX_RESULT_CHARS);
    if !fetched.status.is_success() {
        return Err(format!("HTTP {} from {}: {text}", fetched.status, fetched.url));
    }
    Ok(text)
}

/// HTML → readable text: scripts, styles and comments dropped, tags removed,
/// common entities decoded, whitespace collapsed.
pub fn strip_html(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let rest = &lower[i..];
            let skip_to = if rest.starts_with("<!--") {
                rest.find("-->").map(|e| i + e + 3)
            } else if rest.starts_with("<script") {
                rest.find("</script").and_then(|e| lower[i + e..].find('>').map(|g| i + e + g + 1))
            } else if rest.starts_with("<style") {
                rest.find("</style").and_then(|e| lower[i + e..].find('>').map(|g| i + e + g + 1))
            } else {
                rest.find('>').map(|g| i + g + 1)
            };
            match skip_to {
                Some(end) => {
                    let tag = &rest[..(end - i).min(rest.len())];
                    let block = ["<p", "<br", "<div", "<li", "<h1", "<h2", "<h3", "<h4", "<tr", "</p", "</div", "</li"];
                    if block.iter().any(|b| tag.starts_with(b)) {
                        out.push('\n');
                    } else {
                        out.push(' ');
                    }
                    i = end;
                }
                None => break,
            }
        } else {
            let next = html[i..].find('<').map(|n| i + n).unwrap_or(html.len());
            out.push_str(&html[i..next]);
            i = next;
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    let lines: Vec<String> =
        decoded.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|l| !l.is_empty()).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::tests::{ctx, tool};
    use serde_json::json;

    #[tokio::test]
    async fn http_fetch_refuses_local_targets_after_resolution() {
        arvis_shared::install_crypto_provider();
        for url in ["http://127.0.0.1", "http://[::1]", "http://10.0.0.1", "http://localhost", "http://localhost:9/x"] {
            let out = super::super::call(&tool("http_fetch", json!({"url": url})), &ctx(false)).await;
            assert!(out.starts_with("Error: refusing to fetch"), "{url}: {out}");
        }
        for url in ["ftp://example.com", "file:///etc/passwd", "not a url", "http://user:pw@example.com"] {
            let out = super::super::call(&tool("http_fetch", json!({"url": url})), &ctx(false)).await;
            assert!(out.starts_with("Error: "), "{url}: {out}");
            assert!(!out.starts_with("Error: refusing"), "{url}: {out}");
        }
    }

    #[test]
    fn html_is_stripped() {
        let html = "<html><head><style>p{}</style><script>alert(1)</script></head><body><h1>Title</h1>\
                    <p>Hello &amp; <b>welcome</b></p><!-- hidden --><p>Bye</p></body></html>";
        assert_eq!(strip_html(html), "Title\nHello & welcome\nBye");
    }
}
