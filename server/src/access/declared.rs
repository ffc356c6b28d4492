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

/// The row a declared key is stored as (limits from the config; no expiry, all models).
pub fn row(key: &DeclaredKey, now: i64) -> KeyRow {
    let value = key.api_key.expose();
    KeyRow {
        token_hash: KeyHash::of(value).hex(),
        key_name: token::display_name(value),
        key_alias: None,
        user_id: None,
        team_id: None,
        models: json!([]),
        max_budget_nanos: None,
        budget_duration: None,
        budget_reset_at: None,
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
                existing.updated_by = fresh.updated_by;
                existing.updated_at = now;
                store.update_key(existing).await?;
            }
        }
        tracing::info!(key = %token::display_name(key.api_key.expose()), declared_in = %key.path, rpm_limit = ?key.rpm,
            tpm_limit = ?key.tpm, "declared key stored");
    }
    Ok(())
}
