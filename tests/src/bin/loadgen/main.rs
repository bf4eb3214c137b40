//! `loadgen`: the benchmark program (BENCHMARKS.md). It starts what it
//! measures — the release binaries, a `nats-server`, baseline servers — runs
//! each scenario for a bounded time, and prints a table plus one JSON line per
//! result: `{"scenario":…,"metric":…,"value":…,"unit":…}`.
//!
//! Timings on a shared machine drift, so a scenario with a baseline measures
//! both in the same run, interleaved (baseline, subject, baseline, subject…),
//! and reports the ratio.
//!
//! Run: `cargo build --release --workspace --bins && target/release/loadgen [--secs N] [--only a,b]`
//!
//! Layout: this file (the report, /proc readings, the HTTP load loop, the
//! loopback provider and baseline servers, the command line) and one file per
//! scenario beside it. Processes, ports, scratch Postgres databases and the
//! `nats-server` come from the test kit (`arvis_testkit::harness`,
//! `NatsServer`), shared with `faults` and the process-level tests.

#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark fails loudly

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use arvis_testkit::NatsServer;
use arvis_testkit::harness::{Output, Proc, ScratchPg, Takes, check_args, free_port, wait_http};

// One file per scenario.
mod api_read;
mod chat_overhead;
mod chat_throughput;
mod cron_burst;
mod idle_rss;
mod queue_raw;
mod telegram_inbound;
mod v1_stream;
mod ws_chat;
mod ws_fanout;

use api_read::api_read;
use chat_overhead::chat_overhead;
use chat_throughput::chat_throughput;
use cron_burst::cron_burst;
use idle_rss::idle_rss;
use queue_raw::queue_raw;
use ws_chat::ws_chat;
use ws_fanout::ws_fanout;

/// Agents the chat scenarios spread their load over.
const CHAT_AGENTS: usize = 128;

struct Row {
    scenario: String,
    metric: String,
    value: f64,
    unit: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(&mut self, scenario: &str, metric: &str, value: f64, unit: &str) {
        let line =
            json!({"scenario": scenario, "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit});
        println!("{line}");
        self.rows.push(Row { scenario: scenario.into(), metric: metric.into(), value, unit: unit.into() });
    }
    fn table(&self) {
        println!("\n| scenario | metric | value | unit |\n|---|---|---:|---|");
        for r in &self.rows {
            println!("| {} | {} | {:.3} | {} |", r.scenario, r.metric, r.value, r.unit);
        }
    }
}

/// Starts the service binary `bin` (next to this program) in `dir`, logging
/// only warnings, with its output discarded.
fn spawn(bin: &str, envs: &[(&str, String)], dir: &Path) -> Proc {
    let envs: Vec<(&str, String)> =
        std::iter::once(("RUST_LOG", "warn".to_string())).chain(envs.iter().cloned()).collect();
    Proc::service(bin, &envs, dir, Output::Null)
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU time (user + system) a process has used so far, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    // The kernel's USER_HZ is 100 on every Linux we run on.
    (ticks(11) + ticks(12)) * 10.0
}

/// CPU time of every process named `postgres` on this machine (the server
/// and its backends), in milliseconds.
fn postgres_cpu_ms() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return f64::NAN };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(cpu_ms)
        .filter(|ms| ms.is_finite())
        .sum()
}

/// Bytes a process has caused to be written to storage so far (pages it
/// dirtied: `write_bytes` of /proc/PID/io), in KiB.
fn written_kib(pid: u32) -> f64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |b| b / 1024.0)
}

/// The value of an unlabelled counter on the gateway's /metrics page (0 when absent).
async fn metric(base: &str, name: &str) -> f64 {
    let page = match reqwest::Client::new().get(format!("{base}/metrics")).header("x-api-key", KEY).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

struct LoadResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// `conns` keep-alive connections issuing GETs back to back for `secs`.
async fn http_load(url: &str, headers: &[(&str, &str)], conns: usize, secs: f64) -> LoadResult {
    let client = reqwest::Client::builder().pool_max_idle_per_host(conns).tcp_nodelay(true).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let headers: Arc<Vec<(String, String)>> =
        Arc::new(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, headers) = (client.clone(), url.to_string(), headers.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 14);
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let started = Instant::now();
                let mut req = client.get(&url);
                for (k, v) in headers.iter() {
                    req = req.header(k, v);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(started.elapsed().as_micros() as u32);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    all.sort_unstable();
    LoadResult { rps: all.len() as f64 / secs, p50_ms: percentile(&all, 0.5), p99_ms: percentile(&all, 0.99), errors }
}

/// The baseline for api-read: a bare axum handler returning fixed bytes,
/// run in its own process (`loadgen --baseline-server PORT FILE`).
async fn baseline_server(port: u16, file: &str) {
    let body = bytes::Bytes::from(std::fs::read(file).unwrap());
    let app = axum::Router::new().route(
        "/api/agents",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

const KEY: &str = "loadgen-api-key";

/// The loopback LLM provider of the chat scenarios: answers every chat
/// completion at once, streaming, in the OpenAI wire format (its own process:
/// `loadgen --provider-server PORT`).
async fn provider_server(port: u16) {
    const SSE: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"ok\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1}}\n\n",
        "data: [DONE]\n\n"
    );
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async { ([(axum::http::header::CONTENT_TYPE, "text/event-stream")], SSE) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

/// This program again, in its own process, as one of its servers (`--provider-server`, `--baseline-server`).
fn self_process(args: &[&str]) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(args);
    Proc::spawn("loadgen", cmd, Output::Null)
}

/// The all-in-one launcher on a fresh SQLite database in a temp dir, with the
/// instant loopback provider in its own process, ready to serve. Fields drop
/// in order: the launcher first, then the provider, then its directory.
struct Launcher {
    _arvis: Proc,
    _provider: Proc,
    /// `http://127.0.0.1:<gateway port>`.
    base: String,
    ws_port: u16,
    /// The provider's chat completions URL (to call it directly, as a baseline).
    provider_url: String,
    _work: tempfile::TempDir,
}

/// Starts a [`Launcher`] with `WORKER_CONCURRENCY` 64 and `extra` variables.
async fn launcher(extra: &[(&str, String)]) -> Launcher {
    let work = tempfile::tempdir().unwrap();
    let pport = free_port();
    let provider = self_process(&["--provider-server", &pport.to_string()]);
    let (gw, ws_port) = (free_port(), free_port());
    let mut env = vec![
        ("GATEWAY_ADDR", format!("127.0.0.1:{gw}")),
        ("WS_BRIDGE_ADDR", format!("127.0.0.1:{ws_port}")),
        ("DASHBOARD_API_KEY", KEY.to_string()),
        ("OPENAI_API_KEY", "sk-bench".to_string()),
        ("OPENAI_BASE_URL", format!("http://127.0.0.1:{pport}/v1")),
        ("WORKER_CONCURRENCY", "64".to_string()),
        ("ARVIS_DATA_DIR", work.path().display().to_string()),
    ];
    env.extend(extra.iter().cloned());
    let arvis = spawn("arvis", &env, work.path());
    let base = format!("http://127.0.0.1:{gw}");
    wait_http(&format!("{base}/api/health")).await;
    Launcher {
        _arvis: arvis,
        _provider: provider,
        base,
        ws_port,
        provider_url: format!("http://127.0.0.1:{pport}/v1/chat/completions"),
        _work: work,
    }
}

/// Creates `n` agents answering through the loopback provider.
async fn seed_chat_agents(base: &str, n: usize) -> Vec<i64> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let r = client
            .post(format!("{base}/api/agents"))
            .header("x-api-key", KEY)
            .json(&json!({"slug": format!("chat-{i}"), "name": format!("Chat {i}"), "model": "openai/gpt-4o-mini", "systemPrompt": "Answer briefly."}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "creating agents: {}", r.status());
        ids.push(r.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    ids
}

/// One client per agent posting chats back to back; completed replies per second.
async fn chat_load(base: &str, agents: &[i64], secs: f64) -> (f64, u64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(agents.len()).tcp_nodelay(true).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for id in agents {
        let (client, url) = (client.clone(), format!("{base}/api/agents/{id}/chat"));
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                match client.post(&url).header("x-api-key", KEY).json(&json!({"message": "hi"})).send().await {
                    Ok(r) if r.status().is_success() => ok += 1,
                    _ => errors += 1,
                }
            }
            (ok, errors)
        }));
    }
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        let (o, e) = t.await.unwrap();
        ok += o;
        errors += e;
    }
    (ok as f64 / secs, errors)
}

/// Every scenario, in the order a full run takes them.
const SCENARIOS: [&str; 10] = [
    "api-read",
    "queue-raw",
    "chat-throughput",
    "chat-overhead",
    "ws-chat",
    "ws-fanout",
    "cron-burst",
    "telegram-inbound",
    "v1-stream",
    "idle-rss",
];

/// The usage text: the flags, and every scenario from [`SCENARIOS`].
fn usage() -> String {
    format!(
        "usage: loadgen [--secs N] [--only a,b] [--ws-clients N] [--workflows N]
  --secs N        seconds per measured phase (default 6)
  --only a,b      run only these scenarios (default: all, about 2 minutes):
                  {}
  --ws-clients N  ws-fanout's WebSocket clients (default 10000)
  --workflows N   cron-burst's workflows (default 10000)
Build first: cargo build --release --workspace --bins",
        SCENARIOS.join(", ")
    )
}

#[tokio::main]
async fn main() {
    arvis_shared::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--baseline-server") {
        baseline_server(args[2].parse().unwrap(), &args[3]).await;
        return;
    }
    if args.get(1).map(String::as_str) == Some("--provider-server") {
        provider_server(args[2].parse().unwrap()).await;
        return;
    }
    // Checked before anything starts (`harness::check_args`).
    let flags = [("--secs", Takes::Seconds), ("--ws-clients", Takes::Count), ("--workflows", Takes::Count)];
    match check_args(&args[1..], &flags, &SCENARIOS) {
        Ok(()) => {}
        Err(refused) if refused.is_empty() => {
            println!("{}", usage());
            return;
        }
        Err(refused) => {
            eprintln!("loadgen: {refused}\n{}", usage());
            std::process::exit(2);
        }
    }
    let secs: f64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(6.0);
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    let wants = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
    let pg_admin = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let mut report = Report::default();
    let started = Instant::now();
    if wants("api-read") {
        api_read(&mut report, secs, &pg_admin).await;
    }
    if wants("queue-raw") {
        queue_raw(&mut report, secs, &pg_admin).await;
    }
    if wants("chat-throughput") {
        chat_throughput(&mut report, secs, &pg_admin).await;
    }
    if wants("chat-overhead") {
        chat_overhead(&mut report, secs).await;
    }
    if wants("ws-chat") {
        ws_chat(&mut report, secs).await;
    }
    if wants("ws-fanout") {
        let clients = args
            .iter()
            .position(|a| a == "--ws-clients")
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000);
        ws_fanout(&mut report, secs, clients).await;
    }
    if wants("cron-burst") {
        let n = args
            .iter()
            .position(|a| a == "--workflows")
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000);
        cron_burst(&mut report, n).await;
    }
    if wants("telegram-inbound") {
        telegram_inbound::telegram_inbound(&mut report, secs).await;
    }
    if wants("v1-stream") {
        v1_stream::v1_stream(&mut report, secs).await;
    }
    if wants("idle-rss") {
        idle_rss(&mut report).await;
    }
    report.table();
    println!("\ntotal time: {:.0} s", started.elapsed().as_secs_f64());
    // Exit here rather than by dropping the runtime: a run once kept spinning a
    // core after printing (leftover client tasks of ws-fanout), and skewed every
    // measurement taken after it. Each scenario has stopped its processes already.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}
