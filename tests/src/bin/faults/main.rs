//! `faults`: the fault-injection suite (RELIABILITY.md). It runs the split
//! topology as real processes — its own `nats-server`, a fresh Postgres
//! database, `arvis-gateway`, several `arvis-worker`s and `arvis-scheduler`s and
//! an `arvis-ws-bridge`, spawned from the directory of this binary — against an
//! in-process mock OpenAI provider, injects one kind of fault per scenario under
//! a steady load of chats, waits (bounded) until every job is final, and counts:
//! requests sent (acknowledged by the store), jobs completed, replies stored,
//! lost (acknowledged but missing, never final, or completed without its
//! reply), duplicated (more than one assistant message per job or per user
//! message) and jobs left non-final. Every reply echoes its request's unique
//! text, so a reply stored under the wrong job counts as lost too.
//!
//! At the end every process's log is searched for every configured secret.
//!
//! Run: `cargo build --workspace --bins && target/debug/faults [--quick] [--only a,b]`
//!
//! Layout: this file (secrets, the command line, the report), [`cluster`] (the
//! split topology as processes, and the steady chat load), [`outcome`] (what a
//! scenario counts, and counting it in the database), one file per scenario in
//! [`scenarios`]. Processes, ports, scratch and private Postgres and the
//! `nats-server` come from the test kit (`arvis_testkit::harness`, `NatsServer`),
//! as for `loadgen` and the process-level tests.
//! Scenarios: kill-worker, effects-kill, sigterm-all, nats-outage,
//! provider-chaos, scheduler-kill, postgres-restart, bridge-kill. Exits non-zero when any scenario lost,
//! duplicated or left a job non-final.

#![expect(clippy::unwrap_used, clippy::panic)] // a test program fails loudly

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arvis_shared::bus::Bus;
use arvis_shared::bus::events::JobReady;
use arvis_shared::db::Store;
use arvis_shared::db::queue::ChatRequest;
use arvis_testkit::NatsServer;
use arvis_testkit::fake_discord::FakeDiscord;
use arvis_testkit::fake_slack::FakeSlack;
use arvis_testkit::harness::{Output, PrivatePg, Proc, ScratchPg, Takes, check_args, free_port};
use arvis_testkit::{Chaos, FakeTelegram, MockLlm, MockReply};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

mod cluster;
mod outcome;
mod scenarios;

use cluster::{Cluster, Load, expected_reply};
use outcome::{Outcome, account};
use scenarios::*;

const API_KEY: &str = "faults-dashboard-key-5f1c0e9a7b";
const OPENAI_KEY: &str = "sk-faults-openai-key-93ab41d2c7";
const JWT_SECRET: &str = "faults-jwt-secret-0d7e2b9c44aa81f3";
const WEB_KEY: &str = "faults-web-key-6c2d90e1b7";
/// The Telegram bot's token in bridge-kill (`TELEGRAM_BOT_TOKEN_1`).
const TG_TOKEN: &str = "424242:faults-telegram-token-8e1f3a";
/// The Discord bot's token in bridge-kill (`DISCORD_BOT_TOKEN_1`).
const DC_TOKEN: &str = "faults-discord-token-MTA0.c9d2e7";
/// The Slack bot's tokens in bridge-kill (`SLACK_BOT_TOKEN_1`, `SLACK_APP_TOKEN_1`).
const SL_BOT_TOKEN: &str = "xoxb-faults-slack-bot-5a7c";
const SL_APP_TOKEN: &str = "xapp-faults-slack-app-91d0";
const SECRETS: [&str; 8] = [API_KEY, OPENAI_KEY, JWT_SECRET, WEB_KEY, TG_TOKEN, DC_TOKEN, SL_BOT_TOKEN, SL_APP_TOKEN];

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

struct Ctx {
    logs: PathBuf,
    pg_admin: String,
    quick: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    arvis_shared::install_crypto_provider();
    sqlx::any::install_default_drivers();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    let all = [
        "kill-worker",
        "effects-kill",
        "sigterm-all",
        "nats-outage",
        "provider-chaos",
        "scheduler-kill",
        "postgres-restart",
        "bridge-kill",
    ];
    let quick_set = ["kill-worker", "effects-kill", "sigterm-all", "nats-outage", "bridge-kill"];
    // Checked before anything starts (`harness::check_args`): a mistyped
    // scenario would otherwise run nothing and pass.
    if let Err(refused) = check_args(&args[1..], &[("--quick", Takes::Nothing)], &all) {
        let usage = format!(
            "usage: faults [--quick] [--only a,b]\n  --quick     only {} (about 1½ minutes)\n  --only a,b  only these of: {}\nBuild first: cargo build --workspace --bins",
            quick_set.join(", "),
            all.join(", ")
        );
        if refused.is_empty() {
            println!("{usage}");
            return;
        }
        eprintln!("faults: {refused}\n{usage}");
        std::process::exit(2);
    }
    let wants = |name: &str| match &only {
        Some(o) => o.iter().any(|x| x == name),
        None => !quick || quick_set.contains(&name),
    };
    let pg_admin = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let keep = tempfile::Builder::new().prefix("arvis-faults-").tempdir().unwrap();
    let ctx = Ctx { logs: keep.path().join("logs"), pg_admin, quick };
    let started = Instant::now();
    let mut results: Vec<Outcome> = Vec::new();
    for name in all {
        if !wants(name) {
            continue;
        }
        eprintln!("== {name} ({:.0} s elapsed)", started.elapsed().as_secs_f64());
        let o = match name {
            "kill-worker" => kill_worker(&ctx).await,
            "effects-kill" => effects_kill(&ctx).await,
            "bridge-kill" => bridge_kill(&ctx).await,
            "sigterm-all" => sigterm_all(&ctx).await,
            "nats-outage" => nats_outage(&ctx).await,
            "provider-chaos" => provider_chaos(&ctx).await,
            "scheduler-kill" => scheduler_kill(&ctx).await,
            "postgres-restart" => postgres_restart(&ctx).await,
            other => panic!("unknown scenario {other}"),
        };
        o.print_json();
        results.push(o);
    }
    let s = secrets_in_logs(&ctx.logs);
    s.print_json();
    results.push(s);

    println!(
        "\n| scenario | load | faults injected | sent | completed | failed | stored | lost | duplicated | non-final | outcome |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for o in &results {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.scenario,
            o.load,
            o.faults,
            o.sent,
            o.completed,
            o.failed,
            o.stored,
            o.lost,
            o.duplicated,
            o.non_final,
            if o.skipped {
                "skipped"
            } else if o.ok {
                "pass"
            } else {
                "FAIL"
            }
        );
    }
    println!();
    for o in &results {
        for n in &o.notes {
            println!("- {}: {n}", o.scenario);
        }
    }
    println!("\ntotal time: {:.0} s", started.elapsed().as_secs_f64());
    if results.iter().any(|o| !o.ok) {
        eprintln!("faults: FAILED (logs kept in {})", keep.keep().display());
        std::process::exit(1);
    }
}
