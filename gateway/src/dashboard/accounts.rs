//! Accounts: the LLM accounts (`/accounts`, paged) with their priority,
//! activity and rate limit, each row its own small form (priority, active,
//! model) posting to `/accounts/{id}`.
//!
//! The edit goes through `routes::accounts::update` with a JSON object built
//! from the form, so the API's rules apply as written (`AccountPatch::from_json`:
//! priority an integer in 0..=1000000, a model name without spaces) and its
//! message shows next to the field, in that account's row. Credentials are
//! neither shown nor editable: the page shows what `GET /api/accounts` shows
//! (never a key, nor the name of the variable holding it), and a base URL
//! without any user:password part.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fields::{self, is_refusal, place};
use super::form::Errors;
use super::layout::{Ctx, NavItem, PageResult, page_with_status, see_other};
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::extract::{AppForm, AppPath};
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/accounts", label: "Accounts", ready: true };

const FIELDS: &[&str] = &["priority", "isActive", "model"];

pub fn router() -> Router<AppState> {
    Router::new().route("/accounts", get(list)).route("/accounts/{id}", axum::routing::post(update))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountForm {
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub is_active: Option<String>,
    #[serde(default)]
    pub model: String,
    /// The list page the row was on (to come back to it).
    #[serde(default)]
    pub page: Option<String>,
}

impl AccountForm {
    /// The PATCH body the API would get: a priority that is not a number is
    /// sent as the text typed, so the API's own message refuses it.
    fn to_json(&self) -> Value {
        let priority = match self.priority.trim().parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(self.priority),
        };
        json!({ "priority": priority, "isActive": self.is_active.is_some(), "model": self.model })
    }
}

/// A row refused: which account, what was typed, the API's message.
struct Refused<'a> {
    id: i64,
    form: &'a AccountForm,
    errors: Errors,
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(p): Query<PageParam>) -> PageResult {
    render(&ctx, &state, p.number(), None, StatusCode::OK).await
}

async fn render(
    ctx: &Ctx,
    state: &AppState,
    page_no: i64,
    refused: Option<Refused<'_>>,
    status: StatusCode,
) -> PageResult {
    // Accounts come from the environment (a handful); the store lists them all.
    let accounts = state.deps.store.list_accounts().await?;
    let pager = Pager::new(page_no, PER_PAGE, accounts.len() as i64);
    let none = Errors::none();
    page_with_status(
        ctx,
        status,
        "Accounts",
        html! {
            p.hint { "LLM accounts come from the environment (.env); keys are never shown and cannot be changed here. "
                "Lower priority is tried first; a rate-limited account is skipped until the time shown." }
            @if accounts.is_empty() {
                p.empty { "No accounts: set ANTHROPIC_API_KEY, OPENAI_API_KEY, … in .env and restart." }
            } @else {
                div.table-wrap {
                    table.accounts {
                        thead { tr {
                            th { "Account" } th { "Provider" } th { "Rate-limited until" }
                            th { "Priority" } th { "Active" } th { "Model" } th { span.visually-hidden { "Save" } }
                        } }
                        tbody {
                            @for a in pager.slice(&accounts) {
                                @let mine = refused.as_ref().filter(|r| r.id == a.id);
                                @let errors = mine.map(|r| &r.errors).unwrap_or(&none);
                                @let priority = mine.map(|r| r.form.priority.clone()).unwrap_or_else(|| a.priority.to_string());
                                @let active = mine.map(|r| r.form.is_active.is_some()).unwrap_or(a.is_active);
                                @let model = mine.map(|r| r.form.model.clone()).unwrap_or_else(|| a.model.clone());
                                @let form_id = format!("account-{}", a.id);
                                tr {
                                    td { (a.name) br; span.sub { (a.kind) @if let Some(u) = &a.base_url { " · " (redact_url(u)) } }
                                        (errors.form_level()) }
                                    td { (a.provider) }
                                    td { @if let Some(t) = &a.rate_limited_until { span.state.bad { (fields::when(Some(t))) } } @else { "—" } }
                                    td {
                                        input #{ "priority-" (a.id) } form=(form_id) type="number" name="priority" value=(priority)
                                            min="0" max="1000000" step="1" aria-label={ "Priority of " (a.name) }
                                            aria-invalid=[errors.invalid("priority")] aria-describedby="priority-error";
                                        (errors.field("priority"))
                                    }
                                    td {
                                        input #{ "active-" (a.id) } form=(form_id) type="checkbox" name="isActive" checked[active]
                                            aria-label={ (a.name) " is active" };
                                        (errors.field("isActive"))
                                    }
                                    td {
                                        input #{ "model-" (a.id) } form=(form_id) type="text" name="model" value=(model)
                                            aria-label={ "Model of " (a.name) }
                                            aria-invalid=[errors.invalid("model")] aria-describedby="model-error";
                                        (errors.field("model"))
                                    }
                                    td {
                                        form #(form_id) method="post" action={ "/accounts/" (a.id) } {
                                            input type="hidden" name="page" value=(pager.page);
                                            button type="submit" aria-label={ "Save " (a.name) } { "Save" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                (pager.render("/accounts", "page"))
            }
        },
    )
}

/// A base URL without a `user:password@` part (the key belongs in the
/// environment, but a URL may carry one).
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

async fn update(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(form): AppForm<AccountForm>,
) -> PageResult {
    let page_no = PageParam { page: form.page.clone() }.number();
    match routes::accounts::update(&state, id, &form.to_json()).await {
        Ok(_) => Ok(see_other(&format!("/accounts?page={page_no}"))),
        Err(e) if is_refusal(&e) => {
            let refused = Refused { id, form: &form, errors: place(&e.message, FIELDS) };
            render(&ctx, &state, page_no, Some(refused), e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_loses_its_credentials() {
        assert_eq!(redact_url("https://user:sk-1@llm.example/v1"), "https://llm.example/v1");
        assert_eq!(redact_url("http://127.0.0.1:8080/v1"), "http://127.0.0.1:8080/v1");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
