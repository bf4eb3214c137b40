-- Rate limits shared by every gateway replica (login throttle, inbound webhook
-- quota): one row per counted event, keyed by what is limited (a client
-- address, a webhook), counted over a sliding window. Before, each gateway
-- counted on its own, so N replicas allowed N times the attempts.
CREATE TABLE IF NOT EXISTS rate_events (
    key TEXT NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_events_key_at ON rate_events (key, at);
CREATE INDEX IF NOT EXISTS rate_events_at ON rate_events (at);
