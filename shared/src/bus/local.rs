//! The in-process bus: NATS subject semantics (`*`, `>`, queue groups) over
//! bounded channels. A subscriber whose buffer is full misses the message —
//! the same at-most-once contract as core NATS, and the reason no signal is
//! ever the only copy of anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::Message;

/// Per-subscriber buffer. Signals are small; 4096 covers any realistic burst
/// between two polls of a consumer, and bounds memory if one stalls.
const BUFFER: usize = 4096;

#[derive(Clone, Debug, Default)]
pub struct LocalBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    subs: Mutex<Subs>,
    next_id: AtomicU64,
    round_robin: AtomicUsize,
}

/// Subscriptions to a plain subject are found by that subject (one lookup
/// per publish: a REST chat holds one per waiting request, so there are as
/// many as chats in flight); only wildcard patterns are matched one by one.
#[derive(Debug, Default)]
struct Subs {
    exact: HashMap<String, Vec<Sub>>,
    wildcard: Vec<Sub>,
}

#[derive(Debug)]
struct Sub {
    id: u64,
    pattern: Vec<String>,
    group: Option<String>,
    tx: mpsc::Sender<Message>,
}

pub struct LocalSubscription {
    rx: mpsc::Receiver<Message>,
    id: u64,
    /// The plain subject it was filed under; `None` for a wildcard pattern.
    exact: Option<String>,
    bus: Arc<Inner>,
}

impl LocalSubscription {
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        if let Ok(mut subs) = self.bus.subs.lock() {
            match &self.exact {
                Some(subject) => {
                    if let Some(list) = subs.exact.get_mut(subject) {
                        list.retain(|s| s.id != self.id);
                        if list.is_empty() {
                            subs.exact.remove(subject);
                        }
                    }
                }
                None => subs.wildcard.retain(|s| s.id != self.id),
            }
        }
    }
}

/// NATS matching: tokens split on `.`, `*` matches one token, a final `>` one or more.
#[cfg(test)]
fn matches(pattern: &[String], subject: &str) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    matches_tokens(pattern, &tokens)
}

/// [`matches`] with the subject already split (a publish splits it once for all subscribers).
fn matches_tokens(pattern: &[String], tokens: &[&str]) -> bool {
    for (i, p) in pattern.iter().enumerate() {
        if p == ">" {
            return tokens.len() > i;
        }
        match tokens.get(i) {
            Some(t) if p == "*" || p == t => {}
            _ => return false,
        }
    }
    pattern.len() == tokens.len()
}

impl LocalBus {
    pub fn subscribe(&self, subject: &str, group: Option<&str>) -> LocalSubscription {
        let (tx, rx) = mpsc::channel(BUFFER);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let pattern: Vec<String> = subject.split('.').map(str::to_string).collect();
        let exact = (!pattern.iter().any(|t| t == "*" || t == ">")).then(|| subject.to_string());
        let sub = Sub { id, pattern, group: group.map(str::to_string), tx };
        if let Ok(mut subs) = self.inner.subs.lock() {
            match &exact {
                Some(subject) => subs.exact.entry(subject.clone()).or_default().push(sub),
                None => subs.wildcard.push(sub),
            }
        }
        LocalSubscription { rx, id, exact, bus: self.inner.clone() }
    }

    pub fn publish(&self, subject: &str, payload: Bytes) {
        let Ok(subs) = self.inner.subs.lock() else { return };
        let msg = Message { subject: subject.to_string(), payload };
        let tokens: Vec<&str> = subject.split('.').collect();
        let mut groups: Vec<(&str, Vec<&Sub>)> = Vec::new();
        let exact = subs.exact.get(subject).into_iter().flatten();
        let wildcard = subs.wildcard.iter().filter(|s| matches_tokens(&s.pattern, &tokens));
        for s in exact.chain(wildcard) {
            match &s.group {
                None => {
                    let _ = s.tx.try_send(msg.clone());
                }
                Some(g) => match groups.iter_mut().find(|(name, _)| name == g) {
                    Some((_, members)) => members.push(s),
                    None => groups.push((g.as_str(), vec![s])),
                },
            }
        }
        for (_, members) in groups {
            let start = self.inner.round_robin.fetch_add(1, Ordering::Relaxed);
            // Try members in turn so one full buffer does not lose the message.
            for k in 0..members.len() {
                if members[(start + k) % members.len()].tx.try_send(msg.clone()).is_ok() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    #[test]
    fn wildcards_follow_nats_rules() {
        assert!(matches(&pat("a.b"), "a.b"));
        assert!(!matches(&pat("a.b"), "a.b.c"));
        assert!(matches(&pat("a.*.c"), "a.x.c"));
        assert!(!matches(&pat("a.*"), "a"));
        assert!(matches(&pat("a.>"), "a.b.c"));
        assert!(!matches(&pat("a.>"), "a"));
    }

    #[tokio::test]
    async fn plain_and_wildcard_subscribers_both_receive_and_drop_cleanly() {
        let bus = LocalBus::default();
        let mut plain = bus.subscribe("reply.web.c1", None);
        let mut other = bus.subscribe("reply.web.c2", None);
        let mut wild = bus.subscribe("reply.web.*", None);
        let mut g1 = bus.subscribe("reply.web.c1", Some("workers"));
        let mut g2 = bus.subscribe("reply.>", Some("workers"));
        bus.publish("reply.web.c1", Bytes::from_static(b"x"));
        assert_eq!(plain.rx.try_recv().map(|m| m.subject).ok().as_deref(), Some("reply.web.c1"));
        assert!(wild.rx.try_recv().is_ok());
        assert!(other.rx.try_recv().is_err(), "another subject's subscriber gets nothing");
        // A queue group gets one copy, whichever member (plain or wildcard) it goes to.
        assert_eq!(usize::from(g1.rx.try_recv().is_ok()) + usize::from(g2.rx.try_recv().is_ok()), 1);
        drop(plain);
        drop(g1);
        {
            let subs = bus.inner.subs.lock().unwrap();
            assert!(!subs.exact.contains_key("reply.web.c1"), "the last plain subscriber's entry is gone");
            assert_eq!((subs.exact.len(), subs.wildcard.len()), (1, 2));
        }
        bus.publish("reply.web.c1", Bytes::from_static(b"y"));
        assert!(wild.rx.try_recv().is_ok());
        assert!(g2.rx.try_recv().is_ok(), "the remaining group member gets it");
    }
}
