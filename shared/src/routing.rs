//! The routing chain: which agent answers an incoming message (behaviour
//! reference §3), shared by every entry point (WebSocket chat, bots, the REST
//! chat endpoint).
//!
//! The first match wins:
//! 1. an explicit agent (the client picked one): it must exist and be active;
//! 2. the agent bound to (platform, channel) in `channel_bindings`, if active;
//! 3. an `@<name>` or `@<slug>` mention of an active agent (case-insensitive,
//!    whole word, in id order);
//! 4. a `dashboard-agent-<id>` channel: that agent (it must exist and be active);
//! 5. a direct message (`is_dm`, a `web-…` or `dm-…` channel): the conductor;
//! 6. anything else: the conductor.
//!
//! Unlike the original, nothing is dropped silently: when no agent can answer
//! (an unknown or paused explicit agent, a read-only binding, no conductor), the
//! caller gets a [`RouteError`] whose text it sends back to the user.
//!
//! Permissions: a binding other than `full` (`read_only`, `notify_only`) means
//! the bound agent does not take messages from that channel — a [`RouteError`].
//! Owner handling (priority 1) is not implemented: every sender is a user.

use regex::Regex;

use crate::db::{DbError, Store};
use crate::domain::job::priority;

/// A message arriving from outside, as the routing chain sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub platform: &'a str,
    pub channel_id: &'a str,
    pub user_id: Option<&'a str>,
    pub content: &'a str,
    /// The agent the client asked for (the dashboard's agent picker).
    pub agent_id: Option<i64>,
    /// A private conversation (web chat, a bot DM).
    pub is_dm: bool,
}

/// An agent's routing facts.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRef {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub role: String,
    pub is_active: bool,
}

/// A `channel_bindings` row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelBinding {
    pub agent_id: i64,
    /// `full`, `read_only` or `notify_only`.
    pub permissions: String,
}

/// Why an agent was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteReason {
    Explicit,
    Binding,
    Mention,
    DashboardChannel,
    DirectMessage,
    Fallback,
}

/// The routing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub agent_id: i64,
    /// Queue priority: 3 for the conductor, 5 for everyone else.
    pub priority: i64,
    pub is_conductor: bool,
    pub reason: RouteReason,
}

/// No agent can take the message. The text is meant for the user.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("agent {0} does not exist")]
    UnknownAgent(i64),
    #[error("agent {name} is paused and does not take messages")]
    InactiveAgent { id: i64, name: String },
    #[error("this channel is {permissions} for agent {name}: it does not take messages here")]
    NotPermitted { name: String, permissions: String },
    #[error("no agent can answer: there is no active conductor and nothing else matched")]
    NoConductor,
    #[error("routing failed: the database is unavailable")]
    Db(#[from] DbError),
}

/// Decides which agent answers `msg`.
pub async fn route(store: &Store, msg: &Incoming<'_>) -> Result<Route, RouteError> {
    let conductor = conductor(store).await?;
    let conductor_id = conductor.as_ref().map(|c| c.id);
    let is_conductor = |id: i64| conductor_id == Some(id);
    let chosen = |agent: &AgentRef, reason| {
        let is_conductor = is_conductor(agent.id);
        Route {
            agent_id: agent.id,
            priority: if is_conductor { priority::CONDUCTOR } else { priority::USER },
            is_conductor,
            reason,
        }
    };

    // 1. The client named an agent.
    if let Some(id) = msg.agent_id {
        let agent = usable(store, id).await?;
        return Ok(chosen(&agent, RouteReason::Explicit));
    }
    // 2. A channel binding to an active agent.
    if let Some(binding) = store.channel_binding(msg.platform, msg.channel_id).await?
        && let Some(agent) = store.agent_ref(binding.agent_id).await?
        && agent.is_active
    {
        if binding.permissions != "full" && !is_conductor(agent.id) {
            return Err(RouteError::NotPermitted { name: agent.name, permissions: binding.permissions });
        }
        return Ok(chosen(&agent, RouteReason::Binding));
    }
    // 3. An @mention.
    if msg.content.contains('@') {
        let agents = store.active_agent_refs().await?;
        if let Some(agent) = find_mention(msg.content, &agents) {
            return Ok(chosen(agent, RouteReason::Mention));
        }
    }
    // 4. The dashboard's per-agent channel.
    if let Some(id) = dashboard_agent_id(msg.channel_id) {
        let agent = usable(store, id).await?;
        return Ok(chosen(&agent, RouteReason::DashboardChannel));
    }
    // 5–6. The conductor.
    let reason = if is_direct(msg) { RouteReason::DirectMessage } else { RouteReason::Fallback };
    conductor.as_ref().map(|c| chosen(c, reason)).ok_or(RouteError::NoConductor)
}

/// An agent that exists and is active, or the error saying which it is not.
async fn usable(store: &Store, id: i64) -> Result<AgentRef, RouteError> {
    match store.agent_ref(id).await? {
        None => Err(RouteError::UnknownAgent(id)),
        Some(a) if !a.is_active => Err(RouteError::InactiveAgent { id: a.id, name: a.name }),
        Some(a) => Ok(a),
    }
}

/// The active conductor: the `conductorAgentId` setting, else the first active
/// agent with role `conductor`.
pub async fn conductor(store: &Store) -> Result<Option<AgentRef>, DbError> {
    if let Some(id) = store.settings().await?.conductor_agent_id
        && let Some(agent) = store.agent_ref(id).await?
        && agent.is_active
    {
        return Ok(Some(agent));
    }
    Ok(store.active_agent_refs().await?.into_iter().find(|a| a.role == "conductor"))
}

/// A private conversation: flagged as one, or a `web-…`/`dm-…` channel.
pub fn is_direct(msg: &Incoming<'_>) -> bool {
    msg.is_dm || msg.channel_id.starts_with("web-") || msg.channel_id.starts_with("dm-")
}

/// `dashboard-agent-<id>` → `<id>`.
pub fn dashboard_agent_id(channel_id: &str) -> Option<i64> {
    let id = channel_id.strip_prefix("dashboard-agent-")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// The first active agent (in the given order) whose name or slug is
/// mentioned as `@<name>`: case-insensitive, not inside a longer word or
/// e-mail address, special characters taken literally.
pub fn find_mention<'a>(content: &str, agents: &'a [AgentRef]) -> Option<&'a AgentRef> {
    agents.iter().filter(|a| a.is_active).find(|a| {
        [a.name.as_str(), a.slug.as_str()].into_iter().filter(|n| !n.trim().is_empty()).any(|n| mentions(content, n))
    })
}

fn mentions(content: &str, name: &str) -> bool {
    // Before `@`: start or a character that cannot be part of a word or an
    // address; after the name: end or a character that cannot continue a word
    // or a slug (`@support-bot` does not mention `support`).
    let pattern = format!(r"(?i)(?:^|[^\w@.])@{}(?:$|[^\w-])", regex::escape(name.trim()));
    Regex::new(&pattern).is_ok_and(|re| re.is_match(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: i64, slug: &str, name: &str, active: bool) -> AgentRef {
        AgentRef { id, slug: slug.into(), name: name.into(), role: "specialist".into(), is_active: active }
    }

    #[test]
    fn mentions_match_whole_names_case_insensitively() {
        let agents = [agent(1, "support", "Support Bot", true), agent(2, "c++", "C++ Guru", true)];
        assert_eq!(find_mention("hey @support-bot-x?", &agents).map(|a| a.id), None);
        assert_eq!(find_mention("hey @SUPPORT, help", &agents).map(|a| a.id), Some(1));
        assert_eq!(find_mention("@support bot please", &agents).map(|a| a.id), Some(1));
        assert_eq!(find_mention("ask @c++ guru", &agents).map(|a| a.id), Some(2));
        assert_eq!(find_mention("ask @c++!", &agents).map(|a| a.id), Some(2));
        assert_eq!(find_mention("mail me at bob@support", &agents).map(|a| a.id), None);
        assert_eq!(find_mention("@supporter", &agents).map(|a| a.id), None);
        assert_eq!(find_mention("no mention", &agents).map(|a| a.id), None);
    }

    #[test]
    fn regex_characters_in_names_are_literal() {
        let agents = [agent(1, "a-b", "A.B", true)];
        assert!(find_mention("@AxB", &agents).is_none());
        assert_eq!(find_mention("@a.b hi", &agents).map(|a| a.id), Some(1));
    }

    #[test]
    fn paused_agents_are_not_mentioned() {
        let agents = [agent(1, "support", "Support", false), agent(2, "sales", "Sales", true)];
        assert!(find_mention("@support", &agents).is_none());
        assert_eq!(find_mention("@support @sales", &agents).map(|a| a.id), Some(2));
    }

    #[test]
    fn dashboard_channels_name_their_agent() {
        assert_eq!(dashboard_agent_id("dashboard-agent-42"), Some(42));
        assert_eq!(dashboard_agent_id("dashboard-agent-"), None);
        assert_eq!(dashboard_agent_id("dashboard-agent-4x"), None);
        assert_eq!(dashboard_agent_id("dashboard-agent--1"), None);
        assert_eq!(dashboard_agent_id("web-1"), None);
    }

    #[test]
    fn direct_messages_are_flagged_or_prefixed() {
        let msg = |channel, is_dm| Incoming {
            platform: "web",
            channel_id: channel,
            user_id: None,
            content: "x",
            agent_id: None,
            is_dm,
        };
        assert!(is_direct(&msg("web-abc", false)));
        assert!(is_direct(&msg("dm-1", false)));
        assert!(is_direct(&msg("general", true)));
        assert!(!is_direct(&msg("general", false)));
    }
}
