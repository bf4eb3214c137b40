//! Read-through caches of lists that are read all the time and written
//! rarely: the agent list, the enabled skills every prompt matches against,
//! and the settings (the conductor) that every routed message consults.
//!
//! Every chat reads its agent, every conductor prompt lists the agents, and
//! `GET /api/agents` is the API's hottest read — while agents change a few
//! times a day. Through sqlx each read is a thread hand-off (SQLite) or a
//! socket round trip (Postgres) plus a row conversion; the profile of the
//! api-read benchmark was dominated by exactly that. So the store keeps the
//! list in memory:
//!
//! - filled on the first read, shared as `Arc<Vec<T>>` (no copy per read);
//! - invalidated by every write of this store to the table ([`Store`] bumps
//!   the generation after the statement), and by `ConfigChanged` notices for
//!   the entity from other processes ([`crate::Deps::connect`] wires that);
//! - a fill that raced an invalidation is never served: it is stamped with
//!   the generation it started under, and only a stamp equal to the current
//!   generation counts;
//! - at most [`TTL`] old in any case, so a lost notice (the bus is
//!   at-most-once) or a write from outside the platform shows up within it.
//!
//! [`Store`]: super::Store

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::domain::agent::Agent;

use super::memory_ctx::MatchableSkill;

/// The longest a cached list is served without a notice.
pub const TTL: Duration = Duration::from_secs(2);

struct Filled<T> {
    generation: u64,
    at: Instant,
    items: Arc<Vec<T>>,
}

/// See the module docs.
pub struct ListCache<T> {
    generation: AtomicU64,
    slot: RwLock<Option<Filled<T>>>,
}

/// The agent list.
pub type AgentCache = ListCache<Agent>;
/// The enabled skills, decoded for matching.
pub type SkillCache = ListCache<MatchableSkill>;
/// The settings (one element): every routed message asks who the conductor is.
pub type SettingsCache = ListCache<crate::domain::settings::Settings>;

impl<T> Default for ListCache<T> {
    fn default() -> Self {
        ListCache { generation: AtomicU64::new(0), slot: RwLock::new(None) }
    }
}

impl<T> ListCache<T> {
    /// The cached list, when it is current.
    pub(crate) fn get(&self) -> Option<Arc<Vec<T>>> {
        let generation = self.generation.load(Ordering::Acquire);
        let slot = self.slot.read().ok()?;
        let filled = slot.as_ref()?;
        (filled.generation == generation && filled.at.elapsed() < TTL).then(|| filled.items.clone())
    }

    /// The generation to stamp a fill with; read it before reading the database.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores a list read under `generation` (served only while that is current).
    pub(crate) fn fill(&self, generation: u64, items: Arc<Vec<T>>) {
        if let Ok(mut slot) = self.slot.write() {
            *slot = Some(Filled { generation, at: Instant::now(), items });
        }
    }

    /// Forgets the list: the next read goes to the database.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: i64) -> Agent {
        Agent {
            id,
            slug: format!("a{id}"),
            name: "A".into(),
            role: "specialist".into(),
            description: String::new(),
            model: "openai/gpt-4o-mini".into(),
            system_prompt: String::new(),
            allowed_tools: vec![],
            temperature: 0.7,
            max_tokens: 0,
            is_active: true,
            created_by: None,
            reasoning_effort: None,
            show_thinking: false,
            daily_budget_usd: None,
            monthly_budget_usd: None,
        }
    }

    #[test]
    fn a_fill_is_served_until_invalidated() {
        let cache = AgentCache::default();
        assert!(cache.get().is_none());
        let g = cache.generation();
        cache.fill(g, Arc::new(vec![agent(1)]));
        assert_eq!(cache.get().map(|a| a.len()), Some(1));
        cache.invalidate();
        assert!(cache.get().is_none());
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_served() {
        let cache = AgentCache::default();
        let g = cache.generation(); // a reader starts reading the database…
        cache.invalidate(); // …a write lands meanwhile…
        cache.fill(g, Arc::new(vec![agent(1)])); // …and the stale read arrives.
        assert!(cache.get().is_none());
        let g = cache.generation();
        cache.fill(g, Arc::new(vec![agent(1), agent(2)]));
        assert_eq!(cache.get().map(|a| a.len()), Some(2));
    }
}
