-- Usage rows learn prompt caching and unpriced models (issue 18):
-- cache_read_tokens / cache_write_tokens are the part of input_tokens read from
-- or written to the provider's prompt cache (priced at the cache rates), and
-- cost_usd becomes NULL for a model the price table does not know ("unpriced",
-- never $0). SQLite cannot drop a NOT NULL constraint, so the table is rebuilt
-- (nothing references usage; its own references and index are recreated).
CREATE TABLE usage_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    agent_id           INTEGER REFERENCES agents(id) ON DELETE SET NULL,
    conversation_id    TEXT,
    job_id             INTEGER,
    provider           TEXT NOT NULL,
    model              TEXT NOT NULL,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL,
    duration_ms        INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0
);
INSERT INTO usage_new (id, account_id, agent_id, conversation_id, job_id, provider, model, input_tokens,
    output_tokens, cost_usd, duration_ms, created_at)
    SELECT id, account_id, agent_id, conversation_id, job_id, provider, model, input_tokens, output_tokens,
           cost_usd, duration_ms, created_at FROM usage;
DROP TABLE usage;
ALTER TABLE usage_new RENAME TO usage;
CREATE INDEX usage_created ON usage (created_at);
