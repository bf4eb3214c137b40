//! Model prices and context windows: one [`PriceTable`] per worker, read from
//! LiteLLM's `model_prices_and_context_window.json` — a snapshot trimmed and
//! embedded at build time (`model_prices.json`, made by
//! `scripts/refresh-model-prices.sh`), extended or overridden entry by entry
//! by the file `MODEL_PRICES_FILE` names (the same format; LiteLLM's whole
//! file works too).
//!
//! A model is found by its exact id, then by the provider-prefixed id
//! (`gemini/…`, `ollama/…`), then without a vendor path (OpenRouter's
//! `anthropic/claude-sonnet-4.5`, dots read as dashes), then by its dated
//! aliases (`claude-opus-4-7-20260416` ↔ `claude-opus-4-7`, `gpt-5-2025-08-07`
//! ↔ `gpt-5`). A model the table does not know is **unpriced**: its cost is
//! `None` (NULL in the usage row, counted apart in `GET /api/usage`), never
//! $0, and the worker warns once per model.
//!
//! Tokens are priced as the providers bill them: of the input tokens, those
//! read from the prompt cache at `cache_read_input_token_cost` and those
//! written to it at `cache_creation_input_token_cost` (each falling back to
//! the input price when the table has none), the rest at the input price;
//! output (thinking included) at the output price. Long-context tiers
//! (`…_above_200k_tokens`) are not applied.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;

/// The embedded snapshot.
const SNAPSHOT: &str = include_str!("model_prices.json");

/// The window of a model the table does not know (or knows without one).
pub const DEFAULT_WINDOW: i64 = 128_000;

/// One model's prices (USD per token) and context window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelPrice {
    #[serde(default)]
    pub input_cost_per_token: Option<f64>,
    #[serde(default)]
    pub output_cost_per_token: Option<f64>,
    #[serde(default)]
    pub cache_read_input_token_cost: Option<f64>,
    #[serde(default)]
    pub cache_creation_input_token_cost: Option<f64>,
    #[serde(default)]
    pub max_input_tokens: Option<i64>,
}

/// The token counts of one call (see [`crate::llm::LlmResponse`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All input tokens, cached ones included.
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("MODEL_PRICES_FILE {path}: {reason}")]
    File { path: String, reason: String },
    #[error("the embedded price table is broken: {0}")]
    Embedded(String),
}

/// Prices and windows by model id, lower-case.
#[derive(Debug)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
    /// Models already warned about as unpriced (one warning each per process).
    warned: Mutex<HashSet<String>>,
}

/// Entries of a LiteLLM-format document; keys that are not model entries
/// (`sample_spec`, our `_snapshot`) and entries that do not parse are skipped.
fn parse(text: &str) -> Result<HashMap<String, ModelPrice>, String> {
    let doc: HashMap<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(doc
        .into_iter()
        .filter(|(k, _)| !k.starts_with('_') && k != "sample_spec")
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), serde_json::from_value::<ModelPrice>(v).ok()?)))
        .filter(|(_, p)| p.input_cost_per_token.is_some() || p.max_input_tokens.is_some())
        .collect())
}

/// `…-20250929`, `…-2025-08-07`, `…@20250929`, `…-latest`: a dated (or moving) alias's suffix.
fn strip_date(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let n = bytes.len();
    if n > 9 && (bytes[n - 9] == b'-' || bytes[n - 9] == b'@') && digits(&bytes[n - 8..]) {
        return Some(&name[..n - 9]);
    }
    if n > 11 && bytes[n - 11] == b'-' && digits(&bytes[n - 10..n - 6]) && bytes[n - 6] == b'-' && bytes[n - 3] == b'-'
    {
        let (m, d) = (&bytes[n - 5..n - 3], &bytes[n - 2..]);
        if digits(m) && digits(d) {
            return Some(&name[..n - 11]);
        }
    }
    name.strip_suffix("-latest")
}

/// The key prefix LiteLLM files a provider's models under.
fn prefix(provider: &str) -> Option<&'static str> {
    match provider {
        "google" => Some("gemini/"),
        "ollama" => Some("ollama/"),
        "openrouter" => Some("openrouter/"),
        "anthropic" => Some("anthropic/"),
        "openai" => Some("openai/"),
        _ => None,
    }
}

impl PriceTable {
    /// The embedded snapshot alone.
    pub fn embedded() -> Result<PriceTable, PricingError> {
        let models = parse(SNAPSHOT).map_err(PricingError::Embedded)?;
        Ok(PriceTable { models, warned: Mutex::default() })
    }

    /// The embedded snapshot, with the entries of `override_file` (when set) added or replacing.
    pub fn load(override_file: Option<&Path>) -> Result<PriceTable, PricingError> {
        let mut table = PriceTable::embedded()?;
        if let Some(path) = override_file {
            let err = |reason: String| PricingError::File { path: path.display().to_string(), reason };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let extra = parse(&text).map_err(err)?;
            tracing::info!(path = %path.display(), models = extra.len(), "model prices extended from MODEL_PRICES_FILE");
            table.models.extend(extra);
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    fn exact(&self, provider: &str, name: &str) -> Option<&ModelPrice> {
        self.models.get(name).or_else(|| prefix(provider).and_then(|p| self.models.get(&format!("{p}{name}"))))
    }

    /// The entry of `model` as `provider` names it (`claude-opus-4-7`, `gemini-3.5-flash`,
    /// `anthropic/claude-sonnet-4.5` on OpenRouter), or `None`.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        let full = model.trim().to_ascii_lowercase();
        let full = full.strip_prefix("models/").unwrap_or(&full);
        let last = full.rsplit('/').next().unwrap_or(full);
        let mut names = vec![full.to_string(), last.to_string()];
        // OpenRouter spells versions with dots (claude-sonnet-4.5); Anthropic with dashes.
        if last.starts_with("claude") {
            names.push(last.replace('.', "-"));
        }
        for name in &names {
            if let Some(p) = self.exact(provider, name) {
                return Some(p);
            }
        }
        for name in &names {
            // A dated id whose table entry is undated…
            if let Some(p) = strip_date(name).and_then(|undated| self.exact(provider, undated)) {
                return Some(p);
            }
            // …or an undated id whose table has only dated entries (the newest wins).
            let dated = self
                .models
                .iter()
                .filter(|(k, _)| {
                    let k = prefix(provider).and_then(|p| k.strip_prefix(p)).unwrap_or(k);
                    k.len() > name.len() && k.starts_with(name.as_str()) && strip_date(k) == Some(name.as_str())
                })
                .max_by(|a, b| a.0.cmp(b.0));
            if let Some((_, p)) = dated {
                return Some(p);
            }
        }
        None
    }

    /// The cost of a call in USD, or `None` when the model is unpriced (warned once per model).
    pub fn cost(&self, provider: &str, model: &str, t: Tokens) -> Option<f64> {
        let priced = self.lookup(provider, model).and_then(|p| {
            let input = p.input_cost_per_token?;
            let output = p.output_cost_per_token.unwrap_or(input);
            let read = p.cache_read_input_token_cost.unwrap_or(input);
            let write = p.cache_creation_input_token_cost.unwrap_or(input);
            let (cache_read, cache_write) = (t.cache_read.max(0), t.cache_write.max(0));
            let fresh = (t.input.max(0) - cache_read - cache_write).max(0);
            Some(
                fresh as f64 * input
                    + cache_read as f64 * read
                    + cache_write as f64 * write
                    + t.output.max(0) as f64 * output,
            )
        });
        if priced.is_none() {
            let key = format!("{provider}/{model}");
            let first = self.warned.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
            if first {
                tracing::warn!(
                    provider,
                    model,
                    "no price for this model in the price table: its usage is recorded as unpriced \
                     (add it with MODEL_PRICES_FILE)"
                );
            }
        }
        priced
    }

    /// The context window of an agent's model (`provider/model`, or a bare
    /// model name), from the table's `max_input_tokens`; [`DEFAULT_WINDOW`] when unknown.
    pub fn context_window(&self, spec: &str) -> i64 {
        let (provider, model) = arvis_shared::domain::split_model(spec);
        self.lookup(provider, model)
            .or_else(|| self.lookup("", spec))
            .and_then(|p| p.max_input_tokens)
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::embedded().unwrap()
    }

    fn per_million(p: &ModelPrice) -> (f64, f64) {
        let m = |x: Option<f64>| (x.unwrap_or(f64::NAN) * 1e6 * 1e6).round() / 1e6;
        (m(p.input_cost_per_token), m(p.output_cost_per_token))
    }

    #[test]
    fn the_snapshot_parses_and_is_not_empty() {
        let t = table();
        assert!(t.len() > 100, "{}", t.len());
        assert!(t.lookup("", "_snapshot").is_none() && t.lookup("", "sample_spec").is_none());
    }

    #[test]
    fn dated_suffixes() {
        assert_eq!(strip_date("claude-opus-4-7-20260416"), Some("claude-opus-4-7"));
        assert_eq!(strip_date("gpt-5-mini-2025-08-07"), Some("gpt-5-mini"));
        assert_eq!(strip_date("claude-opus-4-7@20260416"), Some("claude-opus-4-7"));
        assert_eq!(strip_date("gemini-pro-latest"), Some("gemini-pro"));
        assert_eq!(strip_date("claude-opus-4-7"), None);
        assert_eq!(strip_date("gpt-4o-mini"), None);
    }

    #[test]
    fn prices_by_exact_id_provider_prefix_vendor_path_and_dated_alias() {
        let t = table();
        let price = |provider: &str, model: &str| t.lookup(provider, model).map(per_million);
        // Opus 4.5's list price is $5/$25 (the old substring table said $15/$75).
        assert_eq!(price("anthropic", "claude-opus-4-5"), Some((5.0, 25.0)));
        assert_eq!(price("anthropic", "claude-haiku-4-5-20251001"), Some((1.0, 5.0)));
        assert_eq!(price("openai", "gpt-5-mini"), Some((0.25, 2.0)));
        // A dated id the table lacks finds its undated entry, and the reverse.
        assert_eq!(price("anthropic", "claude-sonnet-5-5-20261015"), price("anthropic", "claude-sonnet-5-5"));
        assert!(price("anthropic", "claude-sonnet-5-5").is_some());
        assert_eq!(price("anthropic", "claude-haiku-4-5"), Some((1.0, 5.0)));
        // Gemini API models are filed under gemini/.
        assert_eq!(price("google", "gemini-2.5-flash"), Some((0.3, 2.5)));
        assert_eq!(price("google", "models/gemini-2.5-flash"), Some((0.3, 2.5)));
        // OpenRouter's vendor path and dotted versions.
        assert_eq!(price("openrouter", "anthropic/claude-haiku-4.5"), Some((1.0, 5.0)));
        // Unknown: unpriced, not free.
        assert_eq!(price("openai", "gpt-imaginary-9"), None);
        assert_eq!(t.cost("ollama", "qwen-unknown:7b", Tokens { input: 10, output: 10, ..Default::default() }), None);
    }

    #[test]
    fn cached_tokens_are_priced_at_cache_rates() {
        let t = table();
        // claude-opus-4-5: $5 in, $25 out, $0.50 cache read, $6.25 cache write per Mtok.
        let tokens = Tokens {
            input: 1_000_000 + 2_000_000 + 100_000,
            output: 10_000,
            cache_read: 2_000_000,
            cache_write: 100_000,
        };
        let cost = t.cost("anthropic", "claude-opus-4-5", tokens).unwrap();
        let expected = 5.0 + 2.0 * 0.5 + 0.1 * 6.25 + 0.01 * 25.0;
        assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    }

    #[test]
    fn windows_come_from_the_table() {
        let t = table();
        assert_eq!(t.context_window("anthropic/claude-haiku-4-5-20251001"), 200_000);
        assert_eq!(t.context_window("openai/gpt-4o-mini"), 128_000);
        assert_eq!(t.context_window("google/gemini-2.5-pro"), 1_048_576);
        assert_eq!(t.context_window("anthropic/claude-sonnet-5-5"), 1_000_000);
        assert_eq!(t.context_window("ollama/some-local-model"), DEFAULT_WINDOW);
    }

    #[test]
    fn an_override_file_adds_and_replaces() {
        let dir = std::env::temp_dir().join(format!("arvis-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("prices.json");
        std::fs::write(
            &path,
            r#"{"sample_spec": {"input_cost_per_token": "x"}, "my-local-model": {"input_cost_per_token": 0, "output_cost_per_token": 0, "max_input_tokens": 32768},
                "gpt-5-mini": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}"#,
        )
        .unwrap();
        let t = PriceTable::load(Some(&path)).unwrap();
        assert_eq!(t.cost("ollama", "my-local-model", Tokens { input: 5, output: 5, ..Default::default() }), Some(0.0));
        assert_eq!(t.context_window("ollama/my-local-model"), 32_768);
        assert_eq!(t.lookup("openai", "gpt-5-mini").map(per_million), Some((1.0, 2.0)));
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(PriceTable::load(Some(&path)), Err(PricingError::File { .. })));
        assert!(PriceTable::load(Some(&dir.join("missing.json"))).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
