-- Spend budgets (issue 21): optional limits in USD per UTC day and calendar
-- month on agents and workflows (API keys have theirs in 0021). Spend is
-- summed from `usage` at check time; these indexes keep the sums to the rows
-- of one agent / one job. A workflow run refused for its budget counts in
-- `skipped_runs` and says why in `last_error`.
ALTER TABLE agents ADD COLUMN daily_budget_usd REAL;
ALTER TABLE agents ADD COLUMN monthly_budget_usd REAL;
ALTER TABLE workflows ADD COLUMN daily_budget_usd REAL;
ALTER TABLE workflows ADD COLUMN monthly_budget_usd REAL;
ALTER TABLE workflows ADD COLUMN last_error TEXT;
CREATE INDEX IF NOT EXISTS usage_agent_created ON usage (agent_id, created_at);
CREATE INDEX IF NOT EXISTS usage_job ON usage (job_id);
