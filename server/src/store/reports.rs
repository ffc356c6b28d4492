//! The spend routes' reads, and the request log's retention purge. `/spend/logs` pages the log newest first by
//! `(started_at_ms, id)` with a keyset condition (never an OFFSET), on the indexes the log keeps: time, key within
//! time, team within time, request id. Reports and activity sum `usage_daily` (`store::rollups`) and never read
//! `request_log`.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    Value,
};
use tollgate_entity::db::{
    request_log::{self, Column},
    team, virtual_key,
};

use super::{Store, StoreError};
use crate::logs::query::{Dimension, LogFilter, Outcome, UsageFilter};

pub type LogRow = request_log::Model;

/// One group of a report: its dimension values (in the order asked; the day as its number) and sums.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageRow {
    pub day: Option<i64>,
    /// The text dimensions, in the order asked (the day left out).
    pub keys: Vec<String>,
    pub requests: i64,
    pub failed_requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_nanos: i64,
    pub unpriced_requests: i64,
}

/// A report's sums, in the order `Store::usage` reads them: every rollup counter (`rollups::COUNTERS`, `requests`
/// first), with the failed requests right after the requests.
fn push_sums(sql: &mut String) {
    for (i, c) in super::rollups::COUNTERS.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("CAST(SUM({c}) AS BIGINT) AS {c}"));
        if i == 0 {
            sql.push_str(
                ", CAST(SUM(CASE WHEN status_class = 'error' THEN requests ELSE 0 END) AS BIGINT) AS failed_requests",
            );
        }
    }
}

/// Rows deleted per statement by the retention purge: each statement is its own short transaction, so the log
/// writer's batches interleave with a long purge instead of waiting for it.
pub const PURGE_ROWS_PER_STATEMENT: u64 = 5_000;

fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// The report's SQL and values: sums of `usage_daily` within `filter`, grouped by `dimensions`.
fn usage_sql(backend: DbBackend, dimensions: &[Dimension], filter: &UsageFilter) -> (String, Vec<Value>) {
    let columns: Vec<&str> = dimensions.iter().map(|d| d.column()).collect();
    let mut values: Vec<Value> = vec![filter.first_day.into(), filter.last_day.into()];
    let mut sql = String::from("SELECT ");
    for c in &columns {
        sql.push_str(c);
        sql.push_str(", ");
    }
    push_sums(&mut sql);
    sql.push_str(&format!(
        " FROM usage_daily WHERE day >= {} AND day <= {}",
        placeholder(backend, 1),
        placeholder(backend, 2)
    ));
    if let Some(teams) = &filter.team_ids {
        if teams.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            let marks: Vec<String> = (0..teams.len()).map(|i| placeholder(backend, i + 3)).collect();
            sql.push_str(&format!(" AND team_id IN ({})", marks.join(", ")));
            values.extend(teams.iter().map(|t| Value::from(t.as_str())));
        }
    }
    if !columns.is_empty() {
        sql.push_str(" GROUP BY ");
        sql.push_str(&columns.join(", "));
    }
    (sql, values)
}

/// The query of one page of the request log (`Store::spend_logs`).
fn logs_page(filter: &LogFilter) -> sea_orm::Select<request_log::Entity> {
    let mut query = request_log::Entity::find();
    if let Some(key) = &filter.key_hash {
        query = query.filter(Column::KeyHash.eq(key.as_str()));
    }
    if let Some(team) = &filter.team_id {
        query = query.filter(Column::TeamId.eq(team.as_str()));
    }
    if let Some(teams) = &filter.team_ids {
        query = query.filter(Column::TeamId.is_in(teams.iter().map(String::as_str)));
    }
    if let Some(user) = &filter.user_id {
        query = query.filter(Column::UserId.eq(user.as_str()));
    }
    if let Some(model) = &filter.model {
        query = query.filter(Column::ModelGroup.eq(model.as_str()));
    }
    if let Some(id) = &filter.request_id {
        query = query.filter(Column::RequestId.eq(id.as_str()));
        // No index on request ids: a tollgate id names its start, and the start is indexed. Any other id is
        // looked for in every row (slow on a large log, and found only in rows of an older version).
        if let Some(ms) = crate::logs::query::request_started_ms(id) {
            query = query
                .filter(Column::StartedAtMs.gte(ms))
                .filter(Column::StartedAtMs.lte(ms + crate::logs::query::ID_TO_START_MS));
        }
    }
    match filter.outcome {
        Some(Outcome::Success) => query = query.filter(Column::Status.lt(400)),
        Some(Outcome::Failure) => query = query.filter(Column::Status.gte(400)),
        None => {}
    }
    if let Some(start) = filter.start_ms {
        query = query.filter(Column::StartedAtMs.gte(start));
    }
    if let Some(end) = filter.end_ms {
        query = query.filter(Column::StartedAtMs.lt(end));
    }
    if let Some(after) = filter.after {
        query = query.filter(
            Condition::any()
                .add(Column::StartedAtMs.lt(after.started_at_ms))
                .add(Condition::all().add(Column::StartedAtMs.eq(after.started_at_ms)).add(Column::Id.lt(after.id))),
        );
    }
    query.order_by_desc(Column::StartedAtMs).order_by_desc(Column::Id).limit(filter.limit)
}

impl Store {
    /// One page of the request log, newest first: at most `filter.limit` rows.
    pub async fn spend_logs(&self, filter: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        Ok(logs_page(filter).all(&self.db).await?)
    }

    /// Sums of the rollups within `filter`, grouped by `dimensions` (none: one row, the totals).
    pub async fn usage(&self, dimensions: &[Dimension], filter: &UsageFilter) -> Result<Vec<UsageRow>, StoreError> {
        let backend = self.db.get_database_backend();
        let (sql, values) = usage_sql(backend, dimensions, filter);
        let rows = self.db.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        let mut out = Vec::with_capacity(rows.len());
        // By index (the dimensions, then the sums in `push_sums`' order): a month of a team report is thousands of rows.
        let n = dimensions.len();
        for row in rows {
            let sum = |i: usize| row.try_get_by_index::<Option<i64>>(n + i).map(Option::unwrap_or_default);
            let mut usage = UsageRow {
                requests: sum(0)?,
                failed_requests: sum(1)?,
                prompt_tokens: sum(2)?,
                completion_tokens: sum(3)?,
                cache_read_tokens: sum(4)?,
                cache_write_tokens: sum(5)?,
                reasoning_tokens: sum(6)?,
                cost_nanos: sum(7)?,
                unpriced_requests: sum(8)?,
                keys: Vec::with_capacity(n),
                day: None,
            };
            if usage.requests == 0 {
                // No rollup row matched: SUM over nothing.
                continue;
            }
            for (i, d) in dimensions.iter().enumerate() {
                match d {
                    Dimension::Day => usage.day = Some(row.try_get_by_index::<i64>(i)?),
                    _ => usage.keys.push(row.try_get_by_index::<String>(i)?),
                }
            }
            out.push(usage);
        }
        Ok(out)
    }

    /// The aliases of these keys (by hash), for those that have one.
    pub async fn key_aliases(&self, hashes: &[&str]) -> Result<HashMap<String, String>, StoreError> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let keys = virtual_key::Entity::find()
            .filter(virtual_key::Column::TokenHash.is_in(hashes.iter().copied()))
            .all(&self.db)
            .await?;
        Ok(keys.into_iter().filter_map(|k| Some((k.token_hash, k.key_alias?))).collect())
    }

    /// The aliases of these teams, for those that have one.
    pub async fn team_aliases(&self, ids: &[&str]) -> Result<HashMap<String, String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let teams = team::Entity::find().filter(team::Column::TeamId.is_in(ids.iter().copied())).all(&self.db).await?;
        Ok(teams.into_iter().filter_map(|t| Some((t.team_id, t.team_alias?))).collect())
    }

    /// Deletes at most [`PURGE_ROWS_PER_STATEMENT`] request log rows that started before `cutoff_ms` (oldest
    /// first), in one statement; returns how many it deleted. The rollups are kept.
    pub async fn purge_logs_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let backend = self.db.get_database_backend();
        let sql = format!(
            "DELETE FROM request_log WHERE id IN (SELECT id FROM request_log WHERE started_at_ms < {} \
             ORDER BY started_at_ms LIMIT {PURGE_ROWS_PER_STATEMENT})",
            placeholder(backend, 1)
        );
        let result = self.db.execute_raw(Statement::from_sql_and_values(backend, sql, [cutoff_ms.into()])).await?;
        Ok(result.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key and team indexes hold only rows with a key or team (migration `m20261204_000050`): the log's filters
    /// by key, by team and by a member's teams must still search them, not scan the log.
    #[actix_rt::test]
    async fn filters_by_key_and_team_search_their_partial_indexes() {
        use sea_orm::{ConnectionTrait, QueryTrait};
        let path = std::env::temp_dir().join(format!("tollgate-plan-{}.db", uuid::Uuid::new_v4().simple()));
        let store = Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await;
        let store = store.unwrap_or_else(|e| unreachable!("{e}"));
        let page = LogFilter { limit: 50, start_ms: Some(1), ..LogFilter::default() };
        let cases = [
            (LogFilter { key_hash: Some("k".into()), ..page.clone() }, "idx_request_log_key_started"),
            (LogFilter { team_id: Some("t".into()), ..page.clone() }, "idx_request_log_team_started"),
            (
                LogFilter { team_ids: Some(vec!["a".into(), "b".into()]), ..page.clone() },
                "idx_request_log_team_started",
            ),
            (page.clone(), "idx_request_log_started"),
        ];
        for (filter, index) in cases {
            let query = logs_page(&filter).build(DbBackend::Sqlite);
            let plan = Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", query.sql),
                query.values.map(|v| v.0).unwrap_or_default(),
            );
            let rows = store.db.query_all_raw(plan).await.unwrap_or_default();
            let details: Vec<String> = rows.iter().filter_map(|r| r.try_get::<String>("", "detail").ok()).collect();
            assert!(details.iter().any(|d| d.contains(&format!("USING INDEX {index}"))), "{filter:?}: {details:?}");
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    fn report_statements_group_by_the_dimensions_asked_within_the_days_and_teams() {
        let all = UsageFilter { first_day: 1, last_day: 30, team_ids: None };
        let (sql, values) = usage_sql(DbBackend::Sqlite, &[Dimension::Day, Dimension::Team], &all);
        assert!(sql.starts_with("SELECT day, team_id, CAST(SUM(requests)"), "{sql}");
        assert!(sql.ends_with("FROM usage_daily WHERE day >= ? AND day <= ? GROUP BY day, team_id"), "{sql}");
        // The sums in the order `Store::usage` reads them by index.
        let sums = "SUM(requests) AS BIGINT) AS requests, CAST(SUM(CASE WHEN status_class = 'error' THEN requests \
            ELSE 0 END) AS BIGINT) AS failed_requests, CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, ";
        assert!(sql.contains(sums), "{sql}");
        assert!(
            sql.contains("AS cost_nanos, CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests FROM"),
            "{sql}"
        );
        assert_eq!(values.len(), 2);
        let teams = UsageFilter { team_ids: Some(vec!["a".into(), "b".into()]), ..all.clone() };
        let (sql, values) = usage_sql(DbBackend::Postgres, &[Dimension::Model], &teams);
        assert!(sql.contains("day >= $1 AND day <= $2 AND team_id IN ($3, $4) GROUP BY model_group"), "{sql}");
        assert_eq!(values.len(), 4);
        let none = UsageFilter { team_ids: Some(vec![]), ..all };
        let (sql, _) = usage_sql(DbBackend::Sqlite, &[], &none);
        assert!(sql.ends_with("AND 1 = 0"), "no teams, no rows: {sql}");
    }
}
