//! Makes the request log's per-key and per-team indexes partial: a row whose `key_hash` (or `team_id`) is null gets
//! no entry in that index.
//!
//! Why: every logged request was inserted into three B-trees besides the table, each insert a descent of about
//! seven key comparisons (tests/bench/instructions.sh: ~1,700 instructions per index), and a request without a key
//! (the master key, unauthenticated routes) or without a team filled two of them with null entries that no query
//! reads: the log's filters are `key_hash = ?` and `team_id = ?` / `IN (...)`, which imply `IS NOT NULL`, so
//! SQLite and Postgres use a partial index for them as before (SQLite: "Queries Using Partial Indexes";
//! Postgres: predicate implication for strict operators).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index, column): each over `(column, started_at_ms)`.
const INDEXES: [(&str, &str); 2] =
    [("idx_request_log_key_started", "key_hash"), ("idx_request_log_team_started", "team_id")];

async fn rebuild(manager: &SchemaManager<'_>, partial: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (name, column) in INDEXES {
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}")).await?;
        let filter = if partial { format!(" WHERE {column} IS NOT NULL") } else { String::new() };
        db.execute_unprepared(&format!("CREATE INDEX {name} ON request_log ({column}, started_at_ms){filter}")).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, false).await
    }
}
