//! Keys declared in the config file (the seed's `key_settings`), written to the store at start-up so the request
//! path finds them like any other key: an upsert by hash, so a restart or a changed limit rewrites the row, and
//! the key's value is never stored or logged (only its display form `sk-...abcd`). A key the file no longer
//! declares is deleted at the next start.

use serde_json::json;

use super::token::{self, KeyHash};
use crate::{
    config::DeclaredKey,
    store::{keys::KeyRow, Store, StoreError},
};

/// Who the audit columns name for keys the config declares.
const DECLARED_BY: &str = "config:key_settings";

/// The first instant of the calendar month after `now` (UTC): where a monthly budget first resets.
fn next_month_start(now: i64) -> i64 {
    let (y, m, _) = crate::clock::civil_from_days(now.div_euclid(86_400));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    crate::clock::days_from_civil(y, m, 1) * 86_400
}

/// The row a declared key is stored as (limits and monthly budget from the config; no expiry, all models).
pub fn row(key: &DeclaredKey, now: i64) -> KeyRow {
    let value = key.api_key.expose();
    let budget = key.monthly_budget.and_then(crate::budgets::nanos_of_usd);
    KeyRow {
        token_hash: KeyHash::of(value).hex(),
        key_name: token::display_name(value),
        key_alias: None,
        user_id: None,
        team_id: None,
        models: json!([]),
        max_budget_nanos: budget,
        budget_duration: budget.map(|_| "1mo".to_owned()),
        budget_reset_at: budget.map(|_| next_month_start(now)),
        soft_budget_nanos: None,
        model_max_budget: json!({}),
        rpm_limit: key.rpm.and_then(|n| i64::try_from(n).ok()),
        tpm_limit: key.tpm.and_then(|n| i64::try_from(n).ok()),
        max_parallel_requests: None,
        model_rpm_limit: json!({}),
        model_tpm_limit: json!({}),
        expires_at: None,
        blocked: false,
        metadata: json!({ "declared_in": key.path }),
        created_by: Some(DECLARED_BY.to_owned()),
        updated_by: Some(DECLARED_BY.to_owned()),
        created_at: now,
        updated_at: now,
    }
}

/// Stores every declared key: new ones inserted, existing ones (same hash) get the config's limits; other settings
/// an admin changed through the API (blocked, models, alias) stay. Keys an earlier config declared and this one
/// does not are deleted: a key taken out of the file must stop working.
pub async fn store_all(store: &Store, keys: &[DeclaredKey], now: i64) -> Result<(), StoreError> {
    let declared: Vec<String> = keys.iter().map(|k| KeyHash::of(k.api_key.expose()).hex()).collect();
    let dropped: Vec<String> =
        store.key_hashes_created_by(DECLARED_BY).await?.into_iter().filter(|h| !declared.contains(h)).collect();
    if !dropped.is_empty() {
        store.delete_keys(&dropped).await?;
        tracing::warn!(count = dropped.len(), "keys no longer in key_settings deleted");
    }
    for key in keys {
        let fresh = row(key, now);
        match store.key_by_hash(&fresh.token_hash).await? {
            None => {
                store.insert_key(fresh).await?;
            }
            Some(mut existing) => {
                existing.rpm_limit = fresh.rpm_limit;
                existing.tpm_limit = fresh.tpm_limit;
                // The monthly budget: its periods keep their anchor unless the budget appears or goes.
                if fresh.budget_duration != existing.budget_duration {
                    existing.budget_duration = fresh.budget_duration;
                    existing.budget_reset_at = fresh.budget_reset_at;
                }
                existing.max_budget_nanos = fresh.max_budget_nanos;
                existing.updated_by = fresh.updated_by;
                existing.updated_at = now;
                store.update_key(existing).await?;
            }
        }
        tracing::info!(key = %token::display_name(key.api_key.expose()), declared_in = %key.path, rpm_limit = ?key.rpm,
            tpm_limit = ?key.tpm, monthly_budget = ?key.monthly_budget, "declared key stored");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monthly_budgets_reset_on_the_first_of_the_month() {
        let at = |y, m, d| crate::clock::days_from_civil(y, m, d) * 86_400;
        assert_eq!(next_month_start(at(2026, 11, 30) + 3600), at(2026, 12, 1));
        assert_eq!(next_month_start(at(2026, 12, 1)), at(2027, 1, 1));
        let key = DeclaredKey {
            path: "key_settings[0]".into(),
            api_key: crate::secret::Secret::new("sk-team-a-key"),
            rpm: None,
            tpm: None,
            monthly_budget: Some(100.0),
        };
        let row = row(&key, at(2026, 11, 30));
        assert_eq!(row.max_budget_nanos, Some(100_000_000_000));
        assert_eq!((row.budget_duration.as_deref(), row.budget_reset_at), (Some("1mo"), Some(at(2026, 12, 1))));
    }
}
