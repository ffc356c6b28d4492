//! The request path's view of the store's virtual keys: a map from key hash to record, filled on a miss and
//! dropped on change.
//!
//! - A hit is a read-locked map lookup (never held across an await) and a clock read.
//! - A miss is single-flight: concurrent requests with the same unknown key share one store query, which has
//!   [`LOOKUP_DEADLINE`]; past it the request gets 503 `store_unavailable` (fail closed: an unchecked key is not
//!   admitted). A key cached before the outage keeps working on its stale entry (fail open for known keys).
//! - Unknown keys are remembered for [`NEGATIVE_TTL_MS`], so a flood of one wrong key costs one query per period.
//! - Entries live `ttl` (`general_settings.user_api_key_cache_ttl`, LiteLLM's name, default 60 s): the bound on
//!   how long another replica may still honour a key changed elsewhere. In this process, a change through the
//!   management API drops the entry at once ([`KeyCache::invalidate`]), and with Redis it is published to every
//!   replica, whose subscriber drops it too ([`KeyCache::forget`]; `shared_state::invalidation`), within a second.
//! - A key's entry holds what the request path needs of its team (models, blocked, rate limits, budget) and of its
//!   owner (rate limits, budget), read in the same lookup; a team change in this process drops every entry of
//!   that team ([`KeyCache::invalidate_team`]), a user change every key the user owns
//!   ([`KeyCache::invalidate_user`]), so no key is served with a stale team or owner here, and other replicas see
//!   it within `ttl`, as for keys.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc, Mutex, OnceLock, RwLock,
    },
    time::Duration,
};

use futures_util::{
    future::{BoxFuture, Shared},
    FutureExt,
};

use super::{token::KeyHash, AccessError, KeyRecord};
use crate::{clock::monotonic_ms, store::Store};

/// The longest a request waits for the store to look up a key it has not seen.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(2);
/// How long a key the store does not know is remembered as unknown.
pub const NEGATIVE_TTL_MS: u64 = 5_000;
/// Unknown keys are remembered only while the map holds fewer entries than this (a flood of distinct random keys
/// must not grow memory without bound).
const MAX_ENTRIES: usize = 200_000;

type Found = Result<Option<Arc<KeyRecord>>, AccessError>;

#[derive(Clone)]
struct Entry {
    key: Option<Arc<KeyRecord>>,
    fetched_ms: u64,
}

struct Inner {
    store: Store,
    ttl_ms: u64,
    entries: RwLock<HashMap<KeyHash, Entry>>,
    pending: Mutex<HashMap<KeyHash, Shared<BoxFuture<'static, Found>>>>,
    /// Bumped by every invalidation: a lookup that started before one does not cache what it read.
    generation: AtomicU64,
    /// Store queries made for keys (`tollgate_key_store_lookups_total`).
    lookups: AtomicU64,
    /// Where changes are announced to other replicas (set when Redis is configured). Unbounded: it carries
    /// management API changes, at the rate admins make them, never request-path traffic.
    publisher: OnceLock<tokio::sync::mpsc::UnboundedSender<Change>>,
}

/// A change another replica must drop its cached keys for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key changed or was deleted.
    Key(KeyHash),
    /// The team changed (blocked, models, limits, budget, members) or was deleted: every key of the team.
    Team(String),
    /// The user changed (limits, budget) or was deleted: every key the user owns.
    User(String),
    /// The end user changed (blocked, limits, budget) or was deleted (`access::end_users`).
    EndUser(String),
}

impl Change {
    /// How the change travels on the invalidation channel: a key as its hash's hex (as before teams and users
    /// were announced, so older replicas still read it), a team or user as `team:<id>` / `user:<id>`.
    pub fn to_wire(&self) -> String {
        match self {
            Change::Key(hash) => hash.hex(),
            Change::Team(id) => format!("team:{id}"),
            Change::User(id) => format!("user:{id}"),
            Change::EndUser(id) => format!("end_user:{id}"),
        }
    }

    pub fn from_wire(payload: &str) -> Option<Change> {
        if let Some(id) = payload.strip_prefix("team:") {
            return Some(Change::Team(id.to_owned()));
        }
        if let Some(id) = payload.strip_prefix("user:") {
            return Some(Change::User(id.to_owned()));
        }
        if let Some(id) = payload.strip_prefix("end_user:") {
            return Some(Change::EndUser(id.to_owned()));
        }
        KeyHash::from_hex(payload).map(Change::Key)
    }
}

#[derive(Clone)]
pub struct KeyCache(Arc<Inner>);

impl KeyCache {
    pub fn new(store: Store, ttl: Duration) -> KeyCache {
        KeyCache(Arc::new(Inner {
            store,
            ttl_ms: ttl.as_millis() as u64,
            entries: RwLock::default(),
            pending: Mutex::default(),
            generation: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            publisher: OnceLock::new(),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// Store queries made so far for keys not in the cache (or whose entry had expired).
    pub fn lookups(&self) -> u64 {
        self.0.lookups.load(SeqCst)
    }

    /// The key with this hash, `None` when the store has no such key.
    pub async fn get(&self, hash: KeyHash) -> Found {
        let now = monotonic_ms();
        let cached = self.0.entries.read().ok().and_then(|m| m.get(&hash).cloned());
        if let Some(entry) = &cached {
            let ttl = if entry.key.is_some() { self.0.ttl_ms } else { NEGATIVE_TTL_MS };
            if now.saturating_sub(entry.fetched_ms) < ttl {
                return Ok(entry.key.clone());
            }
        }
        let lookup = match self.0.pending.lock() {
            Ok(mut pending) => pending.entry(hash).or_insert_with(|| self.lookup(hash)).clone(),
            // A panic elsewhere poisoned the lock: look up alone rather than fail the request.
            Err(_) => self.lookup(hash),
        };
        match lookup.await {
            Err(AccessError::StoreUnavailable) => match cached {
                Some(Entry { key: Some(stale), .. }) => Ok(Some(stale)),
                _ => Err(AccessError::StoreUnavailable),
            },
            found => found,
        }
    }

    /// Forgets `hash` (the key changed or was deleted) here and, with Redis, on every replica.
    pub fn invalidate(&self, hash: &KeyHash) {
        self.forget(hash);
        self.publish(Change::Key(*hash));
    }

    fn publish(&self, change: Change) {
        if let Some(publisher) = self.0.publisher.get() {
            let _ = publisher.send(change);
        }
    }

    /// Applies a change another replica announced, in this process only (end users are not cached here).
    pub fn apply(&self, change: &Change) {
        match change {
            Change::Key(hash) => self.forget(hash),
            Change::Team(id) => self.forget_team(id),
            Change::User(id) => self.forget_user(id),
            Change::EndUser(_) => {}
        }
    }

    /// Forgets `hash` in this process only (a replica announced a change); lookups already running do not cache
    /// what they read.
    pub fn forget(&self, hash: &KeyHash) {
        self.0.generation.fetch_add(1, SeqCst);
        if let Ok(mut entries) = self.0.entries.write() {
            entries.remove(hash);
        }
    }

    /// Forgets every key of `team_id` (the team changed or was deleted) here and, with Redis, on every replica.
    pub fn invalidate_team(&self, team_id: &str) {
        self.forget_team(team_id);
        self.publish(Change::Team(team_id.to_owned()));
    }

    fn forget_team(&self, team_id: &str) {
        self.0.generation.fetch_add(1, SeqCst);
        if let Ok(mut entries) = self.0.entries.write() {
            entries.retain(|_, e| e.key.as_ref().and_then(|k| k.team.as_ref()).is_none_or(|t| t.team_id != team_id));
        }
    }

    /// Forgets every key owned by `user_id` (the user's budget or limits changed, or the user was deleted) here
    /// and, with Redis, on every replica.
    pub fn invalidate_user(&self, user_id: &str) {
        self.forget_user(user_id);
        self.publish(Change::User(user_id.to_owned()));
    }

    fn forget_user(&self, user_id: &str) {
        self.0.generation.fetch_add(1, SeqCst);
        if let Ok(mut entries) = self.0.entries.write() {
            entries.retain(|_, e| e.key.as_ref().is_none_or(|k| k.user_id.as_deref() != Some(user_id)));
        }
    }

    /// Forgets every key (announcements may have been missed while the subscriber was disconnected).
    pub fn forget_all(&self) {
        self.0.generation.fetch_add(1, SeqCst);
        if let Ok(mut entries) = self.0.entries.write() {
            entries.clear();
        }
    }

    /// Announces every later invalidation (keys, teams, users) on `publisher` (once; later calls are ignored).
    pub fn publish_to(&self, publisher: tokio::sync::mpsc::UnboundedSender<Change>) {
        let _ = self.0.publisher.set(publisher);
    }

    fn lookup(&self, hash: KeyHash) -> Shared<BoxFuture<'static, Found>> {
        let inner = self.0.clone();
        let generation = inner.generation.load(SeqCst);
        async move {
            inner.lookups.fetch_add(1, SeqCst);
            let read = actix_rt::time::timeout(LOOKUP_DEADLINE, read_key(&inner.store, hash)).await;
            let found = match read {
                Ok(Ok(key)) => Ok(key.map(Arc::new)),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "key lookup failed");
                    Err(AccessError::StoreUnavailable)
                }
                Err(_) => {
                    tracing::error!(deadline_ms = LOOKUP_DEADLINE.as_millis() as u64, "key lookup timed out");
                    Err(AccessError::StoreUnavailable)
                }
            };
            if let Ok(key) = &found {
                if let Ok(mut entries) = inner.entries.write() {
                    let room = key.is_some() || entries.len() < MAX_ENTRIES;
                    if room && inner.generation.load(SeqCst) == generation {
                        entries.insert(hash, Entry { key: key.clone(), fetched_ms: monotonic_ms() });
                    }
                }
            }
            if let Ok(mut pending) = inner.pending.lock() {
                pending.remove(&hash);
            }
            found
        }
        .boxed()
        .shared()
    }
}

/// A key, its team, its owner (user), and for its budgets its membership and the stored spend of each budget's
/// current period, within one deadline.
async fn read_key(store: &Store, hash: KeyHash) -> Result<Option<KeyRecord>, crate::store::StoreError> {
    let Some(row) = store.key_by_hash(&hash.hex()).await? else { return Ok(None) };
    let team = match &row.team_id {
        Some(id) => store.team_by_id(id).await?,
        None => None,
    };
    let user = match &row.user_id {
        Some(id) => store.user_by_id(id).await?,
        None => None,
    };
    let Some(mut record) = KeyRecord::from_rows(&row, team.as_ref(), user.as_ref()) else { return Ok(None) };
    let member = match (&row.team_id, &row.user_id) {
        (Some(team), Some(user)) => store.membership(team, user).await?,
        _ => None,
    };
    let mut charges =
        super::budgets::key_charges(&row, record.shown_name(), team.as_ref(), user.as_ref(), member.as_ref());
    let now = crate::clock::unix_secs();
    for charge in &mut charges.charges {
        super::budgets::load_spend(store, charge, now).await?;
    }
    for charge in charges.per_model.values_mut() {
        super::budgets::load_spend(store, charge, now).await?;
    }
    record.budgets = charges.charges;
    record.model_budgets = charges.per_model;
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changes_travel_as_key_hex_or_prefixed_ids_and_come_back_the_same() {
        let hash = KeyHash::of("sk-abc");
        let cases = [
            (Change::Key(hash), hash.hex()),
            (Change::Team("team-1".into()), "team:team-1".into()),
            (Change::User("a:b@c".into()), "user:a:b@c".into()),
            (Change::EndUser("customer-9".into()), "end_user:customer-9".into()),
        ];
        for (change, wire) in cases {
            assert_eq!(change.to_wire(), wire);
            assert_eq!(Change::from_wire(&wire), Some(change));
        }
        assert_eq!(Change::from_wire("nonsense"), None);
    }
    use crate::store::keys::KeyRow;

    fn row(value: &str, blocked: bool) -> KeyRow {
        KeyRow {
            token_hash: KeyHash::of(value).hex(),
            key_name: "sk-...test".into(),
            key_alias: None,
            user_id: None,
            team_id: None,
            models: json!([]),
            max_budget_nanos: None,
            budget_duration: None,
            budget_reset_at: None,
            soft_budget_nanos: None,
            model_max_budget: json!({}),
            rpm_limit: None,
            tpm_limit: None,
            max_parallel_requests: None,
            model_rpm_limit: json!({}),
            model_tpm_limit: json!({}),
            expires_at: None,
            blocked,
            metadata: json!({}),
            created_by: None,
            updated_by: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    async fn cache() -> (KeyCache, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("tollgate-cache-{}.db", uuid::Uuid::new_v4().simple()));
        let store = Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await;
        let store = store.unwrap_or_else(|e| unreachable!("{e}"));
        (KeyCache::new(store, Duration::from_secs(60)), path)
    }

    #[actix_rt::test]
    async fn concurrent_misses_share_one_lookup_and_hits_need_none() {
        let (cache, path) = cache().await;
        let _ = cache.store().insert_key(row("sk-shared", false)).await;
        let hash = KeyHash::of("sk-shared");
        let all = futures_util::future::join_all((0..50).map(|_| cache.get(hash))).await;
        assert!(all.iter().all(|r| matches!(r, Ok(Some(k)) if !k.blocked)));
        assert_eq!(cache.lookups(), 1, "fifty concurrent misses, one query");
        for _ in 0..10 {
            assert!(matches!(cache.get(hash).await, Ok(Some(_))));
        }
        assert_eq!(cache.lookups(), 1, "hits never query");
        let unknown = KeyHash::of("sk-unknown");
        assert!(matches!(cache.get(unknown).await, Ok(None)));
        assert!(matches!(cache.get(unknown).await, Ok(None)));
        assert_eq!(cache.lookups(), 2, "an unknown key is remembered as unknown");
        let _ = std::fs::remove_file(path);
    }

    #[actix_rt::test]
    async fn a_change_is_seen_after_invalidation_not_before() {
        let (cache, path) = cache().await;
        let _ = cache.store().insert_key(row("sk-change", false)).await;
        let hash = KeyHash::of("sk-change");
        assert!(matches!(cache.get(hash).await, Ok(Some(k)) if !k.blocked));
        let _ = cache.store().update_key(row("sk-change", true)).await;
        assert!(matches!(cache.get(hash).await, Ok(Some(k)) if !k.blocked), "cached until invalidated");
        cache.invalidate(&hash);
        assert!(matches!(cache.get(hash).await, Ok(Some(k)) if k.blocked));
        let _ = cache.store().delete_keys(&[hash.hex()]).await;
        cache.invalidate(&hash);
        assert!(matches!(cache.get(hash).await, Ok(None)));
        let _ = std::fs::remove_file(path);
    }
}
