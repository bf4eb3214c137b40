//! Spend budgets (issue 21): an agent or a workflow may have a daily and a
//! monthly limit in USD, an API key a monthly one. Spend is the sum of the
//! usage rows' cost in SQL ([`Store::spend_since`]); unpriced calls (NULL
//! cost) count as 0.
//!
//! Periods are **UTC** calendar days and months, whatever `SCHEDULER_TZ`
//! says: that zone is how cron fields are read, while spend is compared with
//! what providers bill, which they do in UTC; and every process computes the
//! same period boundaries without sharing a zone setting.
//!
//! Checked by the chat intake before a run is queued (REST chat, WebSocket,
//! connectors, `/v1`), by the scheduler before a workflow's run is queued, and
//! by the worker before every model call of a run in flight. Runs already
//! past their check are not stopped mid-call, so concurrent runs can overshoot
//! a limit by at most the calls in flight when it was crossed.

use crate::clock::now_ms;
use crate::db::usage::Spender;
use crate::db::{DbError, Store};

/// A limit that is used up. Its text names the budget and the numbers, for
/// the person who was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{owner}'s {period} budget of ${} is used up (${} spent this {unit}, UTC)", usd(*limit), usd(*spent))]
pub struct OverBudget {
    /// `agent support`, `API key ci`, `workflow nightly`.
    pub owner: String,
    /// `daily` or `monthly`.
    pub period: &'static str,
    unit: &'static str,
    pub limit: f64,
    pub spent: f64,
}

/// Dollars as people read them: cents for amounts of a dollar or more, up to
/// six decimals below (a test budget of $0.000005 must not read "$0.00").
pub fn usd(x: f64) -> String {
    if x.abs() >= 1.0 {
        return format!("{x:.2}");
    }
    let text = format!("{x:.6}");
    let trimmed = text.trim_end_matches('0');
    match trimmed.split_once('.') {
        Some((_, decimals)) if decimals.len() < 2 => format!("{x:.2}"),
        _ => trimmed.to_string(),
    }
}

/// One budget to check.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub period: Period,
    pub usd: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    /// The start (ms) of the UTC calendar day or month holding `now_ms`.
    pub fn start(self, now_ms: i64) -> i64 {
        let Ok(t) = jiff::Timestamp::from_millisecond(now_ms) else { return 0 };
        let date = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        let first = match self {
            Period::Day => date,
            Period::Month => date.first_of_month(),
        };
        first.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp().as_millisecond()).unwrap_or(0)
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            Period::Day => ("daily", "day"),
            Period::Month => ("monthly", "month"),
        }
    }
}

/// The limits of one spender.
pub fn limits(daily: Option<f64>, monthly: Option<f64>) -> Vec<Limit> {
    let mut out = Vec::new();
    if let Some(usd) = daily {
        out.push(Limit { period: Period::Day, usd });
    }
    if let Some(usd) = monthly {
        out.push(Limit { period: Period::Month, usd });
    }
    out
}

/// Refuses when a limit is reached: `spent + pending ≥ limit`. `pending` is
/// what the caller spent and has not stored yet (a run's earlier calls).
pub async fn check(
    store: &Store,
    who: Spender,
    owner: &str,
    limits: &[Limit],
    pending: f64,
) -> Result<(), BudgetError> {
    let now = now_ms();
    for limit in limits {
        let spent = store.spend_since(who, limit.period.start(now)).await? + pending;
        if spent >= limit.usd {
            let (period, unit) = limit.period.names();
            return Err(BudgetError::Over(OverBudget {
                owner: owner.to_string(),
                period,
                unit,
                limit: limit.usd,
                spent,
            }));
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(transparent)]
    Over(#[from] OverBudget),
    #[error("the spend could not be read: {0}")]
    Db(#[from] DbError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_the_utc_day_and_month() {
        // 2026-12-15T13:45:00Z
        let t = 1_797_342_300_000;
        assert_eq!(Period::Day.start(t), 1_797_292_800_000); // 2026-12-15T00:00:00Z
        assert_eq!(Period::Month.start(t), 1_796_083_200_000); // 2026-12-01T00:00:00Z
    }

    #[test]
    fn the_refusal_names_the_budget_and_the_numbers() {
        let over = OverBudget { owner: "agent cheap".into(), period: "daily", unit: "day", limit: 0.5, spent: 0.51234 };
        assert_eq!(over.to_string(), "agent cheap's daily budget of $0.50 is used up ($0.51234 spent this day, UTC)");
        assert_eq!(usd(0.000005), "0.000005");
        assert_eq!(usd(12.5), "12.50");
        assert_eq!(usd(0.0), "0.00");
        assert_eq!(usd(0.1), "0.10");
    }
}

/// One agent's, key's or workflow's spend against its budgets, for
/// `GET /api/usage` and the Prometheus gauges.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BudgetLine {
    pub id: i64,
    /// The agent's slug, the key's or the workflow's name.
    pub name: String,
    /// Null for API keys (they have a monthly budget only).
    pub daily_budget_usd: Option<f64>,
    pub monthly_budget_usd: Option<f64>,
    /// Since 00:00 UTC today (null for API keys).
    pub spent_today_usd: Option<f64>,
    /// Since the first of this month, 00:00 UTC.
    pub spent_this_month_usd: f64,
}

/// Every agent and API key, and the workflows that have a budget.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BudgetReport {
    pub agents: Vec<BudgetLine>,
    pub keys: Vec<BudgetLine>,
    pub workflows: Vec<BudgetLine>,
}

/// The spend of every agent and key, and of each budgeted workflow, now.
pub async fn report(store: &Store) -> Result<BudgetReport, DbError> {
    let now = now_ms();
    let (day, month) = (Period::Day.start(now), Period::Month.start(now));
    let agents_today = store.spend_by_agent_since(day).await?;
    let agents_month = store.spend_by_agent_since(month).await?;
    let keys_month = store.spend_by_key_since(month).await?;
    let mut out = BudgetReport::default();
    for a in store.agents().await?.iter() {
        out.agents.push(BudgetLine {
            id: a.id,
            name: a.slug.clone(),
            daily_budget_usd: a.daily_budget_usd,
            monthly_budget_usd: a.monthly_budget_usd,
            spent_today_usd: Some(agents_today.get(&a.id).copied().unwrap_or(0.0)),
            spent_this_month_usd: agents_month.get(&a.id).copied().unwrap_or(0.0),
        });
    }
    for k in store.api_keys().await? {
        out.keys.push(BudgetLine {
            id: k.id,
            name: k.name.clone(),
            daily_budget_usd: None,
            monthly_budget_usd: k.monthly_budget_usd,
            spent_today_usd: None,
            spent_this_month_usd: keys_month.get(&k.id).copied().unwrap_or(0.0),
        });
    }
    for (id, name, daily, monthly) in store.budgeted_workflows().await? {
        out.workflows.push(BudgetLine {
            id,
            name,
            daily_budget_usd: daily,
            monthly_budget_usd: monthly,
            spent_today_usd: Some(store.spend_since(Spender::Workflow(id), day).await?),
            spent_this_month_usd: store.spend_since(Spender::Workflow(id), month).await?,
        });
    }
    Ok(out)
}

impl BudgetReport {
    /// Sets `arvis_budget_spent_usd{scope,name,period}` and
    /// `arvis_budget_limit_usd{scope,name,period}` (limits only where set).
    pub fn set_gauges(&self) {
        for (scope, lines) in [("agent", &self.agents), ("key", &self.keys), ("workflow", &self.workflows)] {
            for l in lines {
                let name = l.name.clone();
                if let Some(spent) = l.spent_today_usd {
                    metrics::gauge!("arvis_budget_spent_usd", "scope" => scope, "name" => name.clone(), "period" => "day")
                        .set(spent);
                }
                metrics::gauge!("arvis_budget_spent_usd", "scope" => scope, "name" => name.clone(), "period" => "month")
                    .set(l.spent_this_month_usd);
                if let Some(limit) = l.daily_budget_usd {
                    metrics::gauge!("arvis_budget_limit_usd", "scope" => scope, "name" => name.clone(), "period" => "day")
                        .set(limit);
                }
                if let Some(limit) = l.monthly_budget_usd {
                    metrics::gauge!("arvis_budget_limit_usd", "scope" => scope, "name" => name, "period" => "month")
                        .set(limit);
                }
            }
        }
    }
}
