//! What the OpenAPI document says about the rules the validators enforce,
//! where a derive attribute cannot say it: the entries of a list (utoipa has
//! no per-item bounds) and the platforms a bot may be on.
//!
//! Why this module exists: a client generated from the document, or a fuzzer
//! with the positive-data check (`scripts/fuzz-api.sh`), must find every rule
//! the server checks in the document — an entry that may not be blank, a list
//! of at most 100 — so that a request valid by the document is not refused.
//! The validators in the sibling modules stay the source of truth; each helper
//! here names the check it mirrors. Rules no schema can state (a regular
//! expression that must compile, a cron line, an id that must name a row) are
//! listed in RELIABILITY.md.

use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

/// At least one character that is not whitespace (`value.trim().is_empty()` is refused).
/// Spelled out rather than `\S`: Rust's whitespace (Unicode White_Space) is
/// neither ECMAScript's `\s` (which adds U+FEFF and lacks U+0085) nor Python's
/// (which adds U+001C–U+001F), and the document must mean what `trim` means.
/// The `#[schema(pattern = …)]` attributes of the domain types repeat this class
/// (utoipa takes only literals there).
pub const NOT_BLANK: &str = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// A list of non-blank strings of at most `max_len` characters, at most
/// `max_items` long, or `null` (the fields are optional: `null` is "not given").
fn entries(max_items: usize, max_len: usize) -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(max_len))
                .pattern(Some(NOT_BLANK)),
        )
        .max_items(Some(max_items))
}

/// `allowedTools` ([`super::agent::AgentFields::validate`]): ≤ 100 entries of ≤ 100 characters.
pub fn tool_list() -> ArrayBuilder {
    entries(100, 100)
}

/// `triggerKeywords` and `requiredTools` of a skill: ≤ 100 entries of ≤ 100 characters.
pub fn keyword_list() -> ArrayBuilder {
    entries(100, 100)
}

/// `triggerPatterns` of a skill: ≤ 50 regular expressions of ≤ 500 characters
/// (that each compiles is a rule the schema cannot state).
pub fn pattern_list() -> ArrayBuilder {
    entries(50, 500)
}

/// The platforms of [`super::connectors::CONNECTORS`], for the document (the
/// code keeps platforms as strings; a unit test checks the two lists agree).
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum BotPlatform {
    Discord,
    Telegram,
    Slack,
    Whatsapp,
    Matrix,
    Sms,
    Email,
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema as _;

    #[test]
    fn not_blank_means_what_trim_means() {
        let class = regex::Regex::new(super::NOT_BLANK).unwrap();
        let mut checked = 0;
        for c in (0..=0x3100u32).chain([0xFEFF, 0x1F600]).filter_map(char::from_u32) {
            let mut buf = [0u8; 4];
            let blank = c.encode_utf8(&mut buf).trim().is_empty();
            assert_eq!(class.is_match(c.encode_utf8(&mut buf)), !blank, "U+{:04X}", c as u32);
            checked += 1;
        }
        assert!(checked > 12_000);
    }

    #[test]
    fn the_documented_platforms_are_the_connectors() {
        let doc = serde_json::to_value(super::BotPlatform::schema()).unwrap_or_default();
        let documented: Vec<&str> =
            doc["enum"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        let known: Vec<&str> = super::super::connectors::platforms().collect();
        assert_eq!(documented, known);
    }
}
