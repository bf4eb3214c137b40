//! The deployment files, checked structurally (no container engine runs here):
//! the compose file parses, runs our binaries from our image, scales workers,
//! and every variable it references is documented.

#![expect(clippy::unwrap_used, clippy::panic)] // a test fails by panicking

use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const BINARIES: [&str; 5] = ["arvis", "arvis-gateway", "arvis-worker", "arvis-scheduler", "arvis-ws-bridge"];

/// `${NAME}`, `${NAME:-default}`, `${NAME:?message}` → NAME.
fn referenced_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        out.insert(after[..end].to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn the_compose_file_runs_every_service_from_our_image() {
    let text = read("deploy/compose.yaml");
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("compose.yaml parses");
    doc.apply_merge().unwrap();
    let services = doc["services"].as_mapping().expect("services");
    let names: BTreeSet<_> = services.keys().map(|k| k.as_str().unwrap().to_string()).collect();
    for required in ["nats", "postgres", "gateway", "worker", "scheduler", "ws-bridge"] {
        assert!(names.contains(required), "missing service {required}");
    }
    for name in ["gateway", "worker", "scheduler", "ws-bridge"] {
        let svc = &doc["services"][name];
        let command = svc["command"][0].as_str().unwrap_or_else(|| panic!("{name} has no command"));
        assert!(BINARIES.contains(&command), "{name} runs unknown binary {command}");
        assert_eq!(svc["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"), "{name} builds our image");
        let env = svc["environment"].as_mapping().unwrap_or_else(|| panic!("{name} has no environment"));
        assert!(env.contains_key("NATS_URL") && env.contains_key("DATABASE_URL"), "{name} needs NATS and Postgres");
    }
    assert_eq!(doc["services"]["worker"]["deploy"]["replicas"].as_u64(), Some(2));
    assert!(doc["services"]["postgres"]["volumes"][0].as_str().unwrap().contains("postgres-data"));
    assert!(doc["services"]["nats"]["command"].as_sequence().unwrap().iter().any(|a| a.as_str() == Some("-js")));
    for name in ["gateway", "postgres"] {
        assert!(doc["services"][name]["healthcheck"]["test"].is_sequence(), "{name} has a health check");
    }
}

#[test]
fn every_variable_the_compose_file_uses_is_documented() {
    let example = read("deploy/.env.example");
    let documented: BTreeSet<String> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect();
    let used = referenced_vars(&read("deploy/compose.yaml"));
    let missing: Vec<_> = used.difference(&documented).collect();
    assert!(missing.is_empty(), "undocumented in deploy/.env.example: {missing:?}");
    // Secrets must not have defaults in compose.
    let compose = read("deploy/compose.yaml");
    for secret in ["POSTGRES_PASSWORD", "JWT_SECRET", "DASHBOARD_PASSWORD"] {
        assert!(compose.contains(&format!("${{{secret}:?")), "{secret} must be required, not defaulted");
        assert!(example.lines().any(|l| l.trim() == format!("{secret}=")), "{secret} has no example value");
    }
    // Every application variable the services read is in the README's table.
    let readme = read("README.md");
    for var in documented
        .iter()
        .filter(|v| !["ARVIS_IMAGE", "GATEWAY_PORT", "WS_BRIDGE_PORT", "POSTGRES_PASSWORD"].contains(&v.as_str()))
    {
        assert!(readme.contains(&format!("`{var}")), "{var} is not documented in README.md");
    }
}

#[test]
fn the_image_holds_all_five_binaries_runs_as_non_root_and_defaults_to_the_launcher() {
    let dockerfile = read("deploy/Dockerfile");
    for bin in BINARIES {
        assert!(
            dockerfile.contains(&format!("target/release/{bin} "))
                || dockerfile.contains(&format!("target/release/{bin}\n"))
                || dockerfile.contains(&format!("target/release/{bin} \\")),
            "{bin} not copied"
        );
    }
    assert!(dockerfile.contains("USER arvis"));
    assert!(dockerfile.contains("ca-certificates"));
    assert!(dockerfile.trim_end().ends_with("CMD [\"arvis\"]"));
    // Each binary named here is a real target of the workspace.
    let manifests =
        ["Cargo.toml", "gateway/Cargo.toml", "worker/Cargo.toml", "scheduler/Cargo.toml", "ws-bridge/Cargo.toml"]
            .map(read)
            .join("\n");
    for bin in BINARIES {
        assert!(manifests.contains(&format!("name = \"{bin}\"")), "{bin} is not a workspace binary");
    }
}
