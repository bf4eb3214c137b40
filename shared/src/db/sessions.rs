//! Dashboard sessions (`dashboard_sessions`): created at login, looked up on
//! every cookie-authenticated request, deleted at logout. The token itself
//! is never stored — only its random session id.

use super::{Result, Store};

impl Store {
    /// Records a new session and forgets the expired ones (a handful of rows:
    /// one per login within the last 7 days).
    pub async fn create_session(&self, id: &str, now: i64, expires_at: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO dashboard_sessions (id, created_at, expires_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(super::classify)?;
        tx.commit().await?;
        Ok(())
    }

    /// True while the session exists (not logged out) and has not expired.
    pub async fn session_active(&self, id: &str, now: i64) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT expires_at FROM dashboard_sessions WHERE id = $1 AND expires_at > $2")
                .bind(id)
                .bind(now)
                .fetch_optional(self.r())
                .await?;
        Ok(found.is_some())
    }

    /// Ends a session; false when there was none.
    pub async fn delete_session(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM dashboard_sessions WHERE id = $1").bind(id).execute(self.w()).await?;
        Ok(done.rows_affected() > 0)
    }
}
