//! Account selection and failover for one model call.
//!
//! Order: usable accounts (active, not rate-limited) of the agent's provider
//! first, then the others, each list by priority then fewest messages. An
//! account of another provider is called with its *own* model (a Claude model
//! name is never sent to OpenAI). A rate limit (429, 529, 503 with
//! `Retry-After`) marks the account until `Retry-After` — or a backoff of 1, 5,
//! 25, 60 minutes by its strikes — and the same request moves on at once; a
//! 5xx, a timeout or a connection failure also moves on (without marking); a
//! 4xx refusal stops (permanent). Success clears the account's limit, counts
//! the message and writes one usage row with tokens (cached ones apart), cost
//! (from the worker's [`PriceTable`](crate::pricing::PriceTable); NULL for an
//! unpriced model) and duration — for the call that produced the reply, in
//! the same write as the reply itself (see [`Served::usage`]).

use std::time::Instant;

use arvis_shared::clock::now_ms;
use arvis_shared::db::accounts::AccountRow;
use arvis_shared::domain::agent::Agent;
use arvis_shared::domain::job::Job;
use arvis_shared::domain::split_model;
use arvis_shared::domain::usage::UsageRecord;

use crate::context::{Bill, RunCtx};
use crate::error::JobError;
use crate::llm::{LlmRequest, LlmResponse};
use crate::pricing;
use crate::providers::{self, Endpoint, ProviderError};

/// A successful call. Its usage went into the run's [`Bill`].
#[derive(Debug, Clone)]
pub struct Served {
    pub response: LlmResponse,
}

/// Provider call metrics: calls by outcome, latency, tokens and cost.
fn record_call_metrics(
    provider: &str,
    model: &str,
    outcome: &'static str,
    started: Instant,
    response: Option<(&crate::llm::LlmResponse, Option<f64>)>,
) {
    let (p, m) = (provider.to_string(), model.to_string());
    metrics::counter!("arvis_provider_calls_total", "provider" => p.clone(), "model" => m.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("arvis_provider_call_duration_seconds", "provider" => p.clone(), "model" => m.clone())
        .record(started.elapsed().as_secs_f64());
    if let Some((r, cost)) = response {
        let tokens = |direction: &'static str, n: i64| {
            metrics::counter!("arvis_tokens_total", "direction" => direction, "provider" => p.clone(), "model" => m.clone())
                .increment(n.max(0) as u64);
        };
        tokens("input", r.input_tokens);
        tokens("output", r.output_tokens);
        tokens("cache_read", r.cache_read_tokens);
        tokens("cache_write", r.cache_write_tokens);
        match cost {
            Some(c) => {
                let micro = (c * 1e6).round() as u64;
                metrics::counter!("arvis_cost_microdollars_total", "provider" => p, "model" => m).increment(micro);
            }
            None => metrics::counter!("arvis_unpriced_calls_total", "provider" => p, "model" => m).increment(1),
        }
    }
}

/// Usable accounts in call order, each with the model to ask it for.
pub fn plan(agent_model: &str, accounts: Vec<AccountRow>) -> Vec<(AccountRow, String)> {
    let (provider, model) = split_model(agent_model);
    let (mut own, others): (Vec<_>, Vec<_>) = accounts.into_iter().partition(|a| a.provider == provider);
    own.extend(others);
    own.into_iter()
        .map(|a| {
            let m = if a.provider == provider && !model.is_empty() { model.to_string() } else { a.model.clone() };
            (a, m)
        })
        .collect()
}

fn db(e: impl std::fmt::Display) -> JobError {
    JobError::retryable("the worker could not reach its database", e)
}

/// Calls the model for `request`, failing over between accounts. Each
/// attempt sets `request.model` to the model of the account it tries (the
/// request is not copied per attempt: it carries the whole history, and the
/// copy and its drop were ~10 % of the worker's CPU under load).
pub async fn call(
    ctx: &RunCtx,
    agent: &Agent,
    job: &Job,
    request: &mut LlmRequest,
    on_delta: &mut (dyn FnMut(&str) + Send),
    bill: &Bill,
) -> Result<Served, JobError> {
    let store = &ctx.deps.store;
    let config = &ctx.deps.config;
    // One instant for both questions below, so an account whose rest ends in
    // between is never mistaken for no account at all.
    let started_at = now_ms();
    let accounts = store.usable_accounts(None, started_at).await.map_err(db)?;
    let mut last_error: Option<ProviderError> = None;
    let mut only_rate_limits = true;
    for (account, model) in plan(&agent.model, accounts) {
        let api_key = match &account.api_key_env {
            Some(var) => match config.secret(var) {
                Some(k) => Some(k),
                None => {
                    tracing::warn!(account = %account.name, var = %var, "skipping an account whose key variable is not set in this process");
                    continue;
                }
            },
            None => None,
        };
        let endpoint = Endpoint {
            provider: &account.provider,
            base_url: account.base_url.as_deref(),
            api_key,
            timeout: ctx.settings.provider_timeout,
            account_id: account.id,
            memory: Some(&ctx.param_memory),
        };
        request.model.clone_from(&model);
        let started = Instant::now();
        let result = providers::call(&ctx.client, &endpoint, request, on_delta).await;
        if let Err(e) = &result {
            record_call_metrics(&account.provider, &model, e.outcome(), started, None);
        }
        match result {
            Ok(response) => {
                let duration_ms = started.elapsed().as_millis() as i64;
                let tokens = pricing::Tokens {
                    input: response.input_tokens,
                    output: response.output_tokens,
                    cache_read: response.cache_read_tokens,
                    cache_write: response.cache_write_tokens,
                };
                let cost_usd = ctx.prices.cost(&account.provider, &model, tokens);
                record_call_metrics(&account.provider, &model, "ok", started, Some((&response, cost_usd)));
                let usage = UsageRecord {
                    account_id: Some(account.id),
                    agent_id: Some(agent.id),
                    conversation_id: job.conversation_id.clone(),
                    job_id: Some(job.id),
                    provider: account.provider.clone(),
                    model: model.clone(),
                    input_tokens: response.input_tokens,
                    output_tokens: response.output_tokens,
                    cache_read_tokens: response.cache_read_tokens,
                    cache_write_tokens: response.cache_write_tokens,
                    cost_usd,
                    duration_ms,
                    created_at: now_ms(),
                    api_key_id: job.payload.api.as_ref().and_then(|a| a.key_id),
                };
                tracing::debug!(job_id = job.id, account = %account.name, %model, duration_ms, "model call served");
                bill.add(usage);
                return Ok(Served { response });
            }
            Err(ProviderError::RateLimited { status, retry_after }) => {
                let rest_ms = match retry_after {
                    Some(d) => (d.as_millis() as i64).max(1000),
                    None => crate::error::rate_limit_backoff_ms(account.retry_count),
                };
                let until = now_ms() + rest_ms;
                tracing::warn!(account = %account.name, status, rest_ms, "account rate-limited; moving to the next one");
                store.mark_rate_limited(account.id, until).await.map_err(db)?;
                last_error = Some(ProviderError::RateLimited { status, retry_after });
            }
            Err(ProviderError::Config(reason)) => {
                tracing::warn!(account = %account.name, %reason, "skipping an account that cannot be called");
                only_rate_limits = false;
                last_error = Some(ProviderError::Config(reason));
            }
            Err(e) if e.is_permanent() => {
                tracing::warn!(account = %account.name, error = %e, job_id = job.id, "the provider refused the request");
                return Err(JobError::permanent("the model provider refused the request", e));
            }
            Err(e) => {
                tracing::warn!(account = %account.name, error = %e, job_id = job.id, "model call failed; trying the next account");
                only_rate_limits = false;
                last_error = Some(e);
            }
        }
    }
    if only_rate_limits {
        // Nothing usable, or every account tried was rate-limited: retry when
        // the first one rests no more.
        if let Some(at) = store.earliest_rate_limit_end(started_at).await.map_err(db)? {
            let msg = "every LLM account is rate-limited".to_string();
            // Nothing called: waiting for the rest to end costs no attempt.
            if last_error.is_none() {
                return Err(JobError::Deferred { msg, retry_at: at });
            }
            return Err(JobError::Retryable { msg, retry_at: Some(at) });
        }
        // Nothing was usable a moment ago, but no account rests now: another
        // run's success ended the rest in between. Try again at once.
        if last_error.is_none() && !store.usable_accounts(None, i64::MAX).await.map_err(db)?.is_empty() {
            return Err(JobError::Deferred { msg: "every LLM account was resting".into(), retry_at: now_ms() });
        }
        if last_error.is_none() {
            return Err(JobError::Permanent(
                "no active LLM account (set ANTHROPIC_API_KEY, OPENAI_API_KEY, … or activate one in /api/accounts)"
                    .into(),
            ));
        }
    }
    match last_error {
        Some(ProviderError::Config(reason)) => Err(JobError::permanent("no LLM account can be called", reason)),
        Some(e) => Err(JobError::retryable("the model provider is unavailable", e)),
        None => Err(JobError::Permanent("no active LLM account".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: i64, provider: &str, model: &str) -> AccountRow {
        AccountRow {
            id,
            name: format!("a{id}"),
            kind: "api_key".into(),
            provider: provider.into(),
            model: model.into(),
            base_url: None,
            api_key_env: None,
            priority: id,
            is_active: true,
            rate_limited_until: None,
            retry_count: 0,
            total_messages: 0,
        }
    }

    #[test]
    fn own_provider_first_and_others_with_their_own_model() {
        let accounts = vec![account(1, "anthropic", "claude-haiku"), account(2, "openai", "gpt-4o-mini")];
        let p = plan("openai/gpt-4.1", accounts);
        let got: Vec<_> = p.iter().map(|(a, m)| (a.id, m.as_str())).collect();
        assert_eq!(got, [(2, "gpt-4.1"), (1, "claude-haiku")]);
    }
}
