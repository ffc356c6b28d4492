//! The request log's batches on a SQLite file, written through a rusqlite connection of their own, on a blocking
//! thread, instead of through sea-orm and sqlx.
//!
//! Why: the log writer inserts every request as a row, and through sea-orm each of a row's 29 values became a
//! `sea_query::Value` (an allocation per text), was cloned into sqlx's arguments, and crossed to sqlx's SQLite
//! worker thread, which copied it again to bind it; at 15,000 requests a second that was about 10 µs of CPU per
//! request, most of the request log's cost (tests/bench/logging.sh, docs/benchmarks.md). Here rows go in eight
//! at a time ([`ROWS_PER_INSERT`]) to a cached prepared statement whose parameters are borrowed from the records,
//! in one transaction per batch, with no thread hop per statement. Everything else (schema, migrations, reports, management) stays
//! on sea-orm; Postgres batches stay on sea-orm too (`Store::write_log_batch`). Both connections use the one
//! bundled SQLite (rusqlite and sqlx-sqlite share libsqlite3-sys).
//!
//! Exactly once: the batch's transaction holds its rows, the spend and rollup upserts and the writer's cursor, as
//! on sea-orm; and because a batch whose caller stopped waiting (the writer's deadline) still runs to its end here,
//! each transaction first reads the cursor and skips a batch the cursor has already passed.

use std::{
    path::Path,
    sync::{Arc, LazyLock, Mutex, PoisonError},
    time::Duration,
};

use rusqlite::{
    types::{ToSqlOutput, ValueRef},
    Connection, OptionalExtension, ToSql, TransactionBehavior,
};
use sea_orm::{DbBackend, Value};

use super::{
    clamp,
    logs::{insert_sql, row, Field, LogBatch},
    StoreError,
};
use crate::logs::LogRecord;

/// The log's own connection to the store's SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteLog(Arc<Mutex<Connection>>);

impl SqliteLog {
    /// Opens `path` (already created and migrated by the store) with the store's settings: WAL is the file's,
    /// the rest is per connection.
    pub fn open(path: &Path) -> Result<SqliteLog, rusqlite::Error> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "wal_autocheckpoint", 8192)?;
        Ok(SqliteLog(Arc::new(Mutex::new(connection))))
    }

    /// Applies `batch` and `statements` (spend, rollups, cursor: `(sql, values)`) in one transaction.
    pub async fn write(&self, batch: LogBatch, statements: Vec<(String, Vec<Value>)>) -> Result<(), StoreError> {
        let connection = self.0.clone();
        let outcome = actix_rt::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            write(&mut connection, &batch, &statements)
        })
        .await;
        match outcome {
            Ok(result) => result.map_err(|e| StoreError::Log(e.to_string())),
            Err(e) => Err(StoreError::Log(format!("the log's SQLite task failed: {e}"))),
        }
    }
}

fn write(connection: &mut Connection, batch: &LogBatch, statements: &[(String, Vec<Value>)]) -> rusqlite::Result<()> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: Option<(i64, i64)> = tx
        .query_row("SELECT segment, records FROM log_cursor WHERE journal_id = ?1", [&batch.journal_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let target = (clamp(batch.cursor.segment), clamp(batch.cursor.records));
    if applied.is_some_and(|applied| applied >= target) {
        // Dropping the transaction rolls it back: nothing was written.
        return Ok(());
    }
    if batch.rows {
        insert_rows(&tx, &batch.records)?;
    }
    for (sql, values) in statements {
        let mut statement = tx.prepare_cached(sql)?;
        statement.execute(rusqlite::params_from_iter(values.iter().map(Bind)))?;
    }
    tx.commit()
}

/// Rows per INSERT, largest first: a batch goes in as many statements of the first size as fit, then of the next.
/// One statement per row spent a fifth of the row's work on the statement (a cursor per B-tree opened and closed,
/// the table's last rowid found, the program halted); past about eight rows that is amortised, and larger
/// statements cost more again in binding (their parameters outgrow SQLite's small-allocation slots):
/// tests/bench/instructions.sh gave 99.5k instructions per request at 8 rows, 100.7k at 16, 101.6k at 4, 103.4k
/// at 64, against 108.3k at one.
const ROWS_PER_INSERT: [usize; 2] = [8, 1];

/// The statement of each size in [`ROWS_PER_INSERT`], built once: the statement cache is keyed by the text.
static INSERTS: LazyLock<[String; 2]> = LazyLock::new(|| ROWS_PER_INSERT.map(|n| insert_sql(DbBackend::Sqlite, n)));

fn insert_rows(tx: &rusqlite::Transaction<'_>, records: &[LogRecord]) -> rusqlite::Result<()> {
    let mut rest = records;
    for (&size, sql) in ROWS_PER_INSERT.iter().zip(INSERTS.iter()) {
        if rest.len() < size {
            continue;
        }
        let mut insert = tx.prepare_cached(sql)?;
        let mut chunks = rest.chunks_exact(size);
        for chunk in &mut chunks {
            insert.execute(rusqlite::params_from_iter(chunk.iter().flat_map(row)))?;
            // Why: a turn's batch (a thousand rows at a few thousand requests a second) is milliseconds of work,
            // and the scheduler lets a running thread finish its slice before a thread woken meanwhile: an HTTP
            // worker sharing the core waited it out (c=1 p99 2 ms against 0.3 without request rows, `perf sched
            // timehist`). A yield after each statement (tens of microseconds) hands the core back at once.
            std::thread::yield_now();
        }
        rest = chunks.remainder();
    }
    Ok(())
}

impl ToSql for Field<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Field::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Field::Int(Some(n)) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Field::Text(None) | Field::Int(None) => ToSqlOutput::Borrowed(ValueRef::Null),
            Field::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Field::Json(json) => ToSqlOutput::Owned(rusqlite::types::Value::Text(json.to_string())),
        })
    }
}

/// A sea-query value as a rusqlite parameter: the kinds the spend, rollup and cursor statements use.
struct Bind<'a>(&'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as Owned;
        let integer = |n: Option<i64>| ToSqlOutput::Owned(n.map_or(Owned::Null, Owned::Integer));
        Ok(match self.0 {
            Value::Bool(b) => integer(b.map(i64::from)),
            Value::TinyInt(n) => integer(n.map(i64::from)),
            Value::SmallInt(n) => integer(n.map(i64::from)),
            Value::Int(n) => integer(n.map(i64::from)),
            Value::BigInt(n) => integer(*n),
            Value::TinyUnsigned(n) => integer(n.map(i64::from)),
            Value::SmallUnsigned(n) => integer(n.map(i64::from)),
            Value::Unsigned(n) => integer(n.map(i64::from)),
            Value::BigUnsigned(n) => integer(n.map(clamp)),
            Value::Double(x) => ToSqlOutput::Owned(x.map_or(Owned::Null, Owned::Real)),
            Value::String(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::String(None) => ToSqlOutput::Owned(Owned::Null),
            other => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    format!("the request log's SQLite writer does not bind {other:?}").into(),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_bind_as_sqlite_reads_them_back() {
        let connection = Connection::open_in_memory().unwrap_or_else(|e| unreachable!("{e}"));
        let values = [Value::from(7_i64), Value::from(true), Value::from("text"), Value::from(None::<String>)];
        let got: (i64, i64, String, Option<String>) = connection
            .query_row("SELECT ?1, ?2, ?3, ?4", rusqlite::params_from_iter(values.iter().map(Bind)), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(got, (7, 1, "text".into(), None));
        let unsupported = Value::from('c');
        assert!(connection.query_row("SELECT ?1", [Bind(&unsupported)], |_| Ok(())).is_err());
        let record = LogRecord { request_id: "r".into(), tags: vec!["a".into()], ..LogRecord::default() };
        let fields = row(&record);
        let sql = "SELECT ?1, ?28, ?29";
        let (id, tags, ip): (String, String, Option<String>) = connection
            .query_row(sql, rusqlite::params_from_iter(fields.iter()), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((id.as_str(), tags.as_str(), ip), ("r", r#"["a"]"#, None));
    }

    #[test]
    fn batches_of_any_size_insert_every_row_once_in_order() -> rusqlite::Result<()> {
        let mut connection = Connection::open_in_memory()?;
        let columns = crate::store::logs::COLUMNS.join(", ");
        connection.execute_batch(&format!("CREATE TABLE request_log (id INTEGER PRIMARY KEY, {columns})"))?;
        for count in [0, 1, 7, 8, 9, 63, 64, 65, 83, 200] {
            connection.execute("DELETE FROM request_log", [])?;
            let records: Vec<LogRecord> = (0..count)
                .map(|i| LogRecord { request_id: format!("r{i}"), started_at_ms: i, ..LogRecord::default() })
                .collect();
            let tx = connection.transaction()?;
            insert_rows(&tx, &records)?;
            tx.commit()?;
            let mut ids = connection.prepare("SELECT request_id, started_at_ms FROM request_log ORDER BY id")?;
            let stored = ids.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let stored = stored.collect::<rusqlite::Result<Vec<_>>>()?;
            let want: Vec<_> = records.iter().map(|r| (r.request_id.clone(), r.started_at_ms)).collect();
            assert_eq!(stored, want, "{count} records");
        }
        Ok(())
    }
}
