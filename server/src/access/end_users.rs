//! End users (LiteLLM's customers): who the request's `user` field names. The management API's shapes
//! (`/customer/new|info|update|delete|list|block|unblock`) and rules, and the request path's cache of them.
//!
//! Limits (`rpm_limit`, `tpm_limit`, `max_parallel_requests`) and budgets (`max_budget`, `budget_duration`) are
//! stored and enforced; LiteLLM's other budget fields (`soft_budget`, `budget_id`, ...) are refused as not
//! supported yet. An unknown `user` is served without limits
//! (as LiteLLM does); a blocked one is refused.
//!
//! The cache follows `cache.rs`'s rule for waiting: a hit is a read-locked map lookup; a miss is single-flight and
//! waits at most [`super::cache::LOOKUP_DEADLINE`] (then 503, fail closed); unknown names are remembered
//! [`super::cache::NEGATIVE_TTL_MS`] within a bounded map; entries live the key cache's TTL, and a change through
//! this process's management API drops the entry at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use futures_util::{
    future::{BoxFuture, Shared},
    FutureExt,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    cache::{Change, LOOKUP_DEADLINE, NEGATIVE_TTL_MS},
    manage::limit,
    AccessError,
};
use crate::{
    clock::monotonic_ms,
    limits::Limits,
    store::{end_users::EndUserRow, Store},
};

/// Unknown end users are remembered only while the map is smaller than this (the `user` field is the caller's).
const MAX_ENTRIES: usize = 100_000;
/// The longest end-user id: longer `user` values are never looked up or remembered (they name no end user that
/// `/customer/new` could have created), so the cache's memory stays bounded by `MAX_ENTRIES` short strings.
pub const MAX_ID_BYTES: usize = 256;

/// What the request path knows of an end user.
#[derive(Debug, Clone, PartialEq)]
pub struct EndUserRecord {
    pub id: String,
    pub blocked: bool,
    pub limits: Limits,
    /// `max_budget` over `budget_duration`, with the stored spend of its current period at load.
    pub budget: Option<crate::budgets::Charge>,
}

impl EndUserRecord {
    pub fn of(row: &EndUserRow) -> EndUserRecord {
        let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        let budget = super::budgets::end_user_budget(row);
        EndUserRecord {
            id: row.user_id.clone(),
            budget: budget.is_set().then(|| crate::budgets::Charge {
                kind: crate::budgets::BudgetKind::EndUser,
                id: row.user_id.clone(),
                name: row.user_id.clone(),
                budget,
                stored: None,
            }),
            blocked: row.blocked,
            limits: Limits {
                rpm: count(row.rpm_limit),
                tpm: count(row.tpm_limit),
                max_parallel: count(row.max_parallel_requests),
                ..Limits::default()
            },
        }
    }
}

/// `/customer/new`'s and `/customer/update`'s body (LiteLLM's `NewCustomerRequest` / `UpdateCustomerRequest`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    pub user_id: Option<String>,
    pub alias: Option<String>,
    pub blocked: Option<bool>,
    pub rpm_limit: Option<Value>,
    pub tpm_limit: Option<Value>,
    pub max_parallel_requests: Option<Value>,
    /// USD per period (`budget_duration`), or for the end user's lifetime.
    pub max_budget: Option<Value>,
    pub budget_duration: Option<Value>,
    // Refused until enforced (see `parse`); accepted by the parser so the refusal can name them.
    pub soft_budget: Option<Value>,
    pub model_max_budget: Option<Value>,
    pub budget_id: Option<Value>,
    pub spend: Option<Value>,
    pub allowed_model_region: Option<Value>,
    pub default_model: Option<Value>,
}

impl CustomerRequest {
    pub fn parse(body: &[u8]) -> Result<CustomerRequest, AccessError> {
        let request: CustomerRequest = super::manage::parse_json(body)?;
        let refused: Vec<&str> = [
            (&request.soft_budget, "soft_budget"),
            (&request.model_max_budget, "model_max_budget"),
            (&request.budget_id, "budget_id"),
            (&request.spend, "spend"),
            (&request.allowed_model_region, "allowed_model_region"),
            (&request.default_model, "default_model"),
        ]
        .into_iter()
        .filter(|(v, _)| v.as_ref().is_some_and(|v| !v.is_null()))
        .map(|(_, name)| name)
        .collect();
        if !refused.is_empty() {
            return Err(AccessError::NotSupportedYet(format!(
                "not supported yet: {} (tollgate does not enforce these on end users yet, so it does not accept them)",
                refused.join(", ")
            )));
        }
        Ok(request)
    }

    /// The end user it names (`user_id`, required).
    pub fn id(&self) -> Result<&str, AccessError> {
        let id = self
            .user_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| AccessError::bad_input("user_id", "`user_id` is required"))?;
        if id.len() > MAX_ID_BYTES {
            return Err(AccessError::bad_input("user_id", format!("`user_id` is longer than {MAX_ID_BYTES} bytes")));
        }
        Ok(id)
    }
}

/// The row for `/customer/new`.
pub fn new_end_user(request: &CustomerRequest, now: i64) -> Result<EndUserRow, AccessError> {
    let mut row = EndUserRow {
        user_id: request.id()?.to_owned(),
        alias: None,
        max_budget_nanos: None,
        budget_duration: None,
        budget_reset_at: None,
        blocked: false,
        created_at: now,
        rpm_limit: None,
        tpm_limit: None,
        max_parallel_requests: None,
    };
    apply(&mut row, request, now)?;
    Ok(row)
}

/// `row` with what `request` sets changed (`/customer/update`; also `/customer/new`); a new `budget_duration`
/// starts a new period at `now`.
pub fn apply(row: &mut EndUserRow, request: &CustomerRequest, now: i64) -> Result<(), AccessError> {
    let (max_budget, duration) = (request.max_budget.as_ref(), request.budget_duration.as_ref());
    super::budgets::set_budget(
        (&mut row.max_budget_nanos, &mut row.budget_duration, &mut row.budget_reset_at),
        None,
        max_budget,
        duration,
        now,
    )?;
    if let Some(alias) = &request.alias {
        row.alias = Some(alias.clone());
    }
    if let Some(blocked) = request.blocked {
        row.blocked = blocked;
    }
    if let Some(n) = limit("rpm_limit", request.rpm_limit.as_ref())? {
        row.rpm_limit = Some(n);
    }
    if let Some(n) = limit("tpm_limit", request.tpm_limit.as_ref())? {
        row.tpm_limit = Some(n);
    }
    if let Some(n) = limit("max_parallel_requests", request.max_parallel_requests.as_ref())? {
        row.max_parallel_requests = Some(n);
    }
    Ok(())
}

/// Bodies naming end users: `/customer/delete`, `/customer/block`, `/customer/unblock`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRefs {
    #[serde(default)]
    pub user_ids: Vec<String>,
}

impl CustomerRefs {
    pub fn parse(body: &[u8]) -> Result<CustomerRefs, AccessError> {
        let refs: CustomerRefs = super::manage::parse_json(body)?;
        if refs.user_ids.is_empty() {
            return Err(AccessError::bad_input("user_ids", "name the end users in `user_ids`"));
        }
        Ok(refs)
    }
}

/// LiteLLM's `litellm_budget_table`, the limits part of it.
#[derive(Debug, Serialize)]
pub struct CustomerLimits {
    /// USD.
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
}

/// An end user as `/customer/info` and `/customer/list` show it (LiteLLM's `LiteLLM_EndUserTable` shape).
#[derive(Debug, Serialize)]
pub struct CustomerInfo {
    pub user_id: String,
    pub alias: Option<String>,
    pub blocked: bool,
    /// Null when the end user has no limits or budget.
    pub litellm_budget_table: Option<CustomerLimits>,
    /// USD spent in the current budget period (the end user's lifetime without `budget_duration`).
    pub spend: f64,
    /// The end of the current budget period (ISO 8601); null without `budget_duration`.
    pub budget_reset_at: Option<String>,
}

impl CustomerInfo {
    pub fn of(row: &EndUserRow) -> CustomerInfo {
        let limited = row.rpm_limit.is_some()
            || row.tpm_limit.is_some()
            || row.max_parallel_requests.is_some()
            || row.max_budget_nanos.is_some();
        CustomerInfo {
            user_id: row.user_id.clone(),
            alias: row.alias.clone(),
            blocked: row.blocked,
            spend: 0.0,
            budget_reset_at: None,
            litellm_budget_table: limited.then_some(CustomerLimits {
                max_budget: super::budgets::usd(row.max_budget_nanos),
                budget_duration: row.budget_duration.clone(),
                rpm_limit: row.rpm_limit,
                tpm_limit: row.tpm_limit,
                max_parallel_requests: row.max_parallel_requests,
            }),
        }
    }
}

type Found = Result<Option<Arc<EndUserRecord>>, AccessError>;

#[derive(Clone)]
struct Entry {
    user: Option<Arc<EndUserRecord>>,
    fetched_ms: u64,
}

struct Inner {
    store: Store,
    ttl_ms: u64,
    entries: RwLock<HashMap<String, Entry>>,
    pending: Mutex<HashMap<String, Shared<BoxFuture<'static, Found>>>>,
    /// Where changes are announced to other replicas (with Redis; `shared_state::invalidation`).
    publisher: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Change>>,
}

/// The request path's view of the store's end users.
#[derive(Clone)]
pub struct EndUserCache(Arc<Inner>);

impl EndUserCache {
    pub fn new(store: Store, ttl: Duration) -> EndUserCache {
        EndUserCache(Arc::new(Inner {
            store,
            ttl_ms: ttl.as_millis() as u64,
            entries: RwLock::default(),
            pending: Mutex::default(),
            publisher: std::sync::OnceLock::new(),
        }))
    }

    /// Forgets `id` (the end user changed or was deleted) here and, with Redis, on every replica.
    pub fn invalidate(&self, id: &str) {
        self.forget(id);
        if let Some(publisher) = self.0.publisher.get() {
            let _ = publisher.send(Change::EndUser(id.to_owned()));
        }
    }

    /// Announces every later [`EndUserCache::invalidate`] on `publisher` (once).
    pub fn publish_to(&self, publisher: tokio::sync::mpsc::UnboundedSender<Change>) {
        let _ = self.0.publisher.set(publisher);
    }

    /// Forgets every end user (announcements may have been missed while the subscriber was disconnected).
    pub fn forget_all(&self) {
        self.0.entries.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// The end user named `id`, `None` when the store has none (or `id` is longer than any end user's).
    pub async fn get(&self, id: &str) -> Found {
        if id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        let now = monotonic_ms();
        let cached = self.0.entries.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned();
        if let Some(entry) = &cached {
            let ttl = if entry.user.is_some() { self.0.ttl_ms } else { NEGATIVE_TTL_MS };
            if now.saturating_sub(entry.fetched_ms) < ttl {
                return Ok(entry.user.clone());
            }
        }
        let lookup = {
            let mut pending = self.0.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.entry(id.to_owned()).or_insert_with(|| self.lookup(id.to_owned())).clone()
        };
        match lookup.await {
            Err(AccessError::StoreUnavailable) => match cached {
                Some(Entry { user: Some(stale), .. }) => Ok(Some(stale)),
                _ => Err(AccessError::StoreUnavailable),
            },
            found => found,
        }
    }

    /// Forgets `id` (changed or deleted through this process's management API).
    pub fn forget(&self, id: &str) {
        self.0.entries.write().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    fn lookup(&self, id: String) -> Shared<BoxFuture<'static, Found>> {
        let inner = self.0.clone();
        async move {
            let read = async {
                let Some(row) = inner.store.end_user(&id).await? else { return Ok(None) };
                let mut record = EndUserRecord::of(&row);
                let now = crate::clock::unix_secs();
                if let Some(charge) = &mut record.budget {
                    super::budgets::load_spend(&inner.store, charge, now).await?;
                }
                Ok::<_, crate::store::StoreError>(Some(record))
            };
            let read = actix_rt::time::timeout(LOOKUP_DEADLINE, read).await;
            let found = match read {
                Ok(Ok(record)) => Ok(record.map(Arc::new)),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "end user lookup failed");
                    Err(AccessError::StoreUnavailable)
                }
                Err(_) => {
                    tracing::error!(deadline_ms = LOOKUP_DEADLINE.as_millis() as u64, "end user lookup timed out");
                    Err(AccessError::StoreUnavailable)
                }
            };
            if let Ok(user) = &found {
                let mut entries = inner.entries.write().unwrap_or_else(PoisonError::into_inner);
                if user.is_some() || entries.len() < MAX_ENTRIES {
                    entries.insert(id.clone(), Entry { user: user.clone(), fetched_ms: monotonic_ms() });
                }
            }
            inner.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            found
        }
        .boxed()
        .shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_take_limits_and_refuse_budgets_by_name() {
        let request =
            CustomerRequest::parse(br#"{"user_id":"bob","alias":"Bob","rpm_limit":5,"max_parallel_requests":1}"#)
                .unwrap_or_else(|e| unreachable!("{e}"));
        let row = new_end_user(&request, 7).unwrap_or_else(|e| unreachable!("{e}"));
        let record = EndUserRecord::of(&row);
        assert_eq!((record.limits.rpm, record.limits.max_parallel, record.limits.tpm), (Some(5), Some(1), None));
        let info = serde_json::to_value(CustomerInfo::of(&row)).unwrap_or_default();
        assert_eq!(info["litellm_budget_table"]["rpm_limit"], 5);
        let cases: &[(&[u8], &str)] = &[
            (br#"{"user_id":"x","soft_budget":10}"#, "not_supported_yet"),
            (br#"{"user_id":"x","budget_id":"b","default_model":"m"}"#, "not_supported_yet"),
            (br#"{"user_id":"x","colour":1}"#, "invalid_value"),
        ];
        for (body, code) in cases {
            let err = CustomerRequest::parse(body).err().map(|e| e.code());
            assert_eq!(err, Some(*code), "{}", String::from_utf8_lossy(body));
        }
        let no_id = CustomerRequest::parse(br#"{"rpm_limit":1}"#).and_then(|r| new_end_user(&r, 0).map(drop));
        assert_eq!(no_id.err().and_then(|e| e.param().map(str::to_owned)), Some("user_id".into()));
        let bad =
            CustomerRequest::parse(br#"{"user_id":"x","tpm_limit":-1}"#).and_then(|r| new_end_user(&r, 0).map(drop));
        assert_eq!(bad.err().and_then(|e| e.param().map(str::to_owned)), Some("tpm_limit".into()));
        let long = format!(r#"{{"user_id":"{}"}}"#, "u".repeat(MAX_ID_BYTES + 1));
        let long = CustomerRequest::parse(long.as_bytes()).and_then(|r| new_end_user(&r, 0).map(drop));
        assert_eq!(long.err().and_then(|e| e.param().map(str::to_owned)), Some("user_id".into()));
    }

    #[actix_rt::test]
    async fn overlong_user_fields_are_never_looked_up_or_remembered() {
        let path = std::env::temp_dir().join(format!("tollgate-end-users-{}.db", uuid::Uuid::new_v4().simple()));
        let store = Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await;
        let cache = EndUserCache::new(store.unwrap_or_else(|e| unreachable!("{e}")), Duration::from_secs(60));
        assert!(matches!(cache.get(&"x".repeat(MAX_ID_BYTES + 1)).await, Ok(None)));
        assert!(matches!(cache.get("short-unknown").await, Ok(None)));
        let entries = cache.0.entries.read().unwrap_or_else(PoisonError::into_inner).len();
        assert_eq!(entries, 1, "only the short unknown id is remembered");
        let _ = std::fs::remove_file(path);
    }
}
