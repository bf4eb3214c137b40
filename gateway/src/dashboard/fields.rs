//! Form parts the configuration pages (Workflows, Webhooks, Skills, Bots,
//! Accounts, Settings) share: labelled inputs that show the API's refusal
//! next to themselves, the agent picker, the enable/disable and delete
//! buttons, and how times and refusals are placed. Kept apart from
//! [`super::form`] (which every page uses) so that these pages' needs — a
//! message like `triggerPatterns: "(" is not valid` or
//! `channelBindings.channelId must not be empty` finding its field — do not
//! change the placement rule the other pages rely on.

use maud::{Markup, html};

use arvis_shared::domain::agent::Agent;

use super::form::Errors;
use crate::error::ApiError;

/// Up to this many agents the agent picker is a `<select>`; above, a number
/// input with the id (a select of 10 000 options would be a page in itself).
pub const AGENT_SELECT_MAX: usize = 500;

/// The API's refusal placed on the field it names: the message's first word
/// is the field (`name must not be empty`), or the field followed by `.` or
/// `:` (`channelBindings.channelId …`, `triggerPatterns: …`); anything else
/// (a 409 naming no field) goes above the form.
pub fn place(message: &str, fields: &[&str]) -> Errors {
    let first = message.split_whitespace().next().unwrap_or("");
    let named = fields.iter().find(|f| {
        first == **f || first.strip_prefix(**f).is_some_and(|rest| rest.starts_with('.') || rest.starts_with(':'))
    });
    match named {
        Some(field) => Errors::on(field, message),
        None => Errors::from_message(message, fields),
    }
}

/// An API refusal a form shows (a 4xx other than "not found"); a 404 or 5xx
/// is an error page instead.
pub fn is_refusal(e: &ApiError) -> bool {
    e.status.is_client_error() && e.status != axum::http::StatusCode::NOT_FOUND
}

/// A timestamp of the API (RFC 3339, UTC) as `2026-12-01 12:00 UTC`; `—` when absent.
pub fn when(t: Option<&str>) -> String {
    match t {
        Some(t) if t.len() >= 16 => format!("{} UTC", t[..16].replace('T', " ")),
        Some(t) => t.to_string(),
        None => "—".to_string(),
    }
}

/// A one-line text input with its label, hint and error.
pub fn text(errors: &Errors, name: &str, label: &str, value: &str, hint: Option<&str>) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            input #(name) type="text" name=(name) value=(value)
                aria-invalid=[errors.invalid(name)] aria-describedby={ (name) "-error" };
            @if let Some(h) = hint { span.hint { (h) } }
            (errors.field(name))
        }
    }
}

/// A number input.
pub fn number(errors: &Errors, name: &str, label: &str, value: &str, hint: Option<&str>) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            input #(name) type="number" name=(name) value=(value) step="1"
                aria-invalid=[errors.invalid(name)] aria-describedby={ (name) "-error" };
            @if let Some(h) = hint { span.hint { (h) } }
            (errors.field(name))
        }
    }
}

/// A multi-line input across the form's width.
pub fn textarea(errors: &Errors, name: &str, label: &str, value: &str, rows: u32, hint: Option<&str>) -> Markup {
    html! {
        div.field.wide {
            label for=(name) { (label) }
            textarea #(name) name=(name) rows=(rows)
                aria-invalid=[errors.invalid(name)] aria-describedby={ (name) "-error" } { (value) }
            @if let Some(h) = hint { span.hint { (h) } }
            (errors.field(name))
        }
    }
}

/// A checkbox (present in the form, as `on`, when ticked).
pub fn check(errors: &Errors, name: &str, label: &str, checked: bool) -> Markup {
    html! {
        div.field.check {
            input #(name) type="checkbox" name=(name) checked[checked] aria-describedby={ (name) "-error" };
            label for=(name) { (label) }
            (errors.field(name))
        }
    }
}

/// The agent a workflow, webhook, bot or setting refers to: a select of the
/// agents by name (with "none" when `none` is given), or the id as a number
/// when there are too many agents for a select.
pub fn agent(errors: &Errors, name: &str, label: &str, agents: &[Agent], selected: &str, none: Option<&str>) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            @if agents.len() <= AGENT_SELECT_MAX {
                select #(name) name=(name) aria-invalid=[errors.invalid(name)] aria-describedby={ (name) "-error" } {
                    @if let Some(none) = none { option value="" selected[selected.is_empty()] { (none) } }
                    @else if agents.is_empty() { option value="" { "no agents yet: create one first" } }
                    @for a in agents {
                        @let id = a.id.to_string();
                        option value=(id) selected[id == selected] { (a.name) " (" (a.slug) ")" }
                    }
                }
            } @else {
                input #(name) type="number" name=(name) value=(selected) min="1" step="1"
                    aria-invalid=[errors.invalid(name)] aria-describedby={ (name) "-error" };
                span.hint { "the agent's id (see " a href="/agents" { "Agents" } ")"
                    @if none.is_some() { "; empty: none" } }
            }
            (errors.field(name))
        }
    }
}

/// The name of an agent by id (`#12` when it is gone).
pub fn agent_name(agents: &[Agent], id: i64) -> String {
    agents.iter().find(|a| a.id == id).map(|a| a.name.clone()).unwrap_or_else(|| format!("#{id}"))
}

/// An id typed into a form; `Err` carries the message for its field.
pub fn parse_id(field: &str, value: &str) -> Result<i64, Errors> {
    value.trim().parse::<i64>().map_err(|_| {
        Errors::on(
            field,
            if value.trim().is_empty() {
                format!("{field} must name an agent")
            } else {
                format!("{field} must be a whole number")
            },
        )
    })
}

/// `Some(trimmed)` unless empty.
pub fn non_empty(value: &str) -> Option<String> {
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

/// The list's enable/disable button: posts `enabled=true|false` to `action`.
pub fn toggle(action: &str, enabled: bool, what: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="enabled" value=(if enabled { "false" } else { "true" });
            button.secondary type="submit" aria-label={ (if enabled { "Disable " } else { "Enable " }) (what) } {
                @if enabled { "Disable" } @else { "Enable" }
            }
        }
    }
}

/// A delete button that asks first (`data-confirm`, dashboard.js).
pub fn delete(action: &str, what: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm={ "Delete " (what) "?" } {
            button.danger type="submit" aria-label={ "Delete " (what) } { "Delete" }
        }
    }
}

/// "enabled" / "disabled" as a status word with its class.
pub fn state(enabled: bool) -> Markup {
    html! {
        @if enabled { span.state.on { "enabled" } } @else { span.state.off { "disabled" } }
    }
}

/// The `enabled` field of a toggle form.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ToggleForm {
    #[serde(default)]
    pub enabled: String,
}

impl ToggleForm {
    pub fn enabled(&self) -> bool {
        self.enabled == "true"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_find_their_field() {
        let f = &["channelBindings", "triggerPatterns", "name"];
        assert!(place("channelBindings.channelId must not be empty", f).get("channelBindings").is_some());
        assert!(place("triggerPatterns: \"(\" is not a valid regular expression", f).get("triggerPatterns").is_some());
        assert!(place("name must not be empty", f).get("name").is_some());
        let conflict = place("a webhook with this name (URL path) already exists", f);
        assert!(conflict.get("name").is_none() && !conflict.form_level().into_string().is_empty());
        assert!(place("names are fine", &["name"]).get("name").is_none(), "a prefix word is not the field");
    }

    #[test]
    fn times_show_in_utc_minutes() {
        assert_eq!(when(Some("2026-12-01T12:34:56Z")), "2026-12-01 12:34 UTC");
        assert_eq!(when(None), "—");
    }
}
