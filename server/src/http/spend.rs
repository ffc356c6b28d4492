//! The `spend` and `budget_reset_at` the management API shows for a key, team, user or end user: the current
//! budget period's spend, the larger of the store's (which lags by the log writer's interval) and this process's
//! ledger (which has every request this process settled).

use super::{principal::store_error, AppState};
use crate::{
    access::{budgets::key_budgets, manage::KeyInfo, period::iso8601},
    budgets::{usd_of_nanos, Budget, BudgetKind},
    clock,
    error::ApiError,
    store::keys::KeyRow,
};

/// `(spend in USD, the current period's end as ISO 8601)` of an entity's budget.
pub(super) async fn current(
    state: &AppState,
    kind: BudgetKind,
    id: &str,
    budget: &Budget,
) -> Result<(f64, Option<String>), ApiError> {
    let (start, end) = budget.window(clock::unix_secs());
    let stored = state.keys.store().spend(kind, id, start).await.map_err(store_error)?;
    let live = state.budgets.spent(kind, id, start).unwrap_or(0);
    let nanos = i64::try_from(stored.max(live)).unwrap_or(i64::MAX);
    Ok((usd_of_nanos(nanos), end.map(iso8601)))
}

/// A key as the management API shows it, with its spend.
pub(super) async fn key_info(state: &AppState, row: &KeyRow) -> Result<KeyInfo, ApiError> {
    let mut info = KeyInfo::of(row);
    let (own, _) = key_budgets(row);
    let (spend, reset) = current(state, BudgetKind::Key, &row.token_hash, &own).await?;
    info.spend = spend;
    info.budget_reset_at = reset;
    Ok(info)
}
