//! The in-process bus: NATS subject semantics (`*`, `>`, queue groups) over
//! bounded channels. A subscriber whose buffer is full misses the message —
//! the same at-most-once contract as core NATS, and the reason no signal is
//! ever the only copy of anything.

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
    subs: Mutex<Vec<Sub>>,
    next_id: AtomicU64,
    round_robin: AtomicUsize,
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
            subs.retain(|s| s.id != self.id);
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
        let sub =
            Sub { id, pattern: subject.split('.').map(str::to_string).collect(), group: group.map(str::to_string), tx };
        if let Ok(mut subs) = self.inner.subs.lock() {
            subs.push(sub);
        }
        LocalSubscription { rx, id, bus: self.inner.clone() }
    }

    pub fn publish(&self, subject: &str, payload: Bytes) {
        let Ok(subs) = self.inner.subs.lock() else { return };
        let msg = Message { subject: subject.to_string(), payload };
        let tokens: Vec<&str> = subject.split('.').collect();
        let mut groups: Vec<(&str, Vec<&Sub>)> = Vec::new();
        for s in subs.iter().filter(|s| matches_tokens(&s.pattern, &tokens)) {
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
}
