//! The built-in tools an agent may be given through `allowedTools`:
//! `calculate`, `get_time`, `http_fetch` and `web_search` (behaviour reference
//! §6). [`specs`] lists the ones an agent has, with JSON Schemas; [`call`]
//! runs one. A tool never fails the job: problems come back to the model as
//! `Error: …` text.
//!
//! One file per tool: [`calculate`] (a small expression parser), [`time`],
//! [`fetch`] (`http_fetch`, behind the private-address guard of
//! [`arvis_shared::net`] — the gateway's skill import uses the same guard) and
//! [`search`] (`web_search` against `WEB_SEARCH_URL`). This file is the
//! registry: which tools exist, their schemas, and dispatching a call.

pub mod calculate;
pub mod fetch;
pub mod search;
pub mod time;

use std::sync::Arc;
use std::time::Duration;

use arvis_shared::config::Config;
use serde_json::{Value, json};

pub use calculate::{calculate, format_number};
pub use fetch::{http_fetch, strip_html};
pub use search::{format_results, web_search};
pub use time::get_time;

use crate::llm::{ChatMessage, ToolCall, ToolSpec};
use crate::mcp::{McpBinding, McpManager};

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

/// What the tools need from the process: set once by the worker.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    /// The agent's `allowedTools`: a call to a tool it lacks is refused.
    pub allowed_tools: Vec<String>,
    /// `HTTP_FETCH_ALLOW_PRIVATE`: let `http_fetch` reach private and local addresses.
    pub http_fetch_allow_private: bool,
    /// `WEB_SEARCH_URL`: a search endpoint answering `GET ?q=…` with JSON.
    pub web_search_url: Option<String>,
    /// The worker's MCP connections (none in unit tests).
    pub mcp: Option<Arc<McpManager>>,
    /// The MCP tools declared to the model in this run: wire name → server/tool.
    /// A call to a name not here is refused, whatever the model sends.
    pub mcp_tools: Vec<McpBinding>,
}

impl ToolContext {
    pub fn from_config(config: &Config, allowed_tools: &[String]) -> ToolContext {
        ToolContext {
            allowed_tools: allowed_tools.to_vec(),
            http_fetch_allow_private: config.http_fetch_allow_private,
            web_search_url: config.web_search_url.clone(),
            mcp: None,
            mcp_tools: vec![],
        }
    }
}

/// The tools of one run: the built-ins among `allowed`, then the MCP tools it
/// grants (`mcp:<server>/<tool>`, `mcp:<server>/*`) under provider-safe names,
/// with the context that runs their calls.
pub async fn for_run(config: &Config, mcp: &Arc<McpManager>, allowed: &[String]) -> (Vec<ToolSpec>, ToolContext) {
    let mut specs = specs(allowed);
    let mut ctx = ToolContext::from_config(config, allowed);
    if !arvis_shared::domain::mcp::referenced_servers(allowed).is_empty() {
        let taken: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        for offer in mcp.tools_for(allowed, &taken).await {
            specs.push(ToolSpec {
                name: offer.binding.wire.clone(),
                description: offer.description,
                parameters: offer.parameters,
            });
            ctx.mcp_tools.push(offer.binding);
        }
        ctx.mcp = Some(mcp.clone());
    }
    (specs, ctx)
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
        return call_mcp(call, ctx).await;
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

/// An MCP tool call: only a tool declared to the model in this run, and
/// still granted by `allowedTools`, reaches its server.
async fn call_mcp(call: &ToolCall, ctx: &ToolContext) -> String {
    let Some(binding) = ctx.mcp_tools.iter().find(|b| b.wire == call.name) else {
        if call.name.starts_with("mcp_") {
            return format!("Error: tool {} is not enabled for this agent", call.name);
        }
        return format!("Error: unknown tool {:?}", call.name);
    };
    let (Some(mcp), true) =
        (ctx.mcp.as_ref(), arvis_shared::domain::mcp::allows(&ctx.allowed_tools, &binding.server, &binding.tool))
    else {
        return format!("Error: tool {} is not enabled for this agent", call.name);
    };
    match mcp.call(&binding.server, &binding.tool, &call.arguments).await {
        Ok(text) => text,
        Err(e) => format!("Error: {e}"),
    }
}

/// Runs one round of tool calls concurrently; the results in call order, as
/// tool-result messages to append after the assistant turn that made them.
pub async fn call_all(calls: &[ToolCall], ctx: &ToolContext) -> Vec<ChatMessage> {
    let results = futures::future::join_all(calls.iter().map(|c| call(c, ctx))).await;
    calls.iter().zip(results).map(|(c, r)| ChatMessage::tool_result(c, r)).collect()
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A call of tool `name` (the tools' tests share it).
    pub(crate) fn tool(name: &str, args: Value) -> ToolCall {
        ToolCall { id: "c1".into(), name: name.into(), arguments: args }
    }

    /// Every built-in allowed.
    pub(crate) fn ctx(allow_private: bool) -> ToolContext {
        ToolContext {
            allowed_tools: BUILTIN.iter().map(|b| b.name.to_string()).collect(),
            http_fetch_allow_private: allow_private,
            web_search_url: None,
            mcp: None,
            mcp_tools: vec![],
        }
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

    #[tokio::test]
    async fn mcp_calls_need_a_declared_and_allowed_tool() {
        let binding = McpBinding { wire: "mcp_fs_read".into(), server: "fs".into(), tool: "read".into() };
        // Not declared in this run: refused, whatever the model sends.
        let out = call(&tool("mcp_fs_read", json!({})), &ctx(false)).await;
        assert_eq!(out, "Error: tool mcp_fs_read is not enabled for this agent");
        // Declared but no longer granted by allowedTools: refused too.
        let c = ToolContext { mcp_tools: vec![binding], ..ctx(false) };
        let out = call(&tool("mcp_fs_read", json!({})), &c).await;
        assert_eq!(out, "Error: tool mcp_fs_read is not enabled for this agent");
    }

    #[test]
    fn specs_only_for_allowed_builtins() {
        let s = specs(&["http_fetch".into(), "run_shell".into(), "calculate".into()]);
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["calculate", "http_fetch"]);
        assert_eq!(s[0].parameters["required"], json!(["expression"]));
    }

    #[test]
    fn truncation_marks_the_cut() {
        let t = truncate(&"x".repeat(5000), 4000);
        assert!(t.chars().count() <= 4000 && t.ends_with("[truncated]"));
    }
}
