//! The request log in the store: batches of rows written in one transaction, a row already there (a replay from
//! the journal) left as it is.

use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
use serde_json::json;
use tollgate_entity::db::request_log::{ActiveModel, Column, Entity};

use super::{Store, StoreError};
use crate::logs::LogRecord;

/// Rows per INSERT: 29 columns each stays far below Postgres' 65,535 bind parameters.
const ROWS_PER_STATEMENT: usize = 500;

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn row(r: &LogRecord) -> ActiveModel {
    ActiveModel {
        request_id: Set(r.request_id.clone()),
        started_at_ms: Set(r.started_at_ms),
        first_byte_at_ms: Set(r.first_byte_at_ms),
        ended_at_ms: Set(r.ended_at_ms),
        key_hash: Set(r.key_hash.clone()),
        key_alias: Set(r.key_alias.clone()),
        team_id: Set(r.team_id.clone()),
        user_id: Set(r.user_id.clone()),
        end_user: Set(r.end_user.clone()),
        model_group: Set(r.model_group.clone()),
        deployment: Set(r.deployment.clone()),
        provider: Set(r.provider.clone()),
        api_base: Set(r.api_base.clone()),
        route: Set(r.route.clone()),
        streamed: Set(r.streamed),
        status: Set(i32::from(r.status)),
        error_class: Set(r.error_class.clone()),
        error_message: Set(r.error_message.clone()),
        prompt_tokens: Set(clamp(r.prompt_tokens)),
        completion_tokens: Set(clamp(r.completion_tokens)),
        cache_read_tokens: Set(clamp(r.cache_read_tokens)),
        cache_write_tokens: Set(clamp(r.cache_write_tokens)),
        reasoning_tokens: Set(clamp(r.reasoning_tokens)),
        cost_nanos: Set(r.cost_nanos.map(clamp)),
        accounting: Set(r.accounting.clone()),
        attempts: Set(i32::try_from(r.attempts).unwrap_or(i32::MAX)),
        fallback: Set(r.fallback.clone()),
        tags: Set(json!(r.tags)),
        client_ip: Set(r.client_ip.clone()),
    }
}

impl Store {
    /// Writes `records` in one transaction; those whose request id is already stored are skipped. Returns how
    /// many rows were new.
    pub async fn insert_logs(&self, records: &[LogRecord]) -> Result<u64, StoreError> {
        let tx = self.db.begin().await?;
        let mut inserted = 0;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let result = Entity::insert_many(chunk.iter().map(row))
                .on_conflict_do_nothing_on([Column::RequestId])
                .exec_without_returning(&tx)
                .await?;
            if let sea_orm::TryInsertResult::Inserted(n) = result {
                inserted += n;
            }
        }
        super::spend::apply(&tx, records).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// How many requests the log holds (tests and `/spend/logs` totals).
    pub async fn count_logs(&self) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(Entity::find().count(&self.db).await?)
    }
}
