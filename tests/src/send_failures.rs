//! What a platform fake answers to a send instead of accepting it, shared by
//! the fakes whose sends are plain REST calls (`fake_whatsapp`, `fake_twilio`):
//! the kinds of failure, a script of the next ones, and the cut connection.
//! Each fake renders a failure in its own platform's error format.

use std::collections::VecDeque;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An answer the fake gives to a send instead of accepting it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// HTTP 429 with `Retry-After` in seconds (and the platform's rate-limit code).
    RateLimited { retry_after_secs: u64 },
    /// HTTP 500 (with the platform's internal-error code).
    ServerError,
    /// The connection drops after the status line: the message was not
    /// accepted, and the client sees a broken answer.
    Disconnect,
}

/// The failures the next sends get, in order, and those already answered.
#[derive(Debug, Default)]
pub struct Script {
    next: VecDeque<Failure>,
    answered: Vec<(Failure, Instant)>,
}

impl Script {
    /// Queues these for the next sends.
    pub fn push(&mut self, failures: &[Failure]) {
        self.next.extend(failures.iter().copied());
    }

    /// The failure this send gets, if any (recorded with the time).
    pub fn take(&mut self) -> Option<Failure> {
        let f = self.next.pop_front()?;
        self.answered.push((f, Instant::now()));
        Some(f)
    }

    /// Every failure answered so far, with when.
    pub fn answered(&self) -> Vec<(Failure, Instant)> {
        self.answered.clone()
    }
}

/// A 200 whose body breaks off: the connection is cut mid-answer.
pub fn cut_off() -> Response {
    let stream =
        futures::stream::once(async { Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("connection cut")) });
    (StatusCode::OK, axum::body::Body::from_stream(stream)).into_response()
}
