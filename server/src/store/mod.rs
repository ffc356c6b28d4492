//! The store: every SQL statement tollgate runs lives in this module (SeaORM over sqlx; SQLite by default,
//! Postgres when configured; on a SQLite file the request log's batches go through a rusqlite connection of their
//! own, [`sqlite_log`], for speed). Callers get domain values and [`StoreError`]s, never a connection.
//!
//! Nothing on the request path waits here for a cached key; a cache miss waits at most its deadline
//! (`access::cache`).

pub mod end_users;
pub mod keys;
pub mod logs;
pub mod reports;
pub mod rollups;
pub mod spend;
pub mod sqlite_log;
pub mod teams;
pub mod users;

use std::time::Duration;

use sea_orm::{
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
    ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr,
};
use tollgate_migration::{Migrator, MigratorTrait};

/// A new connection gets this long; a store that cannot be reached at start-up stops the start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pooled connections per process: key lookups on a cache miss, management calls, spend flushes.
const MAX_CONNECTIONS: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}: {source}")]
    Open { url: String, source: DbErr },
    #[error("database migration failed: {0}")]
    Migrate(DbErr),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// The request log's own SQLite connection failed ([`sqlite_log`]).
    #[error("database error: {0}")]
    Log(String),
}

#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// On a SQLite file: the request log's own connection.
    sqlite_log: Option<sqlite_log::SqliteLog>,
}

impl Store {
    /// Connects to `url` (`sqlite://file?mode=rwc`, `postgres://...`) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::migrate_url(url).await?;
        Self::connect(url).await
    }

    /// Applies pending migrations on a connection of their own; returns the backend's name and how many were
    /// applied. Why not the pool:
    /// with SQLite, a pooled connection that still holds a read snapshot from an earlier statement sees the schema
    /// as it was before the previous migration step (one step drops an index, the next finds it "already exists").
    pub async fn migrate_url(url: &str) -> Result<(&'static str, usize), StoreError> {
        let single = Self::connect_with(url, 1).await?;
        let applied = single.migrate().await;
        let backend = single.backend();
        let _ = single.db.close().await;
        Ok((backend, applied?))
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let mut store = Self::connect_with(url, MAX_CONNECTIONS).await?;
        if store.db.get_database_backend() == DbBackend::Sqlite {
            let options = store.db.get_sqlite_connection_pool().connect_options();
            let path = options.get_filename();
            // An in-memory database is one per connection: only a file can be shared with a second connection.
            if path.is_file() {
                let log = sqlite_log::SqliteLog::open(path)
                    .map_err(|e| StoreError::Open { url: masked_url(url), source: DbErr::Custom(e.to_string()) })?;
                store.sqlite_log = Some(log);
            }
        }
        Ok(store)
    }

    async fn connect_with(url: &str, connections: u32) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open { url: masked_url(url), source };
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(connections)
            .connect_timeout(CONNECT_TIMEOUT)
            .acquire_timeout(CONNECT_TIMEOUT)
            // Statements are not logged: key hashes and budgets are no business of the process log.
            .sqlx_logging(false)
            // On every pooled connection (a PRAGMA run once reaches one connection only). WAL: readers never wait
            // for the writer. NORMAL: a commit is durable once the process has written it (it survives the
            // process being killed; a power cut can lose the last commits, as it can the log journal's tail,
            // which is not fsynced either). The driver's defaults add foreign keys and a 5 s busy timeout.
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    // Checkpoint at 32 MiB of WAL rather than 4: a page the log writer dirties again and again
                    // (an index's right edge) is copied back to the database once per checkpoint.
                    .pragma("wal_autocheckpoint", "8192")
            });
        let db = Database::connect(options).await.map_err(open_error)?;
        Ok(Store { db, sqlite_log: None })
    }

    async fn migrate(&self) -> Result<usize, StoreError> {
        let pending = Migrator::get_pending_migrations(&self.db).await.map_err(StoreError::Migrate)?.len();
        Migrator::up(&self.db, None).await.map_err(StoreError::Migrate)?;
        Ok(pending)
    }

    pub fn backend(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::Sqlite => "sqlite",
            _ => "other",
        }
    }
}

/// The `VALUES` list of a multi-row INSERT: `rows` tuples of `columns` placeholders in `backend`'s style (`?` for
/// SQLite, `$1, $2, ...` for Postgres).
pub(crate) fn values_placeholders(backend: DbBackend, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                DbBackend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// A count or amount as a database integer (BIGINT), saturating at `i64::MAX`.
pub(crate) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_once('/').map_or((rest, None), |(a, t)| (a, Some(t)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    match tail {
        Some(tail) => format!("{scheme}://{authority}/{tail}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::masked_url;

    #[test]
    fn masks_passwords_in_database_urls() {
        let cases = [
            ("postgres://app:s3cret@db:5432/gw", "postgres://app:***@db:5432/gw"),
            ("postgres://app@db/gw", "postgres://app@db/gw"),
            ("postgresql://u:p:q@h", "postgresql://u:***@h"),
            ("sqlite://tollgate.db?mode=rwc", "sqlite://tollgate.db?mode=rwc"),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(masked_url(url), want);
        }
    }
}
