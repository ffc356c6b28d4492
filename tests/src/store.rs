//! Stores for tests: a SQLite file of the test's own, or a Postgres schema of its own in the machine's `test`
//! database (127.0.0.1:5432, user `postgres`, trust auth: what CI and every dev machine run). Both are removed
//! when dropped.

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database};

/// The Postgres every test machine runs; `TOLLGATE_TEST_POSTGRES` overrides it.
pub fn postgres_base_url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A SQLite database file in the temp directory.
pub struct TempSqlite {
    path: PathBuf,
}

impl TempSqlite {
    pub fn new() -> TempSqlite {
        let path = std::env::temp_dir().join(format!("tollgate-test-{}.db", uuid::Uuid::new_v4().simple()));
        TempSqlite { path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.path.display())
    }
}

impl Default for TempSqlite {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// A fresh schema in the test Postgres; gateways given [`PgSchema::url`] keep all their tables in it.
pub struct PgSchema {
    name: String,
}

/// Runs `sql` on the test Postgres from a thread of its own (tests may already be inside a runtime).
fn execute(sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let db = Database::connect(postgres_base_url()).await.map_err(|e| e.to_string())?;
            db.execute_unprepared(&sql).await.map_err(|e| e.to_string())?;
            db.close().await.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "the Postgres thread panicked".to_owned())?
}

impl PgSchema {
    /// Panics (fails the test) when Postgres is not reachable: these tests never skip.
    pub fn new() -> PgSchema {
        let name = format!("tollgate_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = execute(format!("CREATE SCHEMA {name}")) {
            panic!("the test Postgres at {} is required: {e}", postgres_base_url());
        }
        PgSchema { name }
    }

    pub fn url(&self) -> String {
        format!("{}?options[search_path]={}", postgres_base_url(), self.name)
    }
}

impl Default for PgSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Err(e) = execute(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

/// The integers of the first row `sql` returns on the store at `url` (a count, sums cast to BIGINT).
pub fn query_row(url: &str, sql: &str) -> Result<Vec<i64>, String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let db = Database::connect(url).await.map_err(|e| e.to_string())?;
            let backend = db.get_database_backend();
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(backend, sql))
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no row")?;
            let mut values = Vec::new();
            for i in 0.. {
                match row.try_get_by_index::<Option<i64>>(i) {
                    Ok(v) => values.push(v.unwrap_or(0)),
                    Err(_) => break,
                }
            }
            db.close().await.map_err(|e| e.to_string())?;
            Ok(values)
        })
    })
    .join()
    .map_err(|_| "the query thread panicked".to_owned())?
}
