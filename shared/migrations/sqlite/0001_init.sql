-- Arvis schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql:
-- same tables, columns and meaning. Timestamps are integer milliseconds since
-- the Unix epoch (UTC) in both dialects, so comparisons and sorting are exact
-- and identical on both backends; the API renders them as RFC 3339.
-- Booleans are INTEGER 0/1 here (BOOLEAN in Postgres): sqlx's Any driver
-- refuses SQLite's BOOLEAN column type, see db::Flag. JSON values are TEXT.

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE accounts (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL UNIQUE,
    type               TEXT NOT NULL DEFAULT 'api_key',
    provider           TEXT NOT NULL,
    model              TEXT NOT NULL,
    base_url           TEXT,
    -- The NAME of the environment variable holding the key, never the key.
    api_key_env        TEXT,
    priority           INTEGER NOT NULL DEFAULT 100,
    is_active          INTEGER NOT NULL DEFAULT 1,
    rate_limited_until INTEGER,
    retry_count        INTEGER NOT NULL DEFAULT 0,
    total_messages     INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE agents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    slug          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    model         TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    allowed_tools TEXT NOT NULL DEFAULT '[]',
    temperature   REAL NOT NULL DEFAULT 0.7,
    max_tokens    INTEGER NOT NULL DEFAULT 4096,
    is_active     INTEGER NOT NULL DEFAULT 1,
    created_by    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE bots (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    platform         TEXT NOT NULL,
    token            TEXT NOT NULL,
    default_agent_id INTEGER REFERENCES agents(id) ON DELETE SET NULL,
    is_enabled       INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Which agent answers in which outside channel. Bound through a bot
-- (bot_id set) or directly (bot_id NULL). One agent per (platform, channel).
CREATE TABLE channel_bindings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id      INTEGER REFERENCES bots(id) ON DELETE CASCADE,
    platform    TEXT NOT NULL,
    channel_id  TEXT NOT NULL,
    agent_id    INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    permissions TEXT NOT NULL DEFAULT 'full',
    created_at  INTEGER NOT NULL,
    UNIQUE (platform, channel_id)
);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY NOT NULL,
    agent_id        INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    platform        TEXT NOT NULL,
    channel_id      TEXT NOT NULL,
    user_id         TEXT,
    user_name       TEXT,
    status          TEXT NOT NULL DEFAULT 'active',
    message_count   INTEGER NOT NULL DEFAULT 0,
    total_tokens    INTEGER NOT NULL DEFAULT 0,
    started_at      INTEGER NOT NULL,
    last_message_at INTEGER NOT NULL
);
CREATE INDEX conversations_route ON conversations (agent_id, platform, channel_id, status);
CREATE INDEX conversations_recent ON conversations (last_message_at);
-- One active conversation per (agent, platform, channel): concurrent first
-- messages race on this index, not on application code.
CREATE UNIQUE INDEX conversations_one_active ON conversations (agent_id, platform, channel_id) WHERE status = 'active';

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    token_estimate  INTEGER NOT NULL DEFAULT 0,
    job_id          INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
-- At most one assistant reply per job: the database itself refuses a duplicate.
CREATE UNIQUE INDEX messages_one_reply_per_job ON messages (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE memory_facts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id        INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    conversation_id TEXT,
    category        TEXT NOT NULL,
    content         TEXT NOT NULL,
    confidence      REAL NOT NULL DEFAULT 1.0,
    access_count    INTEGER NOT NULL DEFAULT 0,
    last_accessed   INTEGER,
    created_at      INTEGER NOT NULL,
    UNIQUE (agent_id, category, content)
);

CREATE TABLE memory_state (
    agent_id   INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, key)
);

CREATE TABLE compactions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    agent_id        INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    summary         TEXT NOT NULL,
    messages_before INTEGER NOT NULL,
    messages_after  INTEGER NOT NULL,
    tokens_saved    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE workflows (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    agent_id     INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    schedule     TEXT NOT NULL,
    prompt       TEXT NOT NULL,
    channel_id   TEXT,
    platform     TEXT,
    is_enabled   INTEGER NOT NULL DEFAULT 1,
    last_run_at  INTEGER,
    next_run_at  INTEGER,
    skipped_runs INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE webhooks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL,
    path              TEXT NOT NULL UNIQUE,
    agent_id          INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    secret            TEXT,
    prompt_template   TEXT NOT NULL DEFAULT '{{payload}}',
    channel_id        TEXT,
    platform          TEXT,
    is_enabled        INTEGER NOT NULL DEFAULT 1,
    last_triggered_at INTEGER,
    trigger_count     INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- Delivery ids already accepted per webhook (replay protection).
CREATE TABLE webhook_deliveries (
    webhook_id  INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, delivery_id)
);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id         INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    conversation_id  TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    kind             TEXT NOT NULL DEFAULT 'message',
    priority         INTEGER NOT NULL DEFAULT 5,
    status           TEXT NOT NULL DEFAULT 'pending',
    payload          TEXT NOT NULL,
    result           TEXT,
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    run_after        INTEGER NOT NULL,
    locked_by        TEXT,
    lease_expires_at INTEGER,
    workflow_id      INTEGER REFERENCES workflows(id) ON DELETE SET NULL,
    webhook_id       INTEGER REFERENCES webhooks(id) ON DELETE SET NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER
);
CREATE INDEX jobs_claim ON jobs (status, priority, run_after, id);
CREATE INDEX jobs_conversation ON jobs (conversation_id, status);
CREATE INDEX jobs_workflow ON jobs (workflow_id, status);

CREATE TABLE skills (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    category         TEXT NOT NULL DEFAULT '',
    content          TEXT NOT NULL,
    trigger_keywords TEXT NOT NULL DEFAULT '[]',
    trigger_patterns TEXT NOT NULL DEFAULT '[]',
    required_tools   TEXT NOT NULL DEFAULT '[]',
    is_enabled       INTEGER NOT NULL DEFAULT 1,
    source           TEXT NOT NULL DEFAULT 'community',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE usage (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id      INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    agent_id        INTEGER REFERENCES agents(id) ON DELETE SET NULL,
    conversation_id TEXT,
    job_id          INTEGER,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd        REAL NOT NULL DEFAULT 0,
    duration_ms     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);
CREATE INDEX usage_created ON usage (created_at);

CREATE TABLE logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    level       TEXT NOT NULL,
    level_num   INTEGER NOT NULL,
    service     TEXT NOT NULL,
    target      TEXT NOT NULL,
    msg         TEXT NOT NULL,
    fields      TEXT NOT NULL DEFAULT '{}',
    agent_id    INTEGER,
    job_id      INTEGER,
    duration_ms INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX logs_recent ON logs (created_at);
