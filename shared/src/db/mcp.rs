//! MCP servers: their configuration (written by the API) and what workers
//! learned about them (status, last error, tool list — written by workers,
//! read by `GET /api/mcp-servers/{id}/tools` and the dashboard).

use std::collections::BTreeMap;

use super::{Flag, Result, Store, classify, from_json, sql, to_json};
use crate::clock::{now_ms, opt_rfc3339, to_rfc3339};
use crate::domain::mcp::{McpServer, McpServerFields, McpStatus, McpTool, McpToolList};

any_row! {
    struct McpServerRow {
        id: i64,
        name: String,
        transport: String,
        command: Option<String>,
        args: String,
        env: String,
        url: Option<String>,
        headers: String,
        is_enabled: Flag,
        status: String,
        last_error: Option<String>,
        tools: String,
        status_at: Option<i64>,
        created_at: i64,
        updated_at: i64,
    }
}

impl McpServerRow {
    fn into_parts(self) -> Result<(McpServer, Vec<McpTool>)> {
        let tools: Vec<McpTool> = from_json("mcp_servers.tools", &self.tools)?;
        let server = McpServer {
            id: self.id,
            name: self.name,
            transport: self.transport,
            command: self.command,
            args: from_json("mcp_servers.args", &self.args)?,
            env: from_json("mcp_servers.env", &self.env)?,
            url: self.url,
            headers: from_json::<BTreeMap<String, String>>("mcp_servers.headers", &self.headers)?,
            is_enabled: self.is_enabled.0,
            status: self.status,
            last_error: self.last_error,
            status_at: opt_rfc3339(self.status_at),
            created_at: to_rfc3339(self.created_at),
            updated_at: to_rfc3339(self.updated_at),
            revision: self.updated_at,
        };
        Ok((server, tools))
    }
}

const COLUMNS: &str = "id, name, transport, command, args, env, url, headers, is_enabled, status, last_error, tools, \
                       status_at, created_at, updated_at";

impl Store {
    /// Every configured server, in id order.
    pub async fn list_mcp_servers(&self) -> Result<Vec<McpServer>> {
        Ok(self.list_mcp_servers_with_tools().await?.into_iter().map(|(s, _)| s).collect())
    }

    /// Every server with the tools workers last saw it offer.
    pub async fn list_mcp_servers_with_tools(&self) -> Result<Vec<(McpServer, Vec<McpTool>)>> {
        let rows: Vec<McpServerRow> =
            sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM mcp_servers ORDER BY id"))).fetch_all(self.r()).await?;
        rows.into_iter().map(McpServerRow::into_parts).collect()
    }

    pub async fn get_mcp_server(&self, id: i64) -> Result<Option<McpServer>> {
        Ok(self.get_mcp_server_with_tools(id).await?.map(|(s, _)| s))
    }

    pub async fn get_mcp_server_with_tools(&self, id: i64) -> Result<Option<(McpServer, Vec<McpTool>)>> {
        let row: Option<McpServerRow> = sqlx::query_as(sql(format!("SELECT {COLUMNS} FROM mcp_servers WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.w())
            .await?;
        row.map(McpServerRow::into_parts).transpose()
    }

    /// `GET /api/mcp-servers/{id}/tools`.
    pub async fn mcp_tool_list(&self, id: i64) -> Result<Option<McpToolList>> {
        Ok(self.get_mcp_server_with_tools(id).await?.map(|(s, tools)| McpToolList {
            server_id: s.id,
            server: s.name,
            status: s.status,
            last_error: s.last_error,
            status_at: s.status_at,
            tools,
        }))
    }

    /// Inserts a server; a duplicate name is [`super::DbError::Conflict`].
    pub async fn create_mcp_server(&self, f: &McpServerFields) -> Result<McpServer> {
        let row: McpServerRow = sqlx::query_as(sql(format!(
            "INSERT INTO mcp_servers (name, transport, command, args, env, url, headers, is_enabled, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {COLUMNS}"
        )))
        .bind(&f.name)
        .bind(&f.transport)
        .bind(&f.command)
        .bind(to_json(&f.args))
        .bind(to_json(&f.env))
        .bind(&f.url)
        .bind(to_json(&f.headers))
        .bind(f.is_enabled)
        .bind(now_ms())
        .fetch_one(self.w())
        .await
        .map_err(classify)?;
        Ok(row.into_parts()?.0)
    }

    /// Replaces a server's configuration. What workers learned is reset (the
    /// next worker to connect writes it again), since it may describe the old
    /// command or URL.
    pub async fn update_mcp_server(&self, id: i64, f: &McpServerFields) -> Result<Option<McpServer>> {
        let row: Option<McpServerRow> = sqlx::query_as(sql(format!(
            "UPDATE mcp_servers SET name = $1, transport = $2, command = $3, args = $4, env = $5, url = $6, \
             headers = $7, is_enabled = $8, updated_at = $9, status = 'unknown', last_error = NULL, tools = '[]', \
             status_at = NULL WHERE id = $10 RETURNING {COLUMNS}"
        )))
        .bind(&f.name)
        .bind(&f.transport)
        .bind(&f.command)
        .bind(to_json(&f.args))
        .bind(to_json(&f.env))
        .bind(&f.url)
        .bind(to_json(&f.headers))
        .bind(f.is_enabled)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(self.w())
        .await
        .map_err(classify)?;
        row.map(|r| r.into_parts().map(|p| p.0)).transpose()
    }

    pub async fn delete_mcp_server(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM mcp_servers WHERE id = $1").bind(id).execute(self.w()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// A worker's report on a server. `revision` (the configuration's
    /// `updated_at`) guards it: a report about a configuration that was
    /// replaced meanwhile changes nothing.
    pub async fn record_mcp_status(&self, id: i64, revision: i64, s: &McpStatus) -> Result<bool> {
        let now = now_ms();
        let done = match &s.tools {
            Some(tools) => {
                sqlx::query(
                    "UPDATE mcp_servers SET status = $1, last_error = $2, tools = $3, status_at = $4 \
                 WHERE id = $5 AND updated_at = $6",
                )
                .bind(s.status)
                .bind(&s.last_error)
                .bind(to_json(tools))
                .bind(now)
                .bind(id)
                .bind(revision)
                .execute(self.w())
                .await?
            }
            None => sqlx::query(
                "UPDATE mcp_servers SET status = $1, last_error = $2, status_at = $3 WHERE id = $4 AND updated_at = $5",
            )
            .bind(s.status)
            .bind(&s.last_error)
            .bind(now)
            .bind(id)
            .bind(revision)
            .execute(self.w())
            .await?,
        };
        Ok(done.rows_affected() > 0)
    }
}
