//! Spend per entity and budget period (`spend` table), fed by the request log: each record's cost is added to
//! every spend row it counts toward, in the transaction that stores the record's batch, so spend reaches the
//! store exactly when (and as often as) the record does.
//!
//! Which rows a record counts toward: its key, team, user (the key's owner), member (team and user), end user, each
//! in the period its budget reservation named (`LogRecord::budget_periods`), else period 0 (the entity's lifetime:
//! entities without a periodic budget); its key's spend on the model group only when that had a budget.

use std::collections::BTreeMap;

use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Value,
};
use tollgate_entity::db::spend::{Column, Entity};

use super::{Store, StoreError};
use crate::{
    budgets::{key_model_id, member_id, BudgetKind},
    logs::LogRecord,
};

/// The spend rows `record` counts toward: `(kind, entity_id, period_start)`.
fn targets(record: &LogRecord) -> Vec<(BudgetKind, String, i64)> {
    let period =
        |kind: BudgetKind| record.budget_periods.iter().find(|(tag, _)| tag == kind.tag()).map(|(_, start)| *start);
    let mut out = Vec::new();
    let mut push = |kind: BudgetKind, id: Option<String>| {
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            out.push((kind, id, period(kind).unwrap_or(0)));
        }
    };
    push(BudgetKind::Key, record.key_hash.clone());
    push(BudgetKind::Team, record.team_id.clone());
    push(BudgetKind::User, record.user_id.clone());
    if let (Some(team), Some(user)) = (&record.team_id, &record.user_id) {
        push(BudgetKind::Member, Some(member_id(team, user)));
    }
    push(BudgetKind::EndUser, record.end_user.clone());
    if let (Some(hash), Some(_)) = (&record.key_hash, period(BudgetKind::KeyModel)) {
        push(BudgetKind::KeyModel, Some(key_model_id(hash, &record.model_group)));
    }
    out
}

/// Rows per upsert: 5 parameters each.
const ROWS_PER_STATEMENT: usize = 500;

/// The statements that add each record's cost to every spend row it counts toward: summed in memory first, then
/// one multi-row upsert per [`ROWS_PER_STATEMENT`] rows, in key order (two writers sharing a Postgres lock the rows
/// in the same order), run in the log writer's batch transaction.
pub fn statements(backend: DbBackend, records: &[LogRecord], now_secs: i64) -> Vec<(String, Vec<Value>)> {
    let mut sums: BTreeMap<(&'static str, String, i64), i64> = BTreeMap::new();
    for record in records {
        let cost = record.cost_nanos.and_then(|c| i64::try_from(c).ok()).unwrap_or(0);
        if cost == 0 {
            continue;
        }
        for (kind, id, period_start) in targets(record) {
            let sum = sums.entry((kind.tag(), id, period_start)).or_insert(0);
            *sum = sum.saturating_add(cost);
        }
    }
    let rows: Vec<_> = sums.into_iter().collect();
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let sql = format!(
                "INSERT INTO spend (entity_kind, entity_id, period_start, spend_nanos, updated_at) VALUES {} \
                 ON CONFLICT (entity_kind, entity_id, period_start) DO UPDATE SET \
                 spend_nanos = spend.spend_nanos + excluded.spend_nanos, updated_at = excluded.updated_at",
                super::values_placeholders(backend, chunk.len(), 5)
            );
            let mut values = Vec::with_capacity(chunk.len() * 5);
            for ((kind, id, period_start), nanos) in chunk {
                values.extend([
                    Value::from(*kind),
                    Value::from(id.as_str()),
                    Value::from(*period_start),
                    Value::from(*nanos),
                    Value::from(now_secs),
                ]);
            }
            (sql, values)
        })
        .collect()
}

/// Moves a key's spend rows (its own and per model) from `old_hash` to `new_hash` (`/key/regenerate`).
pub async fn rename_key(txn: &impl ConnectionTrait, old_hash: &str, new_hash: &str) -> Result<(), StoreError> {
    let rows = Entity::find()
        .filter(Column::EntityKind.is_in([BudgetKind::Key.tag(), BudgetKind::KeyModel.tag()]))
        .filter(Column::EntityId.eq(old_hash).or(Column::EntityId.starts_with(format!("{old_hash}/"))))
        .all(txn)
        .await?;
    for row in rows {
        let new_id = format!("{new_hash}{}", &row.entity_id[old_hash.len().min(row.entity_id.len())..]);
        Entity::update_many()
            .col_expr(Column::EntityId, Expr::value(new_id))
            .filter(Column::EntityKind.eq(row.entity_kind.clone()))
            .filter(Column::EntityId.eq(row.entity_id.clone()))
            .filter(Column::PeriodStart.eq(row.period_start))
            .exec(txn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Stored spend of an entity in the period starting at `period_start` (0 when there is none).
    pub async fn spend(&self, kind: BudgetKind, id: &str, period_start: i64) -> Result<u64, StoreError> {
        let row = Entity::find()
            .filter(Column::EntityKind.eq(kind.tag()))
            .filter(Column::EntityId.eq(id))
            .filter(Column::PeriodStart.eq(period_start))
            .one(&self.db)
            .await?;
        Ok(row.map_or(0, |r| u64::try_from(r.spend_nanos).unwrap_or(0)))
    }
}
