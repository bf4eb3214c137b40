//! Form errors next to their field. The API's validation messages begin with
//! the field's JSON name (`maxTokens must be between 1 and 1000000`, `slug must
//! be 1-64 characters …`), so a refusal is placed by that first word; one that
//! names no field of the form (a 409, "an agent with this slug already exists")
//! is shown above the form — with the API's own text either way.

use maud::{Markup, html};

/// The refusal of one submitted form.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    /// `(field, message)`; field `None` = the form as a whole.
    messages: Vec<(Option<String>, String)>,
}

impl Errors {
    pub fn none() -> Errors {
        Errors::default()
    }

    /// The API's `message`, on the field it names (one of `fields`).
    pub fn from_message(message: &str, fields: &[&str]) -> Errors {
        let first = message.split_whitespace().next().unwrap_or("");
        let field = fields.iter().find(|f| **f == first).map(|f| f.to_string());
        // "a record with the same unique value" when a slug collides: the API's
        // agent route already says which; other conflicts stay form-level.
        let field =
            field.or_else(|| message.contains("slug").then(|| "slug".to_string()).filter(|_| fields.contains(&"slug")));
        Errors { messages: vec![(field, message.to_string())] }
    }

    /// An error on one field.
    pub fn on(field: &str, message: impl Into<String>) -> Errors {
        Errors { messages: vec![(Some(field.to_string()), message.into())] }
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.messages.iter().find(|(f, _)| f.as_deref() == Some(field)).map(|(_, m)| m.as_str())
    }

    /// The error shown next to `field` (an empty `span` keeps the layout).
    /// The input should carry `aria-describedby="{field}-error"`.
    pub fn field(&self, field: &str) -> Markup {
        html! {
            @if let Some(message) = self.get(field) {
                span.field-error id={ (field) "-error" } role="alert" { (message) }
            }
        }
    }

    /// Errors that name no field, above the form.
    pub fn form_level(&self) -> Markup {
        html! {
            @for (_, message) in self.messages.iter().filter(|(f, _)| f.is_none()) {
                p.error role="alert" { (message) }
            }
        }
    }

    /// `aria-invalid` for an input.
    pub fn invalid(&self, field: &str) -> Option<&'static str> {
        self.get(field).map(|_| "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_lands_on_the_field_it_names() {
        let e = Errors::from_message("maxTokens must be between 1 and 1000000", &["name", "maxTokens"]);
        assert_eq!(e.get("maxTokens"), Some("maxTokens must be between 1 and 1000000"));
        assert!(e.form_level().into_string().is_empty());
        let conflict = Errors::from_message("cannot delete the active conductor", &["name"]);
        assert!(conflict.get("name").is_none());
        assert!(conflict.form_level().into_string().contains("cannot delete the active conductor"));
        let slug = Errors::from_message("an agent with this slug already exists", &["slug"]);
        assert!(slug.get("slug").is_some());
        assert!(Errors::on("x", "<b>").field("x").into_string().contains("&lt;b&gt;"), "escaped");
    }
}
