-- jobs.webhook_id references webhooks ON DELETE SET NULL, and had no index:
-- deleting a webhook made the database read the whole jobs table to find its
-- jobs. Only webhook-started jobs carry one, hence partial.
CREATE INDEX IF NOT EXISTS jobs_webhook ON jobs (webhook_id) WHERE webhook_id IS NOT NULL;
