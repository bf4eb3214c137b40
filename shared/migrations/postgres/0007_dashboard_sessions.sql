-- Dashboard sessions: the arvis-token cookie carries a session id (sid), and
-- every request presenting it is checked here, on every gateway replica and
-- the WebSocket bridge. Logout deletes the row, so the same token presented
-- again is refused at once, not after its 7 days.
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS dashboard_sessions_expiry ON dashboard_sessions (expires_at);
