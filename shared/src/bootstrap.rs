//! What a process does once at start, after migrations: make sure a conductor
//! exists and is recorded in the settings, record the accounts found in the
//! environment, and find (or create) the JWT signing secret.
//!
//! Every step is idempotent and safe when several processes start at once.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use secrecy::SecretString;

use crate::config::Config;
use crate::db::Store;
use crate::domain::agent::{Agent, AgentFields, DEFAULT_MODEL};
use crate::domain::settings::{KEY_CONDUCTOR, KEY_DEFAULT_MODEL};

/// The conductor's built-in instructions (the original shipped ~20 KB; this is
/// the part that matters to the platform: route, delegate, act through tags).
pub const CONDUCTOR_PROMPT: &str = "You are the Conductor of this Arvis installation. \
You answer the owner directly when you can, and hand specialised work to other agents with \
[DELEGATE:slug]task[/DELEGATE]. You can create and update agents and scheduled tasks with the \
[CREATE_AGENT], [UPDATE_AGENT:slug] and [CREATE_CRON] action blocks. Be brief and concrete.";

/// Migrated database → conductor and accounts in place.
pub async fn prepare(store: &Store, config: &Config) -> anyhow::Result<Agent> {
    let default_model = store.init_setting(KEY_DEFAULT_MODEL, DEFAULT_MODEL).await.context("initialising settings")?;
    let conductor = ensure_conductor(store, &default_model).await.context("creating the conductor agent")?;
    for account in &config.accounts {
        store.upsert_account(account).await.with_context(|| format!("recording account {}", account.name))?;
    }
    store.upsert_builtin_skills().await.context("installing the builtin skills")?;
    Ok(conductor)
}

/// The agent named by `conductorAgentId` when it exists; otherwise the first
/// agent with role `conductor`, otherwise a new `conductor` agent. The result
/// is recorded in the settings.
pub async fn ensure_conductor(store: &Store, default_model: &str) -> anyhow::Result<Agent> {
    if let Some(id) = store.settings().await?.conductor_agent_id
        && let Some(agent) = store.get_agent(id).await?
    {
        return Ok(agent);
    }
    let existing = store.list_agents().await?.into_iter().find(|a| a.role == "conductor");
    let agent = match existing {
        Some(a) => a,
        None => {
            store
                .ensure_agent(&AgentFields {
                    slug: "conductor".into(),
                    name: "Conductor".into(),
                    role: "conductor".into(),
                    description: "Routes requests, delegates to specialists and manages the platform.".into(),
                    model: default_model.to_string(),
                    system_prompt: CONDUCTOR_PROMPT.into(),
                    allowed_tools: vec![],
                    temperature: 0.7,
                    max_tokens: 4096,
                    is_active: true,
                    created_by: Some("system".into()),
                    reasoning_effort: None,
                    show_thinking: false,
                    daily_budget_usd: None,
                    monthly_budget_usd: None,
                })
                .await?
        }
    };
    // Several processes may race here; they all pick the same agent (the slug is unique).
    store.init_setting(KEY_CONDUCTOR, &agent.id.to_string()).await?;
    Ok(agent)
}

/// `JWT_SECRET` when set; otherwise the secret kept in `<data dir>/.jwt-secret`
/// (created with 32 random bytes, mode 0600, on first use).
pub fn jwt_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(s) = &config.jwt_secret {
        return Ok(s.clone());
    }
    load_or_create_secret(&config.data_dir().join(".jwt-secret"))
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(SecretString::from(s.trim().to_string())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let secret = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            Ok(SecretString::from(secret))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(SecretString::from(s.trim().to_string()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn the_generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(".jwt-secret");
        let first = load_or_create_secret(&path).unwrap();
        let again = load_or_create_secret(&path).unwrap();
        assert_eq!(first.expose_secret(), again.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
