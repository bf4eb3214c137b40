-- The claim takes pending jobs by (priority, id) and stops at its limit. The
-- old index put run_after between the two, so every claim read and sorted all
-- pending jobs of a priority (SQLite: "USE TEMP B-TREE FOR RIGHT PART OF ORDER
-- BY"); run_after is now checked on the rows the index walk yields.
DROP INDEX IF EXISTS jobs_claim;
CREATE INDEX jobs_claim ON jobs (status, priority, id);
