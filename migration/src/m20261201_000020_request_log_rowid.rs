//! The request log keyed by an insertion sequence instead of the request id, with fewer indexes, and the log
//! writer's cursor.
//!
//! Why: the request id was the primary key so that a replayed row was a no-op; with random (v4) ids every insert
//! touched a random page of that index, and with five indexes the store's share of a request's CPU was several
//! times the proxy's own. Exactly-once now comes from `log_cursor` (the writer records, in the same transaction as
//! the rows, how far into its journal it is), request ids are time-ordered (v7), and the indexes are the ones the
//! log's readers use: time, and key or team within time. Reports read the rollups, never these rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RequestLog {
    Table,
    RequestId,
    StartedAtMs,
    KeyHash,
    TeamId,
}

#[derive(DeriveIden)]
enum RequestLogV1 {
    Table,
}

#[derive(DeriveIden)]
enum LogCursor {
    Table,
    JournalId,
    Segment,
    Records,
    UpdatedAtMs,
}

/// The columns both versions share, in order.
const COLUMNS: &str = "request_id, started_at_ms, first_byte_at_ms, ended_at_ms, key_hash, key_alias, team_id, \
    user_id, end_user, model_group, deployment, provider, api_base, route, streamed, status, error_class, \
    error_message, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
    cost_nanos, accounting, attempts, fallback, tags, client_ip";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["idx_request_log_started", "idx_request_log_key", "idx_request_log_team", "idx_request_log_model"]
        {
            manager.drop_index(Index::drop().if_exists().name(index).table(RequestLog::Table).to_owned()).await?;
        }
        manager.rename_table(Table::rename().table(RequestLog::Table, RequestLogV1::Table).to_owned()).await?;
        create_v2(manager).await?;
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "INSERT INTO request_log ({COLUMNS}) SELECT {COLUMNS} FROM request_log_v1 ORDER BY started_at_ms"
        ))
        .await?;
        manager.drop_table(Table::drop().table(RequestLogV1::Table).to_owned()).await?;
        manager
            .create_table(
                Table::create()
                    .table(LogCursor::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(LogCursor::JournalId).text().not_null().primary_key())
                    .col(ColumnDef::new(LogCursor::Segment).big_integer().not_null())
                    .col(ColumnDef::new(LogCursor::Records).big_integer().not_null())
                    .col(ColumnDef::new(LogCursor::UpdatedAtMs).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LogCursor::Table).if_exists().to_owned()).await
    }
}

/// The new table: every column of the first version (same names and types) behind an `id` sequence.
async fn create_v2(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let id = match manager.get_database_backend() {
        sea_orm::DbBackend::Postgres => "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        // INTEGER PRIMARY KEY is SQLite's rowid: no second index, appends at the end of the table.
        _ => "id INTEGER PRIMARY KEY",
    };
    let json = match manager.get_database_backend() {
        sea_orm::DbBackend::Postgres => "json",
        _ => "json_text",
    };
    db.execute_unprepared(&format!(
        "CREATE TABLE request_log (
            {id},
            request_id TEXT NOT NULL,
            started_at_ms BIGINT NOT NULL,
            first_byte_at_ms BIGINT,
            ended_at_ms BIGINT NOT NULL,
            key_hash TEXT,
            key_alias TEXT,
            team_id TEXT,
            user_id TEXT,
            end_user TEXT,
            model_group TEXT NOT NULL,
            deployment TEXT,
            provider TEXT,
            api_base TEXT,
            route TEXT NOT NULL,
            streamed BOOLEAN NOT NULL,
            status INTEGER NOT NULL,
            error_class TEXT,
            error_message TEXT,
            prompt_tokens BIGINT NOT NULL,
            completion_tokens BIGINT NOT NULL,
            cache_read_tokens BIGINT NOT NULL,
            cache_write_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL,
            cost_nanos BIGINT,
            accounting TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            fallback TEXT,
            tags {json} NOT NULL,
            client_ip TEXT
        )"
    ))
    .await?;
    for (name, columns) in [
        ("idx_request_log_request", vec![RequestLog::RequestId]),
        ("idx_request_log_started", vec![RequestLog::StartedAtMs]),
        ("idx_request_log_key_started", vec![RequestLog::KeyHash, RequestLog::StartedAtMs]),
        ("idx_request_log_team_started", vec![RequestLog::TeamId, RequestLog::StartedAtMs]),
    ] {
        let mut index = Index::create().name(name).table(RequestLog::Table).to_owned();
        for column in columns {
            index.col(column);
        }
        manager.create_index(index).await?;
    }
    Ok(())
}
