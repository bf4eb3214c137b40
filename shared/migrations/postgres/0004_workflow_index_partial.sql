-- Chat jobs have no workflow, yet each one put its NULL workflow_id into this
-- index and moved it on every status change: three index updates per chat
-- (enqueue, claim, finish) that no query reads. Every query on workflow_id
-- asks for given ids (=, IN, and the foreign key's ON DELETE SET NULL), which
-- a partial index serves.
DROP INDEX IF EXISTS jobs_workflow;
CREATE INDEX jobs_workflow ON jobs (workflow_id, status) WHERE workflow_id IS NOT NULL;
