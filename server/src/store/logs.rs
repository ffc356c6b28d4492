//! The request log in the store. The log writer applies its journal in batches, each in one transaction that
//! holds the batch's rows and the writer's cursor (how far into which journal it is), so a batch is applied
//! exactly once: a replay after a crash starts from the cursor, never writes a row twice and never misses one.
//!
//! Rows are inserted with one prepared multi-row statement per [`ROWS_PER_STATEMENT`] rows (the statement text
//! depends only on the row count, so the driver's statement cache prepares it once per connection).

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement, TransactionTrait, Value};
use serde_json::json;
use tollgate_entity::db::{log_cursor, request_log};

use super::{Store, StoreError};
use crate::logs::LogRecord;

/// Rows per INSERT: 29 parameters each stays below SQLite's 32,766 and Postgres' 65,535 bound parameters.
const ROWS_PER_STATEMENT: usize = 100;

const COLUMNS: [&str; 29] = [
    "request_id",
    "started_at_ms",
    "first_byte_at_ms",
    "ended_at_ms",
    "key_hash",
    "key_alias",
    "team_id",
    "user_id",
    "end_user",
    "model_group",
    "deployment",
    "provider",
    "api_base",
    "route",
    "streamed",
    "status",
    "error_class",
    "error_message",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "accounting",
    "attempts",
    "fallback",
    "tags",
    "client_ip",
];

/// Where a writer stands in its journal: every record of earlier segments, and the first `records` of
/// `segment`, are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub segment: u64,
    pub records: u64,
}

/// One batch of a journal segment: `records` are the segment's records from `cursor.records - records.len()`
/// up to `cursor.records`.
#[derive(Debug)]
pub struct LogBatch<'a> {
    pub journal_id: &'a str,
    /// The cursor once this batch is applied.
    pub cursor: Cursor,
    pub records: &'a [LogRecord],
    /// `false` with `disable_spend_logs`: the batch moves the cursor (and what else it feeds) but stores no rows.
    pub rows: bool,
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn push_values(values: &mut Vec<Value>, r: &LogRecord) {
    values.extend([
        Value::from(r.request_id.as_str()),
        Value::from(r.started_at_ms),
        Value::from(r.first_byte_at_ms),
        Value::from(r.ended_at_ms),
        Value::from(r.key_hash.as_deref()),
        Value::from(r.key_alias.as_deref()),
        Value::from(r.team_id.as_deref()),
        Value::from(r.user_id.as_deref()),
        Value::from(r.end_user.as_deref()),
        Value::from(r.model_group.as_str()),
        Value::from(r.deployment.as_deref()),
        Value::from(r.provider.as_deref()),
        Value::from(r.api_base.as_deref()),
        Value::from(r.route.as_str()),
        Value::from(r.streamed),
        Value::from(i32::from(r.status)),
        Value::from(r.error_class.as_deref()),
        Value::from(r.error_message.as_deref()),
        Value::from(clamp(r.prompt_tokens)),
        Value::from(clamp(r.completion_tokens)),
        Value::from(clamp(r.cache_read_tokens)),
        Value::from(clamp(r.cache_write_tokens)),
        Value::from(clamp(r.reasoning_tokens)),
        Value::from(r.cost_nanos.map(clamp)),
        Value::from(r.accounting.as_str()),
        Value::from(i32::try_from(r.attempts).unwrap_or(i32::MAX)),
        Value::from(r.fallback.as_deref()),
        Value::from(json!(r.tags)),
        Value::from(r.client_ip.as_deref()),
    ]);
}

/// `INSERT INTO request_log (...) VALUES (...), ...` for `rows` rows in `backend`'s placeholder style.
fn insert_sql(backend: DbBackend, rows: usize) -> String {
    let values = super::values_placeholders(backend, rows, COLUMNS.len());
    format!("INSERT INTO request_log ({}) VALUES {values}", COLUMNS.join(", "))
}

impl Store {
    /// Applies `batch` in one transaction: its rows and the writer's new cursor.
    pub async fn write_log_batch(&self, batch: &LogBatch<'_>) -> Result<(), StoreError> {
        let backend = self.db.get_database_backend();
        let tx = self.db.begin().await?;
        if batch.rows {
            for chunk in batch.records.chunks(ROWS_PER_STATEMENT) {
                let mut values = Vec::with_capacity(chunk.len() * COLUMNS.len());
                chunk.iter().for_each(|r| push_values(&mut values, r));
                tx.execute_raw(Statement::from_sql_and_values(backend, insert_sql(backend, chunk.len()), values))
                    .await?;
            }
        }
        // Spend counts whether or not rows are stored (`disable_spend_logs` keeps budgets).
        super::spend::apply(&tx, batch.records).await?;
        super::rollups::apply(&tx, batch.records).await?;
        let upsert = format!(
            "INSERT INTO log_cursor (journal_id, segment, records, updated_at_ms) VALUES {} \
             ON CONFLICT (journal_id) DO UPDATE SET segment = excluded.segment, records = excluded.records, \
             updated_at_ms = excluded.updated_at_ms",
            super::values_placeholders(backend, 1, 4)
        );
        let values: Vec<Value> = vec![
            batch.journal_id.into(),
            clamp(batch.cursor.segment).into(),
            clamp(batch.cursor.records).into(),
            crate::clock::unix_ms().into(),
        ];
        tx.execute_raw(Statement::from_sql_and_values(backend, upsert, values)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How far the writer of journal `journal_id` has applied it (`None`: nothing yet).
    pub async fn log_cursor(&self, journal_id: &str) -> Result<Option<Cursor>, StoreError> {
        let row = log_cursor::Entity::find_by_id(journal_id.to_owned()).one(&self.db).await?;
        Ok(row.map(|c| Cursor {
            segment: u64::try_from(c.segment).unwrap_or(0),
            records: u64::try_from(c.records).unwrap_or(0),
        }))
    }

    /// How many requests the log holds (tests and `/spend/logs` totals).
    pub async fn count_logs(&self) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(request_log::Entity::find().count(&self.db).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_statements_have_one_placeholder_per_column_and_row() {
        let sqlite = insert_sql(DbBackend::Sqlite, 2);
        assert_eq!(sqlite.matches('?').count(), 58);
        assert!(sqlite.ends_with("?, ?)") && sqlite.contains("), ("));
        let postgres = insert_sql(DbBackend::Postgres, 2);
        assert!(postgres.contains("($1, $2,") && postgres.ends_with("$58)"), "{postgres}");
        let mut values = Vec::new();
        push_values(&mut values, &LogRecord::default());
        assert_eq!(values.len(), COLUMNS.len());
    }
}
