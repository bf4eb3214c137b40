//! Size limits on what users send, defined once. Every entry point and every
//! validator uses these constants, so a limit changes in one place and the
//! error texts stay the same wherever the limit is hit.

/// Longest text given to a model in one piece, in characters: a chat message
/// (REST, WebSocket, bots, `/v1`), a workflow prompt, a rendered webhook
/// prompt, an agent's system prompt, a delegated task. 100 000 characters is
/// ~28 k tokens by the original's estimate — a long document pasted in, well
/// inside every supported model's context window.
pub const MAX_MESSAGE_CHARS: usize = 100_000;

/// Longest channel id, user id, user name or display name. Platform ids are far
/// shorter (Discord snowflakes 19 digits, Slack ids 11, Matrix room ids ~50);
/// the limit keeps abusive values out of indexes and logs.
pub const MAX_ID_CHARS: usize = 200;

/// Longest platform message id accepted for de-duplication (Telegram update
/// ids, Discord snowflakes, Slack `ts`, e-mail `Message-ID` headers ≤ 998).
pub const MAX_EXTERNAL_ID_CHARS: usize = 1_000;

/// Checks an id-like value: 1–[`MAX_ID_CHARS`] characters, no control characters.
pub fn check_id(field: &str, value: &str) -> Result<(), super::Invalid> {
    if value.is_empty() || value.chars().count() > MAX_ID_CHARS || value.chars().any(char::is_control) {
        return Err(super::Invalid::new(format!(
            "{field} must be 1-{MAX_ID_CHARS} characters without control characters"
        )));
    }
    Ok(())
}
