//! The command lines of `loadgen` and `faults`: `--help` answers without
//! starting anything, and a mistyped flag or scenario is refused (exit 2)
//! instead of running the whole benchmark, or nothing, without a word.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(bin: &str, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(bin).args(args).output().unwrap();
    (out, started.elapsed())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");
const FAULTS: &str = env!("CARGO_BIN_EXE_faults");

const LOADGEN_SCENARIOS: [&str; 10] = [
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

#[test]
fn loadgen_help_lists_every_scenario_and_runs_none() {
    for flag in ["--help", "-h"] {
        let (out, took) = run(LOADGEN, &[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", text(&out.stderr));
        let help = text(&out.stdout);
        assert!(help.starts_with("usage: loadgen"), "{help}");
        for name in LOADGEN_SCENARIOS {
            assert!(help.contains(name), "{name} missing from:\n{help}");
        }
        // A scenario run prints JSON result lines and takes seconds.
        assert!(!help.contains("\"metric\""), "{help}");
        assert!(took < Duration::from_secs(5), "--help took {took:?}");
    }
}

#[test]
fn loadgen_refuses_unknown_scenarios_and_flags() {
    for (args, says) in [
        (&["--only", "api-read,bogus"][..], "unknown scenario \"bogus\""),
        (&["--onyl", "api-read"][..], "unknown argument \"--onyl\""),
        (&["--secs", "-3"][..], "--secs takes a positive number"),
        (&["--secs"][..], "--secs needs a value"),
        (&["--ws-clients", "many"][..], "--ws-clients takes a positive number"),
    ] {
        let (out, _) = run(LOADGEN, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(text(&out.stdout).is_empty(), "{args:?} ran something: {}", text(&out.stdout));
    }
}

#[test]
fn faults_help_and_refusals() {
    let (out, _) = run(FAULTS, &["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for name in ["kill-worker", "effects-kill", "postgres-restart", "bridge-kill"] {
        assert!(help.contains(name), "{name} missing from:\n{help}");
    }
    for (args, says) in [
        (&["--only", "kill-wroker"][..], "unknown scenario \"kill-wroker\""),
        (&["--quik"][..], "unknown argument \"--quik\""),
        (&["--only"][..], "--only needs a list"),
    ] {
        let (out, _) = run(FAULTS, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
