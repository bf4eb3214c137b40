-- Chat-platform connectors (issue #19): what a running bot reports, the lease
-- that makes exactly one bridge hold it, the replies it still owes and the
-- durable outbox its replies go out through.

-- What the holder of the bot reports (`running` | `stopped` | `error`) and
-- why, never a token.
ALTER TABLE bots ADD COLUMN status TEXT NOT NULL DEFAULT 'stopped';
ALTER TABLE bots ADD COLUMN last_error TEXT;
ALTER TABLE bots ADD COLUMN status_at INTEGER;

-- One row per bot: who holds it until when. `epoch` grows by one with every
-- new holder; every cursor write names the epoch it was taken under, so a
-- paused old holder cannot overwrite what the new one wrote. `cursor` is the
-- platform's resume point (Telegram offset, Discord session and seq) as JSON.
CREATE TABLE bot_leases (
    bot_id      INTEGER PRIMARY KEY NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    holder      TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    cursor      TEXT
);

-- Seeding from the environment happens once per (platform, token variable):
-- a seeded bot the user deleted is not re-created.
CREATE TABLE bot_seeds (
    platform  TEXT NOT NULL,
    token     TEXT NOT NULL,
    seeded_at INTEGER NOT NULL,
    PRIMARY KEY (platform, token)
);

-- Jobs whose answer a bot still owes: written right after the intake took the
-- message in (and again, idempotently, when the platform redelivers it), and
-- removed in the transaction that writes the reply's outbox rows.
CREATE TABLE bot_replies (
    bot_id     INTEGER NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    job_id     INTEGER NOT NULL,
    channel_id TEXT NOT NULL,
    reply_to   TEXT,
    thread_id  TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (bot_id, job_id)
);

-- The outbox: one row per message to send (a reply chunk, a notice).
-- `dedupe_key` (`job:<id>:<chunk>`, `notice:<platform message id>`) is unique
-- per bot, so re-deriving a reply after a takeover writes nothing twice.
CREATE TABLE deliveries (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id              INTEGER NOT NULL REFERENCES bots(id) ON DELETE CASCADE,
    platform            TEXT NOT NULL,
    channel_id          TEXT NOT NULL,
    job_id              INTEGER,
    chunk_index         INTEGER NOT NULL,
    dedupe_key          TEXT NOT NULL,
    content             TEXT NOT NULL,
    reply_to            TEXT,
    thread_id           TEXT,
    status              TEXT NOT NULL DEFAULT 'pending',
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    next_attempt_at     INTEGER NOT NULL,
    platform_message_id TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    sent_at             INTEGER,
    UNIQUE (bot_id, dedupe_key)
);
CREATE INDEX deliveries_bot_pending ON deliveries (bot_id, status, id);
CREATE INDEX deliveries_status ON deliveries (status, id);
