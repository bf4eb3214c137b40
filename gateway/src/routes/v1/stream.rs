//! The streamed answer of `/v1/chat/completions`: Server-Sent Events of
//! `chat.completion.chunk`, written as the run's events arrive.
//!
//! Order: a chunk with `delta.role` at once (so the client has its headers and
//! first byte while the agent starts), a `delta.content` chunk per delta the
//! worker streams, a last chunk with `finish_reason`, the usage chunk when the
//! client asked for it (`stream_options.include_usage`), then `data: [DONE]`.
//! Each chunk is its own body frame, which hyper writes out at once: nothing
//! buffers them (no compression layer; `Cache-Control: no-store` and
//! `X-Accel-Buffering: no` for proxies).
//!
//! The bus is at-most-once, so deltas can go missing: when the stored reply
//! goes on past what was streamed, the rest is sent as one more chunk before
//! the end, and the client's text adds up to the reply. (The stored reply has
//! the agent's action tags stripped; a delta stream that carried a tag does
//! not match it, and then nothing more is sent.)
//!
//! A client that goes away mid-stream drops this stream and with it only the
//! watch: the run is a job in the queue, which no request owns, so it finishes
//! and is stored like any other.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use arvis_shared::intake::{RunEvent, RunWatch};

use super::Usage;
use crate::state::AppState;

/// What every chunk of one completion repeats.
pub struct Meta {
    pub id: String,
    pub created: i64,
    pub model: String,
    pub job_id: i64,
}

/// The run's tokens, summed over its calls (tool rounds included).
pub async fn usage(state: &AppState, job_id: i64) -> Usage {
    let rows = match state.deps.store.usage_for_job(job_id).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, job_id, "cannot read the run's usage for the completion");
            Vec::new()
        }
    };
    let prompt_tokens = rows.iter().map(|r| r.input_tokens).sum();
    let completion_tokens = rows.iter().map(|r| r.output_tokens).sum();
    Usage { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
}

struct Streamer {
    state: AppState,
    watch: RunWatch,
    meta: Meta,
    include_usage: bool,
    deadline: tokio::time::Instant,
    timeout: Duration,
    /// The text sent so far.
    sent: String,
    step: Step,
}

enum Step {
    Start,
    Running,
    /// Chunks left to send, then the end.
    Tail(std::collections::VecDeque<Bytes>),
    Done,
}

fn frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

impl Streamer {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let mut chunk = json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        frame(&chunk)
    }

    async fn ending(&mut self, reply: String) -> std::collections::VecDeque<Bytes> {
        let mut tail = std::collections::VecDeque::new();
        if let Some(rest) = reply.strip_prefix(self.sent.as_str())
            && !rest.is_empty()
        {
            tail.push_back(self.chunk(json!({"content": rest}), None));
        }
        tail.push_back(self.chunk(json!({}), Some("stop")));
        if self.include_usage {
            let usage = usage(&self.state, self.meta.job_id).await;
            tail.push_back(frame(&json!({
                "id": self.meta.id,
                "object": "chat.completion.chunk",
                "created": self.meta.created,
                "model": self.meta.model,
                "system_fingerprint": null,
                "choices": [],
                "usage": usage,
            })));
        }
        tail.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        tail
    }

    fn failing(&self, error: super::error::V1Error) -> std::collections::VecDeque<Bytes> {
        // The SDKs raise an APIError for an `error` event mid-stream.
        [frame(&json!({ "error": error.error })), Bytes::from_static(b"data: [DONE]\n\n")].into_iter().collect()
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            match &mut self.step {
                Step::Start => {
                    self.step = Step::Running;
                    return Some(self.chunk(json!({"role": "assistant", "content": ""}), None));
                }
                Step::Tail(tail) => match tail.pop_front() {
                    Some(bytes) => return Some(bytes),
                    None => self.step = Step::Done,
                },
                Step::Done => return None,
                Step::Running => {
                    let event = tokio::time::timeout_at(self.deadline, self.watch.next()).await;
                    let tail = match event {
                        Ok(Some(RunEvent::Delta(d))) if !d.is_empty() => {
                            self.sent.push_str(&d);
                            return Some(self.chunk(json!({"content": d}), None));
                        }
                        Ok(Some(RunEvent::Delta(_) | RunEvent::Typing)) => continue,
                        Ok(Some(RunEvent::Reply { content, .. })) => self.ending(content).await,
                        Ok(Some(RunEvent::Failed(f))) => self.failing(super::run_failed(&f.reason)),
                        Ok(None) => self.failing(super::run_failed("the run ended without an answer")),
                        Err(_) => self.failing(super::timed_out(self.timeout)),
                    };
                    self.step = Step::Tail(tail);
                }
            }
        }
    }
}

/// The SSE response for a submitted run.
pub fn respond(state: AppState, watch: RunWatch, meta: Meta, include_usage: bool, timeout: Duration) -> Response {
    let streamer = Streamer {
        state,
        watch,
        meta,
        include_usage,
        deadline: tokio::time::Instant::now() + timeout,
        timeout,
        sent: String::new(),
        step: Step::Start,
    };
    let body = futures::stream::unfold(streamer, |mut s| async move {
        s.next().await.map(|bytes| (Ok::<Bytes, Infallible>(bytes), s))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    response
}
