//! `web_search`: the top results of a search endpoint the operator chose
//! (`WEB_SEARCH_URL`, e.g. a SearXNG `/search?format=json`), formatted for the
//! model. Without it the tool says that search is not configured.

use reqwest::Url;
use serde_json::Value;

use super::{MAX_RESULT_CHARS, SEARCH_TIMEOUT, truncate};

/// Queries `WEB_SEARCH_URL` (`GET {url}?q=…`, JSON) and formats the top results.
pub async fn web_search(query: &str, endpoint: Option<&str>) -> Result<String, String> {
    let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty()) else {
        return Err("web search is not configured (set WEB_SEARCH_URL)".into());
    };
    if query.is_empty() {
        return Err("query is required".into());
    }
    arvis_shared::install_crypto_provider();
    let mut url = Url::parse(endpoint).map_err(|e| format!("WEB_SEARCH_URL is not a URL: {e}"))?;
    url.query_pairs_mut().append_pair("q", query);
    let client = reqwest::Client::builder().timeout(SEARCH_TIMEOUT).build().map_err(|e| format!("HTTP client: {e}"))?;
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("web search failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("web search answered HTTP {status}"));
    }
    let body = response.bytes().await.map_err(|e| format!("web search failed: {e}"))?;
    let value: Value = serde_json::from_slice(&body).map_err(|_| "web search did not answer JSON".to_string())?;
    Ok(truncate(&format_results(&value), MAX_RESULT_CHARS))
}

/// Formats common result shapes (a list, or `results`/`items`/`organic_results`
/// of objects with title, url|link, snippet|content|description); other JSON as is.
pub fn format_results(value: &Value) -> String {
    let list = value.as_array().or_else(|| {
        ["results", "items", "organic_results", "data"].iter().find_map(|k| value.get(*k).and_then(Value::as_array))
    });
    let Some(list) = list else { return value.to_string() };
    let text = |v: &Value, keys: &[&str]| {
        keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str)).unwrap_or("").trim().to_string()
    };
    let lines: Vec<String> = list
        .iter()
        .take(8)
        .enumerate()
        .map(|(i, r)| {
            let title = text(r, &["title", "name"]);
            let link = text(r, &["url", "link", "href"]);
            let snippet = text(r, &["snippet", "content", "description", "body"]);
            format!("{}. {} — {}\n   {}", i + 1, title, link, snippet).trim_end().to_string()
        })
        .collect();
    if lines.is_empty() { "No results.".into() } else { lines.join("\n") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_results_are_formatted() {
        let v = json!({"results": [{"title": "Rust", "url": "https://rust-lang.org", "content": "A language"}]});
        assert_eq!(format_results(&v), "1. Rust — https://rust-lang.org\n   A language");
        assert_eq!(format_results(&json!({"results": []})), "No results.");
        assert_eq!(format_results(&json!({"answer": 1})), "{\"answer\":1}");
    }
}
