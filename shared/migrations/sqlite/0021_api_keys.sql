-- Scoped API keys for the OpenAI-compatible `/v1` API (issue 21). The key
-- itself is shown once at creation; only its SHA-256 is kept (`key_hash`,
-- hex), with the first characters (`prefix`) so a list can tell keys apart.
-- `agents` is a JSON array of agent slugs the key may use (NULL: all).
-- `last_used_at` is written at most once a minute per key (see
-- `Store::touch_api_key`), so authentication stays a read.
CREATE TABLE IF NOT EXISTS api_keys (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL,
    prefix             TEXT NOT NULL,
    key_hash           TEXT NOT NULL UNIQUE,
    agents             TEXT,
    monthly_budget_usd REAL,
    expires_at         INTEGER,
    is_enabled         INTEGER NOT NULL DEFAULT 1,
    last_used_at       INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- The key a call was made with: a key's spend is the sum of its rows' cost.
-- No foreign key: a revoked (deleted) key's usage keeps its numbers.
ALTER TABLE usage ADD COLUMN api_key_id INTEGER;
CREATE INDEX IF NOT EXISTS usage_api_key ON usage (api_key_id, created_at) WHERE api_key_id IS NOT NULL;
