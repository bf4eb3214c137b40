-- Usage rows learn prompt caching and unpriced models (issue 18):
-- cache_read_tokens / cache_write_tokens are the part of input_tokens read from
-- or written to the provider's prompt cache (priced at the cache rates), and
-- cost_usd becomes NULL for a model the price table does not know ("unpriced",
-- never $0).
ALTER TABLE usage ALTER COLUMN cost_usd DROP NOT NULL;
ALTER TABLE usage ALTER COLUMN cost_usd DROP DEFAULT;
ALTER TABLE usage ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
