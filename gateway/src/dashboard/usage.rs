//! Usage: the last day, week or month (`/usage?period=week`, the periods of
//! `GET /api/usage`) — totals, cost and tokens over time as inline SVG bar
//! charts (per hour for a day, per UTC day for a week or a month), and tables
//! by agent, provider and model with the average duration of a call.
//!
//! **The same numbers as the API.** Totals and tables are the
//! `UsageReport` that `GET /api/usage` answers for the same period (the same
//! `period_ms` window, the same `Store::usage_report`); the charts' buckets
//! use the same filter and sums (`Store::usage_series`), so they add up to
//! the totals. Every number is in a `<data value="…">` element holding the
//! API's exact value beside the rounded one people read, so a test (or a
//! script) can compare the page with the API without parsing `$1.23`.
//!
//! **Unpriced is not free.** A call to a model without a known price has no
//! cost (the API counts it in `unpricedRequests` and leaves it out of
//! `costUsd`); here its cost cell says "unpriced", or "$x + N unpriced" when
//! only some calls of a row were priced — never "$0.00".

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;

use arvis_shared::clock::now_ms;
use arvis_shared::db::dashboard::DAY_MS;
use arvis_shared::db::dashboard_ops::UsageBucket;
use arvis_shared::domain::usage::{UsageReport, period_ms};

use super::chart::{self, Bar};
use super::layout::{Ctx, NavItem, PageResult, page};
use crate::error::ApiError;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/usage", label: "Usage", ready: true };

const HOUR_MS: i64 = 3_600_000;
/// From this many bars on, the values above the bars are left out (they
/// would overlap); each bar's tooltip and the chart's table still have them.
const DENSE_BARS: usize = 12;

pub fn router() -> Router<AppState> {
    Router::new().route(NAV.href, get(usage))
}

#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    pub period: Option<String>,
}

/// The periods, as `GET /api/usage?period=` names them.
const PERIODS: &[(&str, &str)] = &[("day", "Last 24 hours"), ("week", "Last 7 days"), ("month", "Last 30 days")];

async fn usage(ctx: Ctx, State(state): State<AppState>, Query(q): Query<UsageQuery>) -> PageResult {
    let period = q.period.as_deref().unwrap_or("week");
    // The API's window and refusal for the same `?period=`.
    let window = period_ms(Some(period)).map_err(ApiError::from)?;
    let since = now_ms() - window;
    let store = &state.deps.store;
    let report = store.usage_report(since).await?;
    let bucket_ms = if window <= DAY_MS { HOUR_MS } else { DAY_MS };
    let series = store.usage_series(since, bucket_ms).await?;
    let (cost_bars, token_bars) = bars(&series, since, now_ms(), bucket_ms, period);
    let unit = if bucket_ms == HOUR_MS { "hour" } else { "day" };
    let label = PERIODS.iter().find(|(p, _)| *p == period).map(|(_, l)| *l).unwrap_or("");
    page(
        &ctx,
        "Usage",
        html! {
            nav.tabs aria-label="Period" {
                ul { @for (p, l) in PERIODS {
                    li { a href={ "/usage?period=" (p) } aria-current=[(*p == period).then_some("page")] { (l) } }
                } }
            }
            (totals(&report))
            @if report.unpriced_requests > 0 {
                p.notice.unpriced-note {
                    (report.unpriced_requests) @if report.unpriced_requests == 1 { " call was" } @else { " calls were" }
                    " to a model without a known price: counted in the requests and tokens, left out of the cost."
                }
            }
            div.usage-charts.dense[cost_bars.len() >= DENSE_BARS] {
                section {
                    h2 { "Cost per " (unit) }
                    (chart::bars(&format!("Cost per {unit} (USD), {}", label.to_lowercase()), &cost_bars, usd_text))
                }
                section {
                    h2 { "Tokens per " (unit) }
                    (chart::bars(&format!("Tokens (input + output) per {unit}, {}", label.to_lowercase()), &token_bars, tokens_text))
                }
            }
            @if report.total_requests == 0 {
                p.empty { "No LLM calls in this period." }
            } @else {
                h2 { "By agent" }
                div.table-wrap {
                    table #by-agent {
                        thead { tr { th { "Agent" } (number_heads()) } }
                        tbody { @for a in &report.by_agent {
                            tr data-key=(a.agent_id.map(|i| i.to_string()).unwrap_or_default()) {
                                th scope="row" {
                                    @match (a.agent_id, &a.agent_name) {
                                        (Some(id), Some(name)) => a href={ "/agents/" (id) } { (name) },
                                        _ => span.empty { "deleted agent" },
                                    }
                                }
                                (numbers(a.requests, a.input_tokens, a.output_tokens, a.cost_usd, a.unpriced_requests, a.avg_duration_ms))
                            }
                        } }
                    }
                }
                h2 { "By provider" }
                div.table-wrap {
                    table #by-provider {
                        thead { tr { th { "Provider" } (number_heads()) } }
                        tbody { @for p in &report.by_provider {
                            tr data-key=(p.provider) {
                                th scope="row" { (p.provider) }
                                (numbers(p.requests, p.input_tokens, p.output_tokens, p.cost_usd, p.unpriced_requests, p.avg_duration_ms))
                            }
                        } }
                    }
                }
                h2 { "By model" }
                div.table-wrap {
                    table #by-model {
                        thead { tr { th { "Model" } (number_heads()) } }
                        tbody { @for m in &report.by_model {
                            tr data-key=(m.model) {
                                th scope="row" { code { (m.model) } }
                                (numbers(m.requests, m.input_tokens, m.output_tokens, m.cost_usd, m.unpriced_requests, m.avg_duration_ms))
                            }
                        } }
                    }
                }
            }
        },
    )
}

/// One bar per bucket from the window's first to now, empty buckets at zero.
fn bars(series: &[UsageBucket], since: i64, now: i64, bucket_ms: i64, period: &str) -> (Vec<Bar>, Vec<Bar>) {
    let first = since.div_euclid(bucket_ms);
    let last = now.div_euclid(bucket_ms);
    let mut cost = Vec::new();
    let mut tokens = Vec::new();
    for b in first..=last {
        let found = series.iter().find(|s| s.bucket == b);
        let label = bucket_label(b * bucket_ms, bucket_ms, period);
        cost.push(Bar { label: label.clone(), value: found.map(|s| s.cost_usd).unwrap_or(0.0) });
        tokens.push(Bar { label, value: found.map(|s| (s.input_tokens + s.output_tokens) as f64).unwrap_or(0.0) });
    }
    (cost, tokens)
}

/// `14h` for an hour, `Mon 30` for a day of a week, `30` for a day of a month
/// (31 bars leave no room for more).
fn bucket_label(start_ms: i64, bucket_ms: i64, period: &str) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(start_ms.div_euclid(1000)) else {
        return start_ms.to_string();
    };
    if bucket_ms < DAY_MS {
        format!("{:02}h", t.hour())
    } else if period == "week" {
        let weekday = t.weekday().to_string();
        format!("{} {}", weekday.get(..3).unwrap_or(&weekday), t.day())
    } else {
        t.day().to_string()
    }
}

fn totals(r: &UsageReport) -> Markup {
    html! {
        dl.stats #usage-totals {
            div { dt { "Requests" } dd { (int(r.total_requests, "totalRequests")) } }
            div { dt { "Input tokens" } dd { (int(r.total_input_tokens, "totalInputTokens")) }
                  span.sub { (int(r.total_cache_read_tokens, "totalCacheReadTokens")) " read from cache · "
                             (int(r.total_cache_write_tokens, "totalCacheWriteTokens")) " written" } }
            div { dt { "Output tokens" } dd { (int(r.total_output_tokens, "totalOutputTokens")) } }
            div { dt { "Cost" } dd { (cost(r.total_cost_usd, r.total_requests, r.unpriced_requests, "totalCostUsd")) } }
        }
    }
}

fn number_heads() -> Markup {
    html! { th { "Requests" } th { "Input tokens" } th { "Output tokens" } th { "Cost" } th { "Avg duration" } }
}

fn numbers(requests: i64, input: i64, output: i64, cost_usd: f64, unpriced: i64, avg_ms: i64) -> Markup {
    html! {
        td { (int(requests, "requests")) }
        td { (int(input, "inputTokens")) }
        td { (int(output, "outputTokens")) }
        td { (cost(cost_usd, requests, unpriced, "costUsd")) }
        td { data data-field="avgDurationMs" value=(avg_ms) { (duration_text(avg_ms)) } }
    }
}

/// A whole number: the API's value, shown with thousands separators.
fn int(v: i64, field: &str) -> Markup {
    html! { data data-field=(field) value=(v) { (grouped(v)) } }
}

/// A cost: the priced calls' sum, and how many calls had no price.
fn cost(usd: f64, requests: i64, unpriced: i64, field: &str) -> Markup {
    html! {
        @if requests > 0 && unpriced == requests {
            data.unpriced data-field=(field) data-unpriced=(unpriced) value=(usd) { "unpriced" }
        } @else {
            data data-field=(field) data-unpriced=(unpriced) value=(usd) { (usd_text(usd)) }
            @if unpriced > 0 { " " span.unpriced { "+ " (unpriced) " unpriced" } }
        }
    }
}

fn usd_text(v: f64) -> String {
    if v == 0.0 {
        "$0.00".into()
    } else if v.abs() < 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

fn tokens_text(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 1_000.0 {
        format!("{:.1}k", v / 1_000.0)
    } else {
        format!("{v:.0}")
    }
}

fn duration_text(ms: i64) -> String {
    if ms >= 1000 { format!("{:.1} s", ms as f64 / 1000.0) } else { format!("{ms} ms") }
}

/// `1234567` → `1,234,567`.
fn grouped(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well_and_unpriced_is_not_zero() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(-1000), "-1,000");
        assert_eq!(usd_text(0.004), "$0.0040");
        assert_eq!(usd_text(4.284), "$4.28");
        let all = cost(0.0, 3, 3, "costUsd").into_string();
        assert!(all.contains(">unpriced<") && !all.contains("$0.00"), "{all}");
        let some = cost(1.5, 3, 1, "costUsd").into_string();
        assert!(some.contains("$1.50") && some.contains("+ 1 unpriced"), "{some}");
        assert!(cost(0.0, 0, 0, "costUsd").into_string().contains("$0.00"), "no calls cost nothing");
    }

    #[test]
    fn the_bars_cover_the_window_and_add_up() {
        let since = 10 * DAY_MS + 5 * HOUR_MS;
        let now = since + 7 * DAY_MS;
        let series = vec![
            UsageBucket {
                bucket: 11,
                requests: 2,
                input_tokens: 10,
                output_tokens: 5,
                cost_usd: 0.5,
                unpriced_requests: 0,
            },
            UsageBucket {
                bucket: 17,
                requests: 1,
                input_tokens: 1,
                output_tokens: 1,
                cost_usd: 0.25,
                unpriced_requests: 0,
            },
        ];
        let (cost, tokens) = bars(&series, since, now, DAY_MS, "week");
        assert_eq!(cost.len(), 8, "a partial first day, six whole ones, today");
        assert_eq!(cost.iter().map(|b| b.value).sum::<f64>(), 0.75);
        assert_eq!(tokens.iter().map(|b| b.value).sum::<f64>(), 17.0);
        assert_eq!(cost[1].value, 0.5);
    }
}
