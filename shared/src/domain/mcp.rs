//! MCP servers (issue 23): where an agent's outside tools come from, and the
//! `allowedTools` forms that name them (`mcp:<server>/<tool>`,
//! `mcp:<server>/*`).
//!
//! A server is configured through the API with a transport (`stdio`: a command
//! the worker starts; `http`: a Streamable HTTP URL). Secrets never pass
//! through the API: `env` lists the NAMES of environment variables the worker
//! hands to a stdio child, and `headers` maps an HTTP header to the NAME of the
//! variable holding its value. What a server offers (`tools/list`), whether it
//! is reachable and its last error are written by the workers that connect to
//! it ([`McpStatus`]); the gateway only reads them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, check_text};

/// The built-in tools' names (the worker implements them).
pub const BUILTIN_TOOLS: &[&str] = &["web_search", "calculate", "get_time", "http_fetch"];

/// How long a server name may be: `mcp_<name>_<tool>` must stay within the
/// providers' 64-character tool-name limit with room for the tool.
pub const MAX_NAME_LEN: usize = 32;

/// The transports a server can use.
pub const TRANSPORTS: &[&str] = &["stdio", "http"];

/// A configured MCP server, as the API returns it (no secret values: only names).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct McpServer {
    pub id: i64,
    /// Unique; `mcp:<name>/<tool>` in `allowedTools`.
    pub name: String,
    /// `stdio` or `http`.
    pub transport: String,
    /// stdio: the program the worker starts.
    pub command: Option<String>,
    /// stdio: its arguments.
    pub args: Vec<String>,
    /// stdio: names of the worker's environment variables passed to the child.
    pub env: Vec<String>,
    /// http: the Streamable HTTP endpoint.
    pub url: Option<String>,
    /// http: header name → name of the environment variable holding its value.
    pub headers: BTreeMap<String, String>,
    pub is_enabled: bool,
    /// `unknown` (no worker connected yet), `ready` or `error`.
    pub status: String,
    pub last_error: Option<String>,
    /// When a worker last wrote the status (RFC 3339).
    pub status_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// `updated_at` in ms: which configuration a worker's status report is
    /// about (a report about a replaced one is dropped).
    #[serde(skip)]
    pub revision: i64,
}

/// One tool a server offers (from its `tools/list`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct McpTool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The JSON Schema of its arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
}

/// `GET /api/mcp-servers/{id}/tools`.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct McpToolList {
    pub server_id: i64,
    pub server: String,
    pub status: String,
    pub last_error: Option<String>,
    pub status_at: Option<String>,
    pub tools: Vec<McpTool>,
}

/// What a worker learned about a server (written to the database).
#[derive(Debug, Clone, PartialEq)]
pub struct McpStatus {
    /// `ready` or `error`.
    pub status: &'static str,
    pub last_error: Option<String>,
    /// `None` keeps the stored list (an error does not erase what was known).
    pub tools: Option<Vec<McpTool>>,
}

/// `POST /api/mcp-servers`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewMcpServer {
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")]
    pub name: String,
    #[schema(pattern = "^(stdio|http)$")]
    pub transport: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub is_enabled: Option<bool>,
}

/// `PATCH /api/mcp-servers/{id}`: absent fields are kept; `null` clears
/// `command` / `url`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpServerPatch {
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")]
    pub name: Option<String>,
    #[schema(pattern = "^(stdio|http)$")]
    pub transport: Option<String>,
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub command: Option<Option<String>>,
    pub args: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::nullable::field")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub url: Option<Option<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub is_enabled: Option<bool>,
}

/// A server's stored configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerFields {
    pub name: String,
    pub transport: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub is_enabled: bool,
}

impl NewMcpServer {
    pub fn into_fields(self) -> Result<McpServerFields, Invalid> {
        let f = McpServerFields {
            name: self.name,
            transport: self.transport,
            command: self.command,
            args: self.args.unwrap_or_default(),
            env: self.env.unwrap_or_default(),
            url: self.url,
            headers: self.headers.unwrap_or_default(),
            is_enabled: self.is_enabled.unwrap_or(true),
        };
        f.validate()?;
        Ok(f)
    }
}

impl McpServerPatch {
    pub fn apply(self, current: &McpServer) -> Result<McpServerFields, Invalid> {
        let f = McpServerFields {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            transport: self.transport.unwrap_or_else(|| current.transport.clone()),
            command: super::nullable::apply(self.command, &current.command),
            args: self.args.unwrap_or_else(|| current.args.clone()),
            env: self.env.unwrap_or_else(|| current.env.clone()),
            url: super::nullable::apply(self.url, &current.url),
            headers: self.headers.unwrap_or_else(|| current.headers.clone()),
            is_enabled: self.is_enabled.unwrap_or(current.is_enabled),
        };
        f.validate()?;
        Ok(f)
    }
}

/// 1-32 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit.
pub fn check_server_name(field: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(Invalid::new(format!(
            "{field} must be 1-{MAX_NAME_LEN} characters of a-z, 0-9, - and _, starting with a letter or digit"
        )));
    }
    Ok(())
}

/// An environment-variable name (`[A-Za-z_][A-Za-z0-9_]*`, ≤ 128).
fn check_var_name(field: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !ok {
        return Err(Invalid::new(format!(
            "{field}: {name:?} is not an environment variable name (letters, digits and _, not starting with a digit); \
             give the variable's NAME, never its value"
        )));
    }
    Ok(())
}

/// An HTTP header name (RFC 9110 token).
fn check_header_name(name: &str) -> Result<(), Invalid> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || name.len() > 128 || !name.bytes().all(tchar) {
        return Err(Invalid::new(format!("headers: {name:?} is not an HTTP header name")));
    }
    Ok(())
}

impl McpServerFields {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_server_name("name", &self.name)?;
        if !TRANSPORTS.contains(&self.transport.as_str()) {
            return Err(Invalid::new("transport must be one of: stdio, http"));
        }
        if self.args.len() > 100 {
            return Err(Invalid::new("args has more than 100 entries"));
        }
        for a in &self.args {
            check_text("args", a, 2_000)?;
        }
        if self.env.len() > 100 {
            return Err(Invalid::new("env has more than 100 entries"));
        }
        for name in &self.env {
            check_var_name("env", name)?;
        }
        if self.headers.len() > 50 {
            return Err(Invalid::new("headers has more than 50 entries"));
        }
        for (header, var) in &self.headers {
            check_header_name(header)?;
            check_var_name(&format!("headers.{header}"), var)?;
        }
        match self.transport.as_str() {
            "stdio" => {
                let command = self.command.as_deref().map(str::trim).unwrap_or("");
                if command.is_empty() {
                    return Err(Invalid::new("command is required for a stdio server"));
                }
                check_text("command", command, 1_000)?;
                if self.url.is_some() || !self.headers.is_empty() {
                    return Err(Invalid::new("url and headers are for http servers; a stdio server has a command"));
                }
            }
            _ => {
                let url = self.url.as_deref().unwrap_or("");
                if url.is_empty() {
                    return Err(Invalid::new("url is required for an http server"));
                }
                check_text("url", url, 2_000)?;
                crate::net::parse_http_url(url).map_err(|e| Invalid::new(format!("url: {e}")))?;
                if self.command.is_some() || !self.args.is_empty() || !self.env.is_empty() {
                    return Err(Invalid::new("command, args and env are for stdio servers; an http server has a url"));
                }
            }
        }
        Ok(())
    }
}

/// An `allowedTools` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolRef<'a> {
    Builtin(&'a str),
    /// `mcp:<server>/<tool>`.
    Mcp {
        server: &'a str,
        tool: &'a str,
    },
    /// `mcp:<server>/*`: every tool the server offers.
    McpAll {
        server: &'a str,
    },
}

impl<'a> ToolRef<'a> {
    /// Parses one entry; an unknown form is an error naming the accepted ones.
    pub fn parse(entry: &'a str) -> Result<ToolRef<'a>, Invalid> {
        if let Some(rest) = entry.strip_prefix("mcp:") {
            let Some((server, tool)) = rest.split_once('/') else {
                return Err(Invalid::new(format!(
                    "allowedTools: {entry:?} must be mcp:<server>/<tool> or mcp:<server>/*"
                )));
            };
            check_server_name(&format!("allowedTools: the server in {entry:?}"), server)?;
            if tool == "*" {
                return Ok(ToolRef::McpAll { server });
            }
            if tool.is_empty() || tool.len() > 128 || tool.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Invalid::new(format!(
                    "allowedTools: the tool in {entry:?} must be 1-128 characters without spaces, or *"
                )));
            }
            return Ok(ToolRef::Mcp { server, tool });
        }
        if BUILTIN_TOOLS.contains(&entry) {
            return Ok(ToolRef::Builtin(entry));
        }
        Err(Invalid::new(format!(
            "allowedTools: unknown tool {entry:?} (built-ins: {}; MCP tools: mcp:<server>/<tool> or mcp:<server>/*)",
            BUILTIN_TOOLS.join(", ")
        )))
    }
}

/// The MCP servers an `allowedTools` list refers to (deduplicated, in order).
pub fn referenced_servers(allowed: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for entry in allowed {
        let server = match ToolRef::parse(entry) {
            Ok(ToolRef::Mcp { server, .. }) | Ok(ToolRef::McpAll { server }) => server,
            _ => continue,
        };
        if !out.contains(&server) {
            out.push(server);
        }
    }
    out
}

/// Whether `allowed` lets an agent use `tool` of `server`.
pub fn allows(allowed: &[String], server: &str, tool: &str) -> bool {
    allowed.iter().any(|entry| match ToolRef::parse(entry) {
        Ok(ToolRef::Mcp { server: s, tool: t }) => s == server && t == tool,
        Ok(ToolRef::McpAll { server: s }) => s == server,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(name: &str) -> McpServerFields {
        McpServerFields {
            name: name.into(),
            transport: "stdio".into(),
            command: Some("node".into()),
            args: vec![],
            env: vec![],
            url: None,
            headers: BTreeMap::new(),
            is_enabled: true,
        }
    }

    #[test]
    fn names_and_forms() {
        assert!(stdio("files").validate().is_ok());
        assert!(stdio("a-b_c9").validate().is_ok());
        for bad in ["", "Files", "-x", "a/b", "a b", &"x".repeat(33)] {
            assert!(stdio(bad).validate().is_err(), "{bad:?}");
        }
        let mut f = stdio("x");
        f.env = vec!["sk-123 secret".into()];
        assert!(f.validate().unwrap_err().0.contains("NAME"));
        let mut f = stdio("x");
        f.url = Some("http://example.com".into());
        assert!(f.validate().is_err());
        let mut f = stdio("x");
        f.transport = "http".into();
        f.command = None;
        f.url = Some("ftp://example.com".into());
        assert!(f.validate().is_err());
        f.url = Some("https://example.com/mcp".into());
        f.headers.insert("Authorization".into(), "MCP_TOKEN".into());
        assert!(f.validate().is_ok());
        f.headers.insert("Bad Header".into(), "X".into());
        assert!(f.validate().is_err());
    }

    #[test]
    fn allowed_tool_forms() {
        assert_eq!(ToolRef::parse("calculate"), Ok(ToolRef::Builtin("calculate")));
        assert_eq!(ToolRef::parse("mcp:fs/read_file"), Ok(ToolRef::Mcp { server: "fs", tool: "read_file" }));
        assert_eq!(ToolRef::parse("mcp:fs/*"), Ok(ToolRef::McpAll { server: "fs" }));
        for bad in ["run_shell", "mcp:fs", "mcp:/x", "mcp:FS/x", "mcp:fs/", "mcp:fs/a b", "mcp:"] {
            assert!(ToolRef::parse(bad).is_err(), "{bad:?}");
        }
        let allowed = vec!["mcp:fs/read".to_string(), "mcp:web/*".to_string(), "calculate".to_string()];
        assert!(allows(&allowed, "fs", "read"));
        assert!(!allows(&allowed, "fs", "write"));
        assert!(allows(&allowed, "web", "anything"));
        assert_eq!(referenced_servers(&allowed), vec!["fs", "web"]);
    }
}
