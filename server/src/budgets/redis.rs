//! Budgets shared by replicas: Redis holds, per budget and period, how much of the cap has been handed out
//! (`<prefix>budget:<scope>:<period_start>`: every replica's settled spend plus the leases they hold). A replica
//! whose lease cannot cover a reservation takes a bigger one with one Lua script call ([`LEASE`]): at most what is
//! left of the cap, so what all replicas can reserve together never passes the cap. Unused lease goes back when
//! the account is idle ([`super::ledger::LEASE_IDLE_MS`]); a cost above its reservation (an estimate that fell
//! short) is added to the counter, past the cap if need be. docs/budgets.md states the bounds.
//!
//! **Failure choice: fall back to in-process enforcement.** Each script call has the Redis deadline; when Redis errs
//! or is late the reservation is checked against this replica's own view of spend (the store's at load, its own
//! since, and the most every replica had taken at the last answer), so an outage neither stops traffic nor lets a
//! replica spend without any bound; logged once when it starts and once when Redis answers again.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use deadpool_redis::redis::Script;

use crate::redis_pool::Pools;

use super::ledger::Ledger;

/// Grants up to ARGV[2] of the cap ARGV[1] on counter KEYS[1], first set to ARGV[3] (the store's spend for the
/// period) if it does not exist; ARGV[4] is its lifetime in seconds. Returns `{granted, counter after}`.
const LEASE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[3]) end
local used = tonumber(redis.call('GET', KEYS[1]))
local cap, want = tonumber(ARGV[1]), tonumber(ARGV[2])
local grant = math.min(cap - used, want)
if grant > 0 then
  used = redis.call('INCRBY', KEYS[1], grant)
else
  grant = 0
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {grant, used}
";

/// Adds ARGV[1] (negative: gives a lease back) to KEYS[1] if it exists.
const ADD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
return 1
";

/// How long a counter lives after its last lease: longer than any period's use; a counter that expired restarts
/// from the store's spend.
const COUNTER_TTL_SECS: u64 = 40 * 86_400;

/// A lease Redis granted.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub granted: u64,
    /// The counter after the grant: every replica's spend and leases.
    pub total: u64,
}

struct Inner {
    pool: Pools,
    prefix: String,
    deadline: Duration,
    down: AtomicBool,
    lease: Script,
    add: Script,
}

#[derive(Clone)]
pub struct Leases(Arc<Inner>);

impl Leases {
    pub fn new(pool: Pools, prefix: String, deadline: Duration) -> Leases {
        Leases(Arc::new(Inner {
            pool,
            prefix,
            deadline,
            down: AtomicBool::new(false),
            lease: Script::new(LEASE),
            add: Script::new(ADD),
        }))
    }

    fn key(&self, scope: &str, period_start: i64) -> String {
        format!("{}budget:{scope}:{period_start}", self.0.prefix)
    }

    /// Asks for `want` of the budget `scope` (cap `cap`) for the period starting at `period_start`; `None` when
    /// Redis did not answer in time (the caller falls back to in-process enforcement).
    pub async fn take(&self, scope: &str, period_start: i64, cap: u64, stored: u64, want: u64) -> Option<Grant> {
        let mut invocation = self.0.lease.prepare_invoke();
        invocation.key(self.key(scope, period_start)).arg(cap).arg(want).arg(stored).arg(COUNTER_TTL_SECS);
        let call = async |c: &mut _| invocation.invoke_async::<Vec<i64>>(c).await;
        let answer = match self.0.pool.run(self.0.deadline, call).await {
            Ok(answer) => answer,
            Err(e) => return self.failed(&e),
        };
        if self.0.down.swap(false, SeqCst) {
            tracing::warn!("Redis answers again: budgets are leased across replicas again");
        }
        let n = |i: usize| answer.get(i).copied().and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
        Some(Grant { granted: n(0), total: n(1) })
    }

    /// Gives `amount` of a lease back (idle, or granted for a period that has ended).
    pub fn give_back(&self, scope: &str, period_start: i64, amount: u64) {
        self.spawn_add(self.key(scope, period_start), -(i64::try_from(amount).unwrap_or(i64::MAX)));
    }

    /// Counts spend above a reservation (the estimate fell short).
    pub fn count_excess(&self, scope: &str, period_start: i64, amount: u64) {
        self.spawn_add(self.key(scope, period_start), i64::try_from(amount).unwrap_or(i64::MAX));
    }

    fn failed<T>(&self, why: &str) -> Option<T> {
        if !self.0.down.swap(true, SeqCst) {
            tracing::error!(
                error = why,
                deadline_ms = self.0.deadline.as_millis() as u64,
                "Redis did not answer a budget lease: budgets are enforced by this replica's own view of spend \
                 until it does (docs/budgets.md)"
            );
        }
        None
    }

    /// Runs [`ADD`] on a task of its own (nobody waits), within ten deadlines; a failure is logged with the outage.
    fn spawn_add(&self, key: String, delta: i64) {
        if delta == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let leases = self.clone();
        runtime.spawn(async move {
            let inner = &leases.0;
            let mut invocation = inner.add.prepare_invoke();
            invocation.key(key).arg(delta);
            let call = async |c: &mut _| invocation.invoke_async::<i64>(c).await;
            if let Err(e) = inner.pool.run(inner.deadline * 10, call).await {
                let _: Option<()> = leases.failed(&e);
            }
        });
    }

    /// Every 250 ms, gives back the leases of accounts idle for [`super::ledger::LEASE_IDLE_MS`]. The task holds
    /// the ledger weakly: it ends with the ledger.
    pub(super) fn start_returns(&self, ledger: &Ledger) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let weak = ledger.downgrade();
        let leases = self.clone();
        runtime.spawn(async move {
            loop {
                actix_rt::time::sleep(Duration::from_millis(250)).await;
                let Some(ledger) = Ledger::upgrade(&weak) else { return };
                for (scope, period_start, amount) in ledger.take_idle_leases(crate::clock::monotonic_ms()) {
                    leases.give_back(&scope, period_start, amount);
                }
            }
        });
    }
}
