//! Outbound HTTP to URLs that users or models supply — the agents' `http_fetch`
//! tool and the gateway's skill import — behind one guard: loopback, private,
//! link-local, unspecified, multicast and reserved addresses are refused
//! *after* DNS resolution, the connection goes to exactly the addresses that
//! were checked (no second lookup to rebind), and every redirect is checked
//! again. `HTTP_FETCH_ALLOW_PRIVATE=true` lifts the address rule for both.
//! Time and size are bounded ([`FetchLimits`]); no proxy is used (a proxy would
//! resolve the name itself, past the check).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// The bounds of one fetch.
#[derive(Debug, Clone)]
pub struct FetchLimits {
    /// Everything, redirects and body included.
    pub timeout: Duration,
    /// Bytes of body read at most (the rest is not downloaded).
    pub max_bytes: usize,
    pub max_redirects: usize,
    /// `HTTP_FETCH_ALLOW_PRIVATE`.
    pub allow_private: bool,
    pub user_agent: &'static str,
}

/// A fetched response (any status).
#[derive(Debug)]
pub struct Fetched {
    /// Where it came from, after redirects.
    pub url: Url,
    pub status: reqwest::StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The body was longer than `max_bytes` and was cut there.
    pub truncated: bool,
}

/// Fetches `raw` under the guard and the limits. The error text is meant for
/// the person (or model) who gave the URL.
pub async fn fetch(raw: &str, limits: &FetchLimits) -> Result<Fetched, String> {
    if raw.trim().is_empty() {
        return Err("url is required".into());
    }
    crate::install_crypto_provider();
    match tokio::time::timeout(limits.timeout, fetch_following_redirects(raw, limits)).await {
        Ok(result) => result,
        Err(_) => Err(format!("fetching {raw} timed out after {} s", limits.timeout.as_secs())),
    }
}

async fn fetch_following_redirects(raw: &str, limits: &FetchLimits) -> Result<Fetched, String> {
    let mut url = parse_http_url(raw)?;
    for _ in 0..=limits.max_redirects {
        let addrs = resolve_checked(&url, limits.allow_private).await?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(limits.timeout)
            .user_agent(limits.user_agent);
        if let Some(host) = url.host_str()
            && host.parse::<IpAddr>().is_err()
            && !host.starts_with('[')
        {
            // Connect to exactly the addresses checked above: no second lookup to rebind.
            builder = builder.resolve_to_addrs(host, &addrs);
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        let mut response = client.get(url.clone()).send().await.map_err(|e| format!("fetching {url}: {e}"))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("HTTP {status} without a Location"))?;
            let next = url.join(location).map_err(|e| format!("bad redirect {location:?}: {e}"))?;
            url = parse_http_url(next.as_str())?;
            continue;
        }
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut body: Vec<u8> = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading {url}: {e}"))? {
            let room = limits.max_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(Fetched { url, status, content_type, body, truncated });
    }
    Err(format!("more than {} redirects", limits.max_redirects))
}

/// True for addresses a user-given URL must not reach unless private access is allowed.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let [a, b] = seg[6].to_be_bytes();
                let [c, d] = seg[7].to_be_bytes();
                return forbidden_v4(Ipv4Addr::new(a, b, c, d));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || a >= 240 // reserved
}

/// Resolves the URL's host and checks every address; the addresses to connect
/// to (the MCP client's HTTP transport pins its connections to them too).
pub async fn resolve_checked(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let host_for_lookup = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host_for_lookup.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host_for_lookup, port)))
            .await
            .map_err(|_| format!("resolving {host} timed out"))?
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}"));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
        return Err(format!(
            "refusing to fetch {host}: it resolves to a private, local or otherwise non-public address ({})",
            bad.ip()
        ));
    }
    Ok(addrs)
}

pub fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("invalid URL {raw:?}: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("only http and https URLs can be fetched, not {}:", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with credentials are not fetched".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a00:1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} is public");
        }
    }
}
