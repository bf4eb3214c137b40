//! The built-in tools an agent may be given through `allowedTools`:
//! `calculate`, `get_time`, `http_fetch` and `web_search` (behaviour reference
//! §6). [`specs`] lists the ones an agent has, with JSON Schemas; [`call`]
//! runs one. A tool never fails the job: problems come back to the model as
//! `Error: …` text.
//!
//! `http_fetch` refuses loopback, private, link-local, unspecified and multicast
//! addresses *after* DNS resolution and connects to the address it checked (no
//! second lookup), re-checking every redirect — unless the operator sets
//! `HTTP_FETCH_ALLOW_PRIVATE=true`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arvis_shared::config::Config;
use reqwest::Url;
use serde_json::{Value, json};

use crate::llm::{ChatMessage, ToolCall, ToolSpec};

/// A built-in tool: its name and the one-line hint the system prompt carries.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub hint: &'static str,
}

pub const BUILTIN: &[Builtin] = &[
    Builtin { name: "web_search", hint: "search the web for current information; cite what you use." },
    Builtin { name: "calculate", hint: "evaluate arithmetic exactly instead of computing in your head." },
    Builtin { name: "get_time", hint: "get the current date and time (UTC) when it matters." },
    Builtin { name: "http_fetch", hint: "fetch a web page or API by URL and read its text." },
];

/// How long `http_fetch` waits in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `web_search` waits.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The most `http_fetch` downloads.
pub const MAX_DOWNLOAD_BYTES: usize = 1024 * 1024;
/// The most characters a tool returns.
pub const MAX_RESULT_CHARS: usize = 4_000;
const MAX_REDIRECTS: usize = 5;

/// What the tools need from the process: set once by the worker.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    /// The agent's `allowedTools`: a call to a tool it lacks is refused.
    pub allowed_tools: Vec<String>,
    /// `HTTP_FETCH_ALLOW_PRIVATE`: let `http_fetch` reach private and local addresses.
    pub http_fetch_allow_private: bool,
    /// `WEB_SEARCH_URL`: a search endpoint answering `GET ?q=…` with JSON.
    pub web_search_url: Option<String>,
}

impl ToolContext {
    pub fn from_config(config: &Config, allowed_tools: &[String]) -> ToolContext {
        ToolContext {
            allowed_tools: allowed_tools.to_vec(),
            http_fetch_allow_private: config.http_fetch_allow_private,
            web_search_url: config.web_search_url.clone(),
        }
    }
}

/// The built-in tools among `allowed`, with their argument schemas.
pub fn specs(allowed: &[String]) -> Vec<ToolSpec> {
    BUILTIN.iter().filter(|b| allowed.iter().any(|a| a == b.name)).map(|b| spec(b.name)).collect()
}

fn spec(name: &str) -> ToolSpec {
    let (description, parameters) = match name {
        "calculate" => (
            "Evaluate an arithmetic expression: numbers, + - * / % ^, parentheses, and the functions sqrt, abs, \
             sin, cos, tan, asin, acos, atan, ln, log, log2, exp, floor, ceil, round, min, max, pow; constants pi and e.",
            json!({"type": "object", "properties": {"expression": {"type": "string", "description": "e.g. (2 + 3) * 4 ^ 2"}}, "required": ["expression"], "additionalProperties": false}),
        ),
        "get_time" => (
            "The current date and time in UTC (ISO 8601).",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
        ),
        "http_fetch" => (
            "Fetch an http(s) URL and return its text (HTML tags removed, at most 4000 characters).",
            json!({"type": "object", "properties": {"url": {"type": "string", "description": "http:// or https:// URL"}}, "required": ["url"], "additionalProperties": false}),
        ),
        _ => (
            "Search the web; returns the top results with titles, links and snippets.",
            json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"], "additionalProperties": false}),
        ),
    };
    ToolSpec { name: name.to_string(), description: description.to_string(), parameters }
}

/// Runs one tool call; the answer (or `Error: …`) for the model.
pub async fn call(call: &ToolCall, ctx: &ToolContext) -> String {
    if !BUILTIN.iter().any(|b| b.name == call.name) {
        return format!("Error: unknown tool {:?}", call.name);
    }
    if !ctx.allowed_tools.iter().any(|a| a == &call.name) {
        return format!("Error: tool {} is not enabled for this agent", call.name);
    }
    let arg = |key: &str| call.arguments.get(key).and_then(Value::as_str).map(str::trim).unwrap_or("");
    match call.name.as_str() {
        "calculate" => match calculate(arg("expression")) {
            Ok(v) => format_number(v),
            Err(e) => format!("Error: {e}"),
        },
        "get_time" => get_time(),
        "http_fetch" => {
            http_fetch(arg("url"), ctx.http_fetch_allow_private).await.unwrap_or_else(|e| format!("Error: {e}"))
        }
        _ => web_search(arg("query"), ctx.web_search_url.as_deref()).await.unwrap_or_else(|e| format!("Error: {e}")),
    }
}

/// Runs one round of tool calls concurrently; the results in call order, as
/// tool-result messages to append after the assistant turn that made them.
pub async fn call_all(calls: &[ToolCall], ctx: &ToolContext) -> Vec<ChatMessage> {
    let results = futures::future::join_all(calls.iter().map(|c| call(c, ctx))).await;
    calls.iter().zip(results).map(|(c, r)| ChatMessage::tool_result(c, r)).collect()
}

/// Now, ISO 8601 UTC.
pub fn get_time() -> String {
    arvis_shared::clock::to_rfc3339(arvis_shared::clock::now_ms())
}

// ---------------------------------------------------------------- calculate

/// Evaluates an arithmetic expression (a small recursive-descent parser: no
/// variables, no assignment, no strings).
pub fn calculate(expr: &str) -> Result<f64, String> {
    if expr.is_empty() {
        return Err("expression is empty".into());
    }
    if expr.chars().count() > 1_000 {
        return Err("expression is longer than 1000 characters".into());
    }
    let tokens = lex(expr)?;
    let mut p = Parser { tokens, pos: 0, depth: 0 };
    let v = p.expr()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected {} after the expression", p.tokens[p.pos].describe()));
    }
    if !v.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(v)
}

/// Integers print without a fraction; everything else as the shortest exact decimal.
pub fn format_number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(char),
    LParen,
    RParen,
    Comma,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(n) => format!("number {n}"),
            Tok::Ident(s) => format!("name {s:?}"),
            Tok::Op(c) => format!("'{c}'"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
        }
    }
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // An exponent: e/E, optional sign, digits.
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Tok::Num(text.parse().map_err(|_| format!("invalid number {text:?}"))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect::<String>().to_ascii_lowercase()));
        } else {
            out.push(match c {
                '+' | '-' | '*' | '/' | '%' | '^' => Tok::Op(c),
                '×' => Tok::Op('*'),
                '÷' => Tok::Op('/'),
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                ',' => Tok::Comma,
                other => return Err(format!("unexpected character {other:?}")),
            });
            i += 1;
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 100;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err("expression is nested too deeply".into()) } else { Ok(()) }
    }

    // expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Result<f64, String> {
        self.enter()?;
        let mut v = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.term()?;
            v = if op == '+' { v + r } else { v - r };
        }
        self.depth -= 1;
        Ok(v)
    }

    // term := unary (('*' | '/' | '%') unary)*
    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(Tok::Op(op @ ('*' | '/' | '%'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.unary()?;
            v = match op {
                '*' => v * r,
                _ if r == 0.0 => return Err("division by zero".into()),
                '/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    // unary := ('-' | '+') unary | power     (so -2^2 = -4)
    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(Tok::Op('-')) => {
                self.pos += 1;
                self.enter()?;
                let v = -self.unary()?;
                self.depth -= 1;
                Ok(v)
            }
            Some(Tok::Op('+')) => {
                self.pos += 1;
                self.enter()?;
                let v = self.unary()?;
                self.depth -= 1;
                Ok(v)
            }
            _ => self.power(),
        }
    }

    // power := primary ('^' unary)?     (right-associative)
    fn power(&mut self) -> Result<f64, String> {
        let base = self.primary()?;
        if let Some(Tok::Op('^')) = self.peek() {
            self.pos += 1;
            self.enter()?;
            let exp = self.unary()?;
            self.depth -= 1;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(n),
            Some(Tok::LParen) => {
                let v = self.expr()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(v),
                    _ => Err("missing ')'".into()),
                }
            }
            Some(Tok::Ident(name)) => {
                if self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if self.peek() == Some(&Tok::RParen) {
                        self.pos += 1;
                    } else {
                        loop {
                            args.push(self.expr()?);
                            match self.next() {
                                Some(Tok::Comma) => continue,
                                Some(Tok::RParen) => break,
                                _ => return Err(format!("missing ')' after the arguments of {name}")),
                            }
                        }
                    }
                    apply_function(&name, &args)
                } else {
                    match name.as_str() {
                        "pi" => Ok(std::f64::consts::PI),
                        "e" => Ok(std::f64::consts::E),
                        other => Err(format!("unknown name {other:?} (variables are not supported)")),
                    }
                }
            }
            Some(t) => Err(format!("unexpected {}", t.describe())),
            None => Err("the expression ends too early".into()),
        }
    }
}

fn apply_function(name: &str, args: &[f64]) -> Result<f64, String> {
    let one = |f: fn(f64) -> f64| -> Result<f64, String> {
        match args {
            [x] => Ok(f(*x)),
            _ => Err(format!("{name} takes one argument")),
        }
    };
    match name {
        "sqrt" => one(f64::sqrt),
        "abs" => one(f64::abs),
        "sin" => one(f64::sin),
        "cos" => one(f64::cos),
        "tan" => one(f64::tan),
        "asin" => one(f64::asin),
        "acos" => one(f64::acos),
        "atan" => one(f64::atan),
        "ln" => one(f64::ln),
        "log" | "log10" => one(f64::log10),
        "log2" => one(f64::log2),
        "exp" => one(f64::exp),
        "floor" => one(f64::floor),
        "ceil" => one(f64::ceil),
        "round" => one(f64::round),
        "min" | "max" if !args.is_empty() => {
            let fold = if name == "min" { f64::min } else { f64::max };
            Ok(args[1..].iter().fold(args[0], |a, b| fold(a, *b)))
        }
        "pow" => match args {
            [x, y] => Ok(x.powf(*y)),
            _ => Err("pow takes two arguments".into()),
        },
        "min" | "max" => Err(format!("{name} needs at least one argument")),
        other => Err(format!("unknown function {other:?}")),
    }
}

// ---------------------------------------------------------------- http_fetch

/// True for addresses `http_fetch` must not reach unless private access is allowed.
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

/// Resolves the URL's host and checks every address. Returns the host and the
/// addresses to connect to.
async fn resolve_checked(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
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

fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("invalid URL {raw:?}: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("only http and https URLs can be fetched, not {}:", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with credentials are not fetched".into());
    }
    Ok(url)
}

/// Fetches a URL's text (see the module docs for the address rules).
pub async fn http_fetch(raw: &str, allow_private: bool) -> Result<String, String> {
    if raw.is_empty() {
        return Err("url is required".into());
    }
    arvis_shared::install_crypto_provider();
    match tokio::time::timeout(FETCH_TIMEOUT, fetch_following_redirects(raw, allow_private)).await {
        Ok(result) => result,
        Err(_) => Err(format!("fetching {raw} timed out after {} s", FETCH_TIMEOUT.as_secs())),
    }
}

async fn fetch_following_redirects(raw: &str, allow_private: bool) -> Result<String, String> {
    let mut url = parse_http_url(raw)?;
    for _ in 0..=MAX_REDIRECTS {
        let addrs = resolve_checked(&url, allow_private).await?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past the address check.
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("Arvis/", env!("CARGO_PKG_VERSION"), " (http_fetch)"));
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
        let is_html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("html"));
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading {url}: {e}"))? {
            let room = MAX_DOWNLOAD_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_DOWNLOAD_BYTES {
                break;
            }
        }
        let text = String::from_utf8_lossy(&body);
        let looks_html = is_html || text.trim_start().starts_with('<');
        let text = if looks_html { strip_html(&text) } else { text.trim().to_string() };
        let text = truncate(&text, MAX_RESULT_CHARS);
        if !status.is_success() {
            return Err(format!("HTTP {status} from {url}: {text}"));
        }
        return Ok(text);
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// Cuts to `max` characters, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(15)).collect();
    out.push_str("\n…[truncated]");
    out
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

// ---------------------------------------------------------------- web_search

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

    fn tool(name: &str, args: Value) -> ToolCall {
        ToolCall { id: "c1".into(), name: name.into(), arguments: args }
    }

    fn ctx(allow_private: bool) -> ToolContext {
        ToolContext {
            allowed_tools: BUILTIN.iter().map(|b| b.name.to_string()).collect(),
            http_fetch_allow_private: allow_private,
            web_search_url: None,
        }
    }

    #[test]
    fn calculate_arithmetic() {
        let ok = |e: &str| calculate(e).unwrap();
        assert_eq!(ok("1 + 2 * 3"), 7.0);
        assert_eq!(ok("(1 + 2) * 3"), 9.0);
        assert_eq!(ok("2 ^ 3 ^ 2"), 512.0);
        assert_eq!(ok("-2 ^ 2"), -4.0);
        assert_eq!(ok("10 % 4"), 2.0);
        assert_eq!(ok("1.5e3 / 3"), 500.0);
        assert_eq!(ok("sqrt(16) + abs(-2) + max(1, 5, 3)"), 11.0);
        assert!((ok("2 * pi") - std::f64::consts::TAU).abs() < 1e-12);
        assert_eq!(ok("--3"), 3.0);
        assert_eq!(format_number(ok("7 / 2")), "3.5");
        assert_eq!(format_number(ok("2^10")), "1024");
    }

    #[test]
    fn calculate_errors_are_text() {
        for bad in ["", "1 / 0", "5 % 0", "x + 1", "1 +", "(1 + 2", "2 ** 3", "\"a\"", "a = 1", "foo(1)", "sqrt(1, 2)"]
        {
            assert!(calculate(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(calculate(&"(".repeat(500)).unwrap_err().contains("nested"));
        assert!(calculate("sqrt(-1)").is_err(), "NaN is refused");
    }

    #[tokio::test]
    async fn call_formats_results_and_errors() {
        assert_eq!(call(&tool("calculate", json!({"expression": "6*7"})), &ctx(false)).await, "42");
        assert!(call(&tool("calculate", json!({"expression": "1/0"})), &ctx(false)).await.starts_with("Error: "));
        assert!(call(&tool("run_shell", json!({})), &ctx(false)).await.starts_with("Error: unknown tool"));
        let none = ToolContext::default();
        assert!(call(&tool("calculate", json!({"expression": "1"})), &none).await.contains("not enabled"));
        let t = call(&tool("get_time", json!({})), &ctx(false)).await;
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
        assert_eq!(
            call(&tool("web_search", json!({"query": "x"})), &ctx(false)).await,
            "Error: web search is not configured (set WEB_SEARCH_URL)"
        );
    }

    #[tokio::test]
    async fn a_round_of_calls_answers_each_in_order() {
        let calls = vec![tool("calculate", json!({"expression": "1+1"})), tool("nope", json!({}))];
        let out = call_all(&calls, &ctx(false)).await;
        assert_eq!(out.len(), 2);
        assert_eq!(&*out[0].content, "2");
        assert_eq!(out[0].tool_call_id.as_deref(), Some("c1"));
        assert!(out[1].content.starts_with("Error: unknown tool"));
    }

    #[test]
    fn specs_only_for_allowed_builtins() {
        let s = specs(&["http_fetch".into(), "run_shell".into(), "calculate".into()]);
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["calculate", "http_fetch"]);
        assert_eq!(s[0].parameters["required"], json!(["expression"]));
    }

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

    #[tokio::test]
    async fn http_fetch_refuses_local_targets_after_resolution() {
        arvis_shared::install_crypto_provider();
        for url in ["http://127.0.0.1", "http://[::1]", "http://10.0.0.1", "http://localhost", "http://localhost:9/x"] {
            let out = call(&tool("http_fetch", json!({"url": url})), &ctx(false)).await;
            assert!(out.starts_with("Error: refusing to fetch"), "{url}: {out}");
        }
        for url in ["ftp://example.com", "file:///etc/passwd", "not a url", "http://user:pw@example.com"] {
            let out = call(&tool("http_fetch", json!({"url": url})), &ctx(false)).await;
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

    #[test]
    fn search_results_are_formatted() {
        let v = json!({"results": [{"title": "Rust", "url": "https://rust-lang.org", "content": "A language"}]});
        assert_eq!(format_results(&v), "1. Rust — https://rust-lang.org\n   A language");
        assert_eq!(format_results(&json!({"results": []})), "No results.");
        assert_eq!(format_results(&json!({"answer": 1})), "{\"answer\":1}");
    }

    #[test]
    fn truncation_marks_the_cut() {
        let t = truncate(&"x".repeat(5000), 4000);
        assert!(t.chars().count() <= 4000 && t.ends_with("[truncated]"));
    }
}
