//! Prices per million tokens (USD, input/output), matched by substring of the
//! model name; unknown models cost 0. The most specific names come first
//! (`gpt-4.1-mini` before `gpt-4.1`, `gpt-4o-mini` before `gpt-4o`).

/// (substring, input $/Mtok, output $/Mtok)
const PRICES: &[(&str, f64, f64)] = &[
    ("opus-4", 15.0, 75.0),
    ("sonnet-4", 3.0, 15.0),
    ("haiku-4-5", 1.0, 5.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4o", 2.5, 10.0),
    ("o4-mini", 1.1, 4.4),
    ("o3", 2.0, 8.0),
    ("gemini-2.5-pro", 1.25, 10.0),
    ("gemini-2.5-flash", 0.3, 2.5),
    ("gemini-2.0-flash", 0.1, 0.4),
];

/// The (input, output) price per million tokens of a model, when known.
pub fn price(model: &str) -> Option<(f64, f64)> {
    let m = model.to_ascii_lowercase();
    PRICES.iter().find(|(name, _, _)| m.contains(name)).map(|(_, i, o)| (*i, *o))
}

/// The cost of one call in USD.
pub fn cost_usd(model: &str, input_tokens: i64, output_tokens: i64) -> f64 {
    match price(model) {
        Some((i, o)) => (input_tokens.max(0) as f64 * i + output_tokens.max(0) as f64 * o) / 1_000_000.0,
        None => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_names_win_and_unknown_is_free() {
        assert_eq!(price("gpt-4o-mini-2024-07-18"), Some((0.15, 0.6)));
        assert_eq!(price("gpt-4o"), Some((2.5, 10.0)));
        assert_eq!(price("gpt-4.1-mini"), Some((0.4, 1.6)));
        assert_eq!(price("claude-haiku-4-5-20251001"), Some((1.0, 5.0)));
        assert_eq!(price("anthropic/claude-sonnet-4"), Some((3.0, 15.0)));
        assert_eq!(price("o4-mini"), Some((1.1, 4.4)));
        assert_eq!(cost_usd("qwen2.5-coder:7b", 1000, 1000), 0.0);
        assert!((cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) - 0.75).abs() < 1e-9);
    }
}
