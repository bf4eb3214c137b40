-- Per-agent reasoning settings (issue 18): reasoning_effort (none, minimal,
-- low, medium, high, xhigh, max; NULL = the model's default) and show_thinking
-- (the model's readable thinking shown with the reply; off by default).
ALTER TABLE agents ADD COLUMN reasoning_effort TEXT;
ALTER TABLE agents ADD COLUMN show_thinking BOOLEAN NOT NULL DEFAULT FALSE;
