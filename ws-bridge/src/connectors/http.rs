//! What every connector's HTTP and reconnect code shares: one reqwest client,
//! capped jittered backoff, the platforms' retry-after hints, and keeping
//! tokens out of error texts.
//!
//! Tokens travel in URLs (Telegram's `/bot<token>/…`) and headers; reqwest's
//! errors name the URL, so every error is formatted through [`describe`],
//! which drops the URL and replaces the token wherever it appears.

use std::time::Duration;

use rand::Rng as _;

/// Longest single request: a Telegram long poll (25 s) plus margin.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client every connector of the bridge shares (connection pooling per host).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .user_agent(concat!("arvis/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot build the connectors' HTTP client with its options; using defaults");
            reqwest::Client::new()
        })
}

/// A transport error's text without its URL and without the token.
pub fn describe(e: reqwest::Error, token: &str) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    scrub(&format!("{kind}: {}", e.without_url()), token)
}

/// `text` with every occurrence of `token` replaced.
pub fn scrub(text: &str, token: &str) -> String {
    if token.len() < 4 { text.to_string() } else { text.replace(token, "[token]") }
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … capped, each drawn
/// between half and all of its step so that bots that failed together do not
/// retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { attempt: 0, base, cap }
    }

    /// The reconnect backoff of a platform session: 1 s to 60 s.
    pub fn reconnect() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }

    pub fn next_delay(&mut self) -> Duration {
        let step = self.base.saturating_mul(1u32 << self.attempt.min(16)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let ms = step.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The delay before attempt `attempts + 1` of a delivery (1 s … 60 s, jittered).
pub fn delivery_delay(attempts: i64) -> Duration {
    let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    b.attempt = attempts.clamp(0, 16) as u32;
    b.next_delay()
}

/// A `Retry-After` header in seconds (fractions allowed), bounded to an hour.
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    seconds(v.trim().parse::<f64>().ok()?)
}

/// Seconds as a platform gives them (Telegram integer, Discord float), bounded.
pub fn seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let d: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(500) && d[0] <= Duration::from_secs(1), "{d:?}");
        assert!(d[5] >= Duration::from_secs(4) && d[5] <= Duration::from_secs(8), "{d:?}");
    }

    #[test]
    fn tokens_never_survive_in_error_text() {
        assert_eq!(scrub("GET /bot123:abc/getMe failed", "123:abc"), "GET /bot[token]/getMe failed");
    }
}
