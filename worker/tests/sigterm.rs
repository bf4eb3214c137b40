//! `arvis-worker` stops on SIGTERM with exit code 0 within 10 s, whether the NATS
//! server is reachable or not (README, "Shutdown").

#[test]
fn sigterm_exits_0_within_10_s_with_the_broker_down_or_up() {
    arvis_testkit::process::assert_sigterm_exits_cleanly(env!("CARGO_BIN_EXE_arvis-worker"), "worker started");
}
