//! Drops the request log's index on `request_id`.
//!
//! Why: of the four B-trees every logged request was inserted into, this one compared 32-character text keys, and
//! a request id is tollgate's own UUIDv7, whose first 48 bits are the request's start in Unix milliseconds, which
//! is also the row's `started_at_ms`. A lookup by request id now goes through `idx_request_log_started` (the id's
//! millisecond, then the id: `store::reports`); rows written before this carry a start up to a few milliseconds
//! after the id's, which the lookup's window covers.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RequestLog {
    Table,
    RequestId,
}

const INDEX: &str = "idx_request_log_request";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().if_exists().name(INDEX).table(RequestLog::Table).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX)
                    .table(RequestLog::Table)
                    .col(RequestLog::RequestId)
                    .to_owned(),
            )
            .await
    }
}
