-- The worker's history read checks the conversation's latest compaction on every run.
CREATE INDEX IF NOT EXISTS compactions_conversation ON compactions (conversation_id, id);
