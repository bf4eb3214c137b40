-- Platform message ids already taken in (the chat intake's de-duplication): a
-- bot that sees the same Telegram update, Discord message or e-mail twice
-- (a redelivery after a reconnect, two replicas during a lease hand-over)
-- enqueues it once. Written in the transaction that stores the message and
-- its job; the ids are copied, not referenced, so deleting a conversation
-- does not make its messages welcome again.
CREATE TABLE IF NOT EXISTS inbound_messages (
    platform        TEXT NOT NULL,
    channel_id      TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_id      INTEGER NOT NULL,
    job_id          INTEGER NOT NULL,
    agent_id        INTEGER NOT NULL,
    priority        INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    PRIMARY KEY (platform, channel_id, external_id)
);
CREATE INDEX IF NOT EXISTS inbound_messages_received ON inbound_messages (received_at);
