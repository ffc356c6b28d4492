//! One row per request, success or failure (issue 16's request log). Rows are written in batches by the log
//! writer and replayed from its spool, so the primary key is the request id and a replayed row is a no-op.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RequestLog {
    Table,
    RequestId,
    StartedAtMs,
    FirstByteAtMs,
    EndedAtMs,
    KeyHash,
    KeyAlias,
    TeamId,
    UserId,
    EndUser,
    ModelGroup,
    Deployment,
    Provider,
    ApiBase,
    Route,
    Streamed,
    Status,
    ErrorClass,
    ErrorMessage,
    PromptTokens,
    CompletionTokens,
    CacheReadTokens,
    CacheWriteTokens,
    ReasoningTokens,
    CostNanos,
    Accounting,
    Attempts,
    Fallback,
    Tags,
    ClientIp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let text = |c: RequestLog| ColumnDef::new(c).text().to_owned();
        let big = |c: RequestLog| ColumnDef::new(c).big_integer().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(RequestLog::Table)
                    .if_not_exists()
                    .col(text(RequestLog::RequestId).not_null().primary_key())
                    .col(big(RequestLog::StartedAtMs).not_null())
                    .col(big(RequestLog::FirstByteAtMs))
                    .col(big(RequestLog::EndedAtMs).not_null())
                    .col(text(RequestLog::KeyHash))
                    .col(text(RequestLog::KeyAlias))
                    .col(text(RequestLog::TeamId))
                    .col(text(RequestLog::UserId))
                    .col(text(RequestLog::EndUser))
                    .col(text(RequestLog::ModelGroup).not_null())
                    .col(text(RequestLog::Deployment))
                    .col(text(RequestLog::Provider))
                    .col(text(RequestLog::ApiBase))
                    .col(text(RequestLog::Route).not_null())
                    .col(ColumnDef::new(RequestLog::Streamed).boolean().not_null())
                    .col(ColumnDef::new(RequestLog::Status).integer().not_null())
                    .col(text(RequestLog::ErrorClass))
                    .col(text(RequestLog::ErrorMessage))
                    .col(big(RequestLog::PromptTokens).not_null())
                    .col(big(RequestLog::CompletionTokens).not_null())
                    .col(big(RequestLog::CacheReadTokens).not_null())
                    .col(big(RequestLog::CacheWriteTokens).not_null())
                    .col(big(RequestLog::ReasoningTokens).not_null())
                    .col(big(RequestLog::CostNanos))
                    .col(text(RequestLog::Accounting).not_null())
                    .col(ColumnDef::new(RequestLog::Attempts).integer().not_null())
                    .col(text(RequestLog::Fallback))
                    .col(ColumnDef::new(RequestLog::Tags).json().not_null())
                    .col(text(RequestLog::ClientIp))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_request_log_started", RequestLog::StartedAtMs),
            ("idx_request_log_key", RequestLog::KeyHash),
            ("idx_request_log_team", RequestLog::TeamId),
            ("idx_request_log_model", RequestLog::ModelGroup),
        ] {
            manager
                .create_index(
                    Index::create().if_not_exists().name(name).table(RequestLog::Table).col(column).to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RequestLog::Table).if_exists().to_owned()).await
    }
}
