//! A fresh database per test, on either backend.

use arvis_shared::db::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test. Postgres databases are dropped on drop;
/// SQLite files go with their temp dir.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("arvis.db").display());
                TestDb { url, backend, pg_name: None, _dir: Some(dir) }
            }
            Backend::Postgres => {
                let name = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
                let admin = postgres_admin_url();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{admin}/postgres"))
                    .await
                    .expect("Postgres must be running for the tests (see README: ./scripts/test.sh starts it)");
                sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                TestDb { url: format!("{admin}/{name}"), backend, pg_name: Some(name), _dir: None }
            }
        }
    }

    /// A connected, migrated store on this database.
    /// A plain pool on the database, for what a test checks behind the store's back.
    pub async fn pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.url).await.expect("connect pool")
    }

    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, 5).await.expect("connect store");
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop is synchronous; psql is on every machine that runs Postgres.
            crate::harness::psql(&postgres_admin_url(), &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
