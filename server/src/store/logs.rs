//! The request log in the store. The log writer applies its journal in batches, each in one transaction that
//! holds the batch's rows and the writer's cursor (how far into which journal it is), so a batch is applied
//! exactly once: a replay after a crash starts from the cursor, never writes a row twice and never misses one.
//!
//! Rows are inserted with one prepared multi-row statement per [`ROWS_PER_STATEMENT`] rows (the statement text
//! depends only on the row count, so the driver's statement cache prepares it once per connection).

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement, TransactionTrait, Value};
use tollgate_entity::db::{log_cursor, request_log};

use super::{clamp, Store, StoreError};
use crate::logs::LogRecord;

/// Rows per INSERT: 29 parameters each stays below SQLite's 32,766 and Postgres' 65,535 bound parameters.
const ROWS_PER_STATEMENT: usize = 100;

pub(crate) const COLUMNS: [&str; 29] = [
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
pub struct LogBatch {
    pub journal_id: String,
    /// The cursor once this batch is applied.
    pub cursor: Cursor,
    pub records: Vec<LogRecord>,
    /// `false` with `disable_spend_logs`: the batch moves the cursor (and what else it feeds) but stores no rows.
    pub rows: bool,
}

/// One column's value of a request log row, borrowed from its record: each driver binds it its own way (sea-orm
/// [`Value`]s, rusqlite parameters in `store::sqlite_log`) from this one list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bool(bool),
    Json(serde_json::Value),
}

impl From<Field<'_>> for Value {
    fn from(field: Field<'_>) -> Value {
        match field {
            Field::Text(text) => Value::from(text),
            Field::Int(n) => Value::from(n),
            Field::Bool(b) => Value::from(b),
            Field::Json(json) => Value::from(json),
        }
    }
}

/// The row of `r`, in [`COLUMNS`]' order.
pub(crate) fn row(r: &LogRecord) -> [Field<'_>; 29] {
    fn text(s: &Option<String>) -> Option<&str> {
        s.as_deref()
    }
    [
        Field::Text(Some(&r.request_id)),
        Field::Int(Some(r.started_at_ms)),
        Field::Int(r.first_byte_at_ms),
        Field::Int(Some(r.ended_at_ms)),
        Field::Text(text(&r.key_hash)),
        Field::Text(text(&r.key_alias)),
        Field::Text(text(&r.team_id)),
        Field::Text(text(&r.user_id)),
        Field::Text(text(&r.end_user)),
        Field::Text(Some(&r.model_group)),
        Field::Text(text(&r.deployment)),
        Field::Text(text(&r.provider)),
        Field::Text(text(&r.api_base)),
        Field::Text(Some(&r.route)),
        Field::Bool(r.streamed),
        Field::Int(Some(i64::from(r.status))),
        Field::Text(text(&r.error_class)),
        Field::Text(text(&r.error_message)),
        Field::Int(Some(clamp(r.prompt_tokens))),
        Field::Int(Some(clamp(r.completion_tokens))),
        Field::Int(Some(clamp(r.cache_read_tokens))),
        Field::Int(Some(clamp(r.cache_write_tokens))),
        Field::Int(Some(clamp(r.reasoning_tokens))),
        Field::Int(r.cost_nanos.map(clamp)),
        Field::Text(Some(&r.accounting)),
        Field::Int(Some(i64::from(r.attempts))),
        Field::Text(text(&r.fallback)),
        Field::Json(serde_json::json!(r.tags)),
        Field::Text(text(&r.client_ip)),
    ]
}

fn push_values(values: &mut Vec<Value>, r: &LogRecord) {
    values.extend(row(r).into_iter().map(Value::from));
}

/// The statement that moves the cursor of `journal_id` to `cursor`.
fn cursor_statement(backend: DbBackend, journal_id: &str, cursor: Cursor, now_ms: i64) -> (String, Vec<Value>) {
    let sql = format!(
        "INSERT INTO log_cursor (journal_id, segment, records, updated_at_ms) VALUES {} \
         ON CONFLICT (journal_id) DO UPDATE SET segment = excluded.segment, records = excluded.records, \
         updated_at_ms = excluded.updated_at_ms",
        super::values_placeholders(backend, 1, 4)
    );
    let values = vec![journal_id.into(), clamp(cursor.segment).into(), clamp(cursor.records).into(), now_ms.into()];
    (sql, values)
}

/// `INSERT INTO request_log (...) VALUES (...), ...` for `rows` rows in `backend`'s placeholder style.
pub(crate) fn insert_sql(backend: DbBackend, rows: usize) -> String {
    let values = super::values_placeholders(backend, rows, COLUMNS.len());
    format!("INSERT INTO request_log ({}) VALUES {values}", COLUMNS.join(", "))
}

impl Store {
    /// Applies `batch` in one transaction: its rows, the spend and rollups it adds to, and the writer's new cursor.
    /// On a SQLite file, through the log's own connection (`store::sqlite_log`).
    pub async fn write_log_batch(&self, batch: LogBatch) -> Result<(), StoreError> {
        let backend = self.db.get_database_backend();
        let now_ms = crate::clock::unix_ms();
        // Spend counts whether or not rows are stored (`disable_spend_logs` keeps budgets).
        let mut statements = super::spend::statements(backend, &batch.records, now_ms / 1000);
        statements.extend(super::rollups::statements(backend, &batch.records));
        statements.push(cursor_statement(backend, &batch.journal_id, batch.cursor, now_ms));
        if let Some(log) = &self.sqlite_log {
            return log.write(batch, statements).await;
        }
        let tx = self.db.begin().await?;
        if batch.rows {
            for chunk in batch.records.chunks(ROWS_PER_STATEMENT) {
                let mut values = Vec::with_capacity(chunk.len() * COLUMNS.len());
                chunk.iter().for_each(|r| push_values(&mut values, r));
                tx.execute_raw(Statement::from_sql_and_values(backend, insert_sql(backend, chunk.len()), values))
                    .await?;
            }
        }
        for (sql, values) in statements {
            tx.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        }
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
