//! How a run fails: [`JobError`] and the retry schedule.
//!
//! Messages follow one convention, owned by [`failure`]: a user-readable
//! summary, optionally followed by the technical cause. The whole text goes to
//! the job's `error` column (the dashboard shows it); only the summary is sent
//! to the user ([`JobError::user_message`]).

use arvis_shared::domain::job::failure;
use rand::Rng as _;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// Will not succeed on a retry: fail the job at once.
    #[error("{0}")]
    Permanent(String),
    /// May succeed later: retry at `retry_at` (ms), or after the backoff when `None`.
    #[error("{msg}")]
    Retryable { msg: String, retry_at: Option<i64> },
    /// Nothing was attempted (every account rests): back to the queue until
    /// `retry_at` without using up an attempt.
    #[error("{msg}")]
    Deferred { msg: String, retry_at: i64 },
}

impl JobError {
    pub fn permanent(summary: &str, detail: impl std::fmt::Display) -> JobError {
        JobError::Permanent(failure::compose(summary, detail))
    }
    pub fn retryable(summary: &str, detail: impl std::fmt::Display) -> JobError {
        JobError::Retryable { msg: failure::compose(summary, detail), retry_at: None }
    }
    pub fn message(&self) -> &str {
        match self {
            JobError::Permanent(m) => m,
            JobError::Retryable { msg, .. } | JobError::Deferred { msg, .. } => msg,
        }
    }
    /// The summary without technical detail, for the person waiting for the reply.
    pub fn user_message(&self) -> &str {
        failure::split(self.message()).0
    }

    /// The technical cause, when the message carries one.
    pub fn cause(&self) -> Option<&str> {
        failure::split(self.message()).1
    }
}

/// When to retry after `attempts` failed attempts: `base · 2^(attempts-1)`,
/// capped at 5 minutes, with ±25 % jitter.
pub fn retry_at(now_ms: i64, base_ms: i64, attempts: i64) -> i64 {
    const CAP_MS: i64 = 5 * 60 * 1000;
    let exp = (attempts - 1).clamp(0, 20) as u32;
    let delay = base_ms.saturating_mul(1i64 << exp).min(CAP_MS);
    let jitter = rand::rng().random_range(0.75..=1.25);
    now_ms + ((delay as f64) * jitter) as i64
}

/// How long a rate-limited account rests without a `Retry-After`: 1, 5, 25,
/// then 60 minutes by its count of strikes, with ±10 % jitter.
pub fn rate_limit_backoff_ms(retry_count: i64) -> i64 {
    const STEPS_MIN: [i64; 4] = [1, 5, 25, 60];
    let minutes = STEPS_MIN[retry_count.clamp(0, 3) as usize];
    let jitter = rand::rng().random_range(0.9..=1.1);
    ((minutes * 60_000) as f64 * jitter) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let r1 = retry_at(0, 2000, 1);
        assert!((1500..=2500).contains(&r1), "{r1}");
        let r3 = retry_at(0, 2000, 3);
        assert!((6000..=10000).contains(&r3), "{r3}");
        let big = retry_at(0, 2000, 30);
        assert!(big <= 375_000, "{big}");
        assert!((54_000..=66_000).contains(&rate_limit_backoff_ms(0)));
        assert!((3_240_000..=3_960_000).contains(&rate_limit_backoff_ms(9)));
    }

    #[test]
    fn the_user_sees_the_summary_only() {
        let e = JobError::permanent("the model provider refused the request", "HTTP 401: bad key");
        assert_eq!(e.user_message(), "the model provider refused the request");
        assert!(e.message().contains("HTTP 401"));
    }
}
