-- Per-bot platform settings (issue #19) as a JSON object, e.g. a Slack bot's
-- app-level token variable: {"appToken":"SLACK_APP_TOKEN_2"}. Names of
-- variables only, never a secret. NULL: no settings.
ALTER TABLE bots ADD COLUMN settings TEXT;
