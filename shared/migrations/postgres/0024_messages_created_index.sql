-- The dashboard's overview counts messages of the last 24 hours and per day of
-- the last 7 (shared/src/db/dashboard.rs); without this index both read every
-- message ever stored.
CREATE INDEX IF NOT EXISTS messages_created ON messages (created_at);
-- An agent's conversations, newest first (the dashboard's agent page).
CREATE INDEX IF NOT EXISTS conversations_agent_recent ON conversations (agent_id, last_message_at);
