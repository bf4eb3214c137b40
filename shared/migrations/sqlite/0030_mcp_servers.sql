-- MCP servers (issue 23): where agents' outside tools come from. The API
-- holds environment-variable NAMES only (`env`: names passed to a stdio
-- child; `headers`: header name -> variable name), never values. The status
-- columns are written by workers (the gateway connects to no MCP server):
-- the last `tools/list` seen, whether the last connect worked, its error.
-- With several workers the last one to write wins; each refreshes it when it
-- connects, re-lists or fails.
CREATE TABLE IF NOT EXISTS mcp_servers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL UNIQUE,
    transport        TEXT NOT NULL,
    command          TEXT,
    args             TEXT NOT NULL DEFAULT '[]',
    env              TEXT NOT NULL DEFAULT '[]',
    url              TEXT,
    headers          TEXT NOT NULL DEFAULT '{}',
    is_enabled       INTEGER NOT NULL DEFAULT 1,
    status           TEXT NOT NULL DEFAULT 'unknown',
    last_error       TEXT,
    tools            TEXT NOT NULL DEFAULT '[]',
    status_at        INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
