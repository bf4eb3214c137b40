-- A reply's effects (memory facts, state, delegations, conductor actions),
-- recorded as JSON in the same write that stores the reply and completes the
-- job, and applied later in one transaction that also sets
-- effects_applied_at. Before, they were applied after the reply's
-- transaction and a crash in between lost them; now a sweep applies what a
-- dead worker left, exactly once. NULL effects: the reply had no tags (the
-- common case, which keeps its single write).
ALTER TABLE jobs ADD COLUMN effects TEXT;
ALTER TABLE jobs ADD COLUMN effects_applied_at BIGINT;
-- The sweep's look-up: only recorded, unapplied effects are in this index, so
-- it stays tiny and untagged replies never touch it.
CREATE INDEX IF NOT EXISTS jobs_effects_unapplied ON jobs (completed_at)
    WHERE effects IS NOT NULL AND effects_applied_at IS NULL;
