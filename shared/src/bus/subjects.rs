//! Every subject the platform uses, built in one place.
//!
//! Channel ids come from outside (Discord snowflakes, `web-<uuid>`, anything a
//! client sends) and may contain `.`, `*`, `>` or spaces, which mean something
//! to NATS; they are hex-encoded into a single token.

/// "Pending work exists": workers wake and claim from the database.
pub const JOBS_READY: &str = "arvis.jobs.ready";

/// Configuration changed (workflows, bots, skills…): schedulers and bridges re-read.
pub const CONFIG_CHANGED: &str = "arvis.config.changed";

/// Every reply event, whatever the channel (for subscribers that route themselves).
pub const REPLIES_ALL: &str = "arvis.reply.>";

/// Reply events (typing, deltas, final message) for one outside channel.
pub fn reply(platform: &str, channel_id: &str) -> String {
    format!("arvis.reply.{}.{}", token(platform), hex::encode(channel_id.as_bytes()))
}

/// Reply events for every channel of a platform.
pub fn replies_for_platform(platform: &str) -> String {
    format!("arvis.reply.{}.*", token(platform))
}

/// A platform name as one safe subject token.
fn token(platform: &str) -> String {
    let t: String = platform.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    if t.is_empty() { "_".into() } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_channel_ids_stay_one_token() {
        let s = reply("web", "a.b *>c");
        assert_eq!(s.split('.').count(), 4, "{s}");
        assert!(!s[12..].contains('*') && !s.contains('>'));
    }
}
