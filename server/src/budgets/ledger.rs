//! The in-process ledger: one account per budgeted entity (its current period, spend, reservations and, with
//! Redis, its lease), each behind a mutex of its own. A reservation locks its accounts in name order (so two
//! reservations never wait on each other in a cycle), checks every cap, and takes every amount or none; the locks
//! are held for a few comparisons, never across an await. That makes it exact: spend + reservations never pass a
//! cap, at any concurrency.
//!
//! Periods roll lazily: the first reservation (or settlement, or read) after a reset instant starts the new period
//! at 0; spend of the old period stays in the store's history. Memory: one account per budgeted entity used.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
    },
};

use super::{redis::Leases, BudgetKind, Charge, Exceeded};
use crate::clock;

/// A lease nobody reserved from for this long goes back to Redis, for other replicas to use.
pub const LEASE_IDLE_MS: u64 = 1_000;

#[derive(Debug)]
struct Account {
    /// The ledger's name for it ([`Charge::scope`]), also its Redis counter's.
    scope: String,
    kind: BudgetKind,
    name: String,
    period_start: i64,
    resets_at: Option<i64>,
    cap: Option<u64>,
    soft: Option<u64>,
    /// Settled spend of the period this process knows of: the store's at load, plus this process's since.
    spent: u64,
    /// Reserved by requests still running.
    reserved: u64,
    /// The soft budget's warning was given for this period.
    soft_warned: bool,
    /// With Redis: budget this replica leased and has not reserved yet.
    lease: u64,
    /// Monotonic ms of the last reservation (idle leases go back).
    used_ms: u64,
    /// What the store held for this period when the account was made: a new Redis counter starts from it.
    stored: u64,
}

type Shared = Arc<Mutex<Account>>;

fn lock(account: &Shared) -> MutexGuard<'_, Account> {
    // A panic while holding the lock leaves plain numbers behind: still the best there are.
    account.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Account {
    fn new(charge: &Charge, now: i64) -> Account {
        let mut account = Account {
            scope: charge.scope(),
            kind: charge.kind,
            name: charge.name.clone(),
            period_start: i64::MIN,
            resets_at: None,
            cap: None,
            soft: None,
            spent: 0,
            reserved: 0,
            soft_warned: false,
            lease: 0,
            used_ms: 0,
            stored: 0,
        };
        account.refresh(charge, now);
        account
    }

    /// Takes the budget's current settings and moves to the period `now` is in: a new period starts from what the
    /// store held for it (if the entity was loaded in it), else from 0, with nothing reserved or leased (requests
    /// of the old period settle into the old period).
    fn refresh(&mut self, charge: &Charge, now: i64) {
        self.cap = charge.budget.cap;
        self.soft = charge.budget.soft;
        self.name.clone_from(&charge.name);
        let (start, end) = charge.budget.window(now);
        self.resets_at = end;
        if start == self.period_start {
            return;
        }
        self.period_start = start;
        self.stored = charge.stored.filter(|(p, _)| *p == start).map_or(0, |(_, s)| s);
        self.spent = self.stored;
        self.reserved = 0;
        self.soft_warned = false;
        self.lease = 0;
    }

    fn exceeded(&self, cap: u64) -> Exceeded {
        Exceeded { kind: self.kind, name: self.name.clone(), spent: self.spent, cap, resets_at: self.resets_at }
    }
}

/// What one step of a reservation found.
pub(super) enum Step {
    Taken(Vec<Entry>),
    Refused(Exceeded),
    /// These accounts' leases cannot cover the amount: `(index of the charge, the lease to ask Redis for)`.
    NeedLease(Vec<(usize, u64)>),
}

/// One account's part of a reservation.
pub(super) struct Entry {
    account: Shared,
    period_start: i64,
    amount: u64,
    /// Reserved from a Redis lease (else against the local view of spend).
    leased: bool,
}

/// Counters exported by `GET /metrics`.
#[derive(Debug, Default)]
pub struct BudgetStats {
    /// Per [`BudgetKind`] (in `ALL`'s order): soft budgets crossed (once per period and account).
    pub soft_crossed: [AtomicU64; 6],
    /// Per [`BudgetKind`]: requests refused.
    pub refused: [AtomicU64; 6],
    /// Reservations of 0 because the model group has no price (docs/budgets.md).
    pub unpriced: AtomicU64,
}

fn kind_index(kind: BudgetKind) -> usize {
    BudgetKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// Told, with a message naming the budget, when a settlement crosses a soft budget (the alerts webhook).
pub type SoftBudgetHook = Box<dyn Fn(String) + Send + Sync>;

pub(super) struct Inner {
    accounts: RwLock<HashMap<String, Shared>>,
    leases: Option<Leases>,
    stats: BudgetStats,
    soft_hook: std::sync::OnceLock<SoftBudgetHook>,
}

/// Every budget account of this process. Cheap to clone.
#[derive(Clone)]
pub struct Ledger(Arc<Inner>);

impl Ledger {
    pub fn in_process() -> Ledger {
        Ledger(Arc::new(Inner {
            accounts: RwLock::default(),
            leases: None,
            stats: BudgetStats::default(),
            soft_hook: std::sync::OnceLock::new(),
        }))
    }

    /// Budgets shared by replicas through Redis leases; starts the task that gives idle leases back.
    pub fn with_leases(leases: Leases) -> Ledger {
        let ledger = Ledger(Arc::new(Inner {
            accounts: RwLock::default(),
            leases: Some(leases),
            stats: BudgetStats::default(),
            soft_hook: std::sync::OnceLock::new(),
        }));
        ledger.0.leases.as_ref().inspect(|l| l.start_returns(&ledger));
        ledger
    }

    pub(super) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    pub(super) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Ledger> {
        weak.upgrade().map(Ledger)
    }

    pub fn stats(&self) -> &BudgetStats {
        &self.0.stats
    }

    /// Calls `hook` each time a soft budget is crossed (once per budget and period, with the WARN line); set once.
    pub fn on_soft_budget(&self, hook: SoftBudgetHook) {
        let _ = self.0.soft_hook.set(hook);
    }

    fn account(&self, charge: &Charge, now: i64) -> Shared {
        let scope = charge.scope();
        if let Some(a) = self.0.accounts.read().unwrap_or_else(PoisonError::into_inner).get(&scope) {
            return a.clone();
        }
        let mut accounts = self.0.accounts.write().unwrap_or_else(PoisonError::into_inner);
        accounts.entry(scope).or_insert_with(|| Arc::new(Mutex::new(Account::new(charge, now)))).clone()
    }

    /// [`Ledger::reserve_sized`] of a fixed amount.
    #[cfg(test)]
    pub async fn reserve(&self, charges: &[Charge], amount: u64, now: i64) -> Result<Reservation, Box<Exceeded>> {
        self.reserve_sized(charges, now, |_| amount).await
    }

    /// Reserves the amount `size` gives for the room left ([`Ledger::room_in`], found with the same account
    /// lookups as the reservation's) on every budget of `charges` with a cap (those without one are only
    /// counted at settlement), all or none, at `now` (Unix seconds). With Redis, accounts whose lease cannot cover
    /// the amount take a bigger lease first (one script call each); when Redis does not answer, this process's own
    /// view of spend decides (docs/budgets.md).
    pub async fn reserve_sized(
        &self,
        charges: &[Charge],
        now: i64,
        size: impl FnOnce(Option<u64>) -> u64,
    ) -> Result<Reservation, Box<Exceeded>> {
        let accounts: Vec<Shared> = charges.iter().map(|c| self.account(c, now)).collect();
        let amount = size(self.room_in(charges, &accounts, now));
        let mut leased_out: Vec<bool> = vec![false; charges.len()];
        let mut local_only = self.0.leases.is_none();
        // At most two rounds of leases: a lease taken is used at once unless other requests took it first, and
        // then the request is refused rather than kept waiting on Redis.
        for round in 0..3 {
            match self.step(charges, &accounts, amount, now, local_only) {
                Step::Taken(entries) => return Ok(Reservation { ledger: self.clone(), entries, cost: None }),
                Step::Refused(e) => return Err(self.refused(e)),
                Step::NeedLease(needs) => {
                    let Some(leases) = &self.0.leases else { return Err(self.internal_refusal(charges)) };
                    let mut redis_failed = false;
                    for (i, want) in needs {
                        let (Some(charge), Some(account)) = (charges.get(i), accounts.get(i)) else { continue };
                        let (period_start, cap, stored) = {
                            let a = lock(account);
                            (a.period_start, a.cap.unwrap_or(0), a.stored)
                        };
                        if round == 2 || leased_out.get(i).copied().unwrap_or(false) {
                            let a = lock(account);
                            return Err(self.refused(a.exceeded(cap)));
                        }
                        // Boxed: the Redis call's state is about 7 KB, and without the box every request's future
                        // carries it (and is moved, memcpy'd, at that size) even with no Redis configured.
                        let scope = charge.scope();
                        match Box::pin(leases.take(&scope, period_start, cap, stored, want)).await {
                            Some(grant) => {
                                let mut a = lock(account);
                                if a.period_start == period_start {
                                    a.lease += grant.granted;
                                    // Every replica's spend and leases: conservative, for the refusal message and
                                    // for the in-process fallback while Redis is down.
                                    let others = grant.total.saturating_sub(a.lease + a.reserved);
                                    a.spent = a.spent.max(others);
                                } else {
                                    leases.give_back(&charge.scope(), period_start, grant.granted);
                                }
                                // Less than asked: Redis has no more of this budget, a shortfall next round refuses.
                                if grant.granted < want {
                                    if let Some(flag) = leased_out.get_mut(i) {
                                        *flag = true;
                                    }
                                }
                            }
                            None => redis_failed = true,
                        }
                    }
                    local_only |= redis_failed;
                }
            }
        }
        Err(self.internal_refusal(charges))
    }

    fn refused(&self, e: Exceeded) -> Box<Exceeded> {
        if let Some(n) = self.0.stats.refused.get(kind_index(e.kind)) {
            n.fetch_add(1, Relaxed);
        }
        Box::new(e)
    }

    /// Unreachable in practice (leases only exist with Redis): refuse naming the first capped budget.
    fn internal_refusal(&self, charges: &[Charge]) -> Box<Exceeded> {
        let c = charges.iter().find(|c| c.budget.cap.is_some()).or(charges.first());
        let e = Exceeded {
            kind: c.map_or(BudgetKind::Key, |c| c.kind),
            name: c.map(|c| c.name.clone()).unwrap_or_default(),
            spent: 0,
            cap: c.and_then(|c| c.budget.cap).unwrap_or(0),
            resets_at: None,
        };
        self.refused(e)
    }

    /// One all-or-nothing attempt under the accounts' locks (taken in name order).
    fn step(&self, charges: &[Charge], accounts: &[Shared], amount: u64, now: i64, local_only: bool) -> Step {
        let mut order: Vec<usize> = (0..charges.len()).collect();
        order.sort_by_key(|&i| charges.get(i).map(Charge::scope));
        order.dedup_by_key(|i| charges.get(*i).map(Charge::scope));
        let mut guards: BTreeMap<usize, MutexGuard<'_, Account>> = BTreeMap::new();
        for i in order {
            if let Some(a) = accounts.get(i) {
                guards.insert(i, lock(a));
            }
        }
        let mut needs = Vec::new();
        for (i, a) in guards.iter_mut() {
            let Some(charge) = charges.get(*i) else { continue };
            a.refresh(charge, now);
            let Some(cap) = a.cap else { continue };
            // An unpriced request reserves 0 but still needs room: a budget at its cap admits nothing.
            let need = amount.max(1);
            if local_only {
                if a.spent.saturating_add(a.reserved).saturating_add(need) > cap {
                    return Step::Refused(a.exceeded(cap));
                }
            } else if a.lease < need {
                needs.push((*i, super::lease_size(cap, need - a.lease)));
            }
        }
        if !needs.is_empty() {
            return Step::NeedLease(needs);
        }
        let now_ms = clock::monotonic_ms();
        let mut entries = Vec::with_capacity(guards.len());
        for (i, a) in guards.iter_mut() {
            let (Some(account), Some(charge)) = (accounts.get(*i), charges.get(*i)) else { continue };
            let leased = !local_only && a.cap.is_some() && charge.budget.cap.is_some();
            let amount = if a.cap.is_some() { amount } else { 0 };
            if leased {
                a.lease -= amount.min(a.lease);
            }
            a.reserved += amount;
            a.used_ms = now_ms;
            entries.push(Entry { account: account.clone(), period_start: a.period_start, amount, leased });
        }
        Step::Taken(entries)
    }

    /// [`Ledger::room_in`], looking the accounts up.
    #[cfg(test)]
    pub fn room(&self, charges: &[Charge], now: i64) -> Option<u64> {
        let accounts: Vec<Shared> = charges.iter().map(|c| self.account(c, now)).collect();
        self.room_in(charges, &accounts, now)
    }

    /// The least budget left among `charges`' capped budgets in this process's view, `None` when none is capped:
    /// the cap less spend and reservations in process; with Redis, the lease held here (what this replica can
    /// reserve without asking). A hint for choosing a reservation's amount, not a reservation. `accounts[i]` is
    /// `charges[i]`'s account.
    fn room_in(&self, charges: &[Charge], accounts: &[Shared], now: i64) -> Option<u64> {
        let mut least: Option<u64> = None;
        for (charge, account) in charges.iter().zip(accounts).filter(|(c, _)| c.budget.cap.is_some()) {
            let mut a = lock(account);
            a.refresh(charge, now);
            let Some(cap) = a.cap else { continue };
            let room = match self.0.leases {
                Some(_) => a.lease,
                None => cap.saturating_sub(a.spent.saturating_add(a.reserved)),
            };
            least = Some(least.map_or(room, |l| l.min(room)));
        }
        least
    }

    /// Counts a reservation of 0 for a request whose model has no price (it is still bound by budgets at their
    /// cap, and its real cost, when known, is settled).
    pub fn count_unpriced(&self) {
        self.0.stats.unpriced.fetch_add(1, Relaxed);
    }

    /// This process's view of an entity's spend in the period starting at `period_start`, if it has an account
    /// for it (the management API shows the larger of this and the store's, which lags by the log writer).
    pub fn spent(&self, kind: BudgetKind, id: &str, period_start: i64) -> Option<u64> {
        let scope = format!("{}:{id}", kind.tag());
        let account = self.0.accounts.read().unwrap_or_else(PoisonError::into_inner).get(&scope).cloned()?;
        let a = lock(&account);
        (a.period_start == period_start).then_some(a.spent)
    }

    /// Forgets an entity's account (it was deleted; or its budget changed so much that the store's view is
    /// better: a new period anchor).
    pub fn forget(&self, kind: BudgetKind, id: &str) {
        let scope = format!("{}:{id}", kind.tag());
        self.0.accounts.write().unwrap_or_else(PoisonError::into_inner).remove(&scope);
    }

    /// Leases idle for [`LEASE_IDLE_MS`] at `now_ms`, taken back from their accounts: `(scope, period, amount)`.
    pub(super) fn take_idle_leases(&self, now_ms: u64) -> Vec<(String, i64, u64)> {
        let accounts: Vec<Shared> =
            self.0.accounts.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let mut out = Vec::new();
        for account in accounts {
            let mut a = lock(&account);
            if a.lease > 0 && a.reserved == 0 && now_ms.saturating_sub(a.used_ms) >= LEASE_IDLE_MS {
                let lease = std::mem::take(&mut a.lease);
                out.push((a.scope.clone(), a.period_start, lease));
            }
        }
        out
    }

    fn settle(&self, entries: &[Entry], cost: u64) {
        for e in entries {
            let mut a = lock(&e.account);
            if a.period_start != e.period_start {
                // The period ended while the request ran: its cost belongs to the old period, which the store
                // gets through the request log; this account already counts the new one.
                continue;
            }
            a.reserved = a.reserved.saturating_sub(e.amount);
            a.spent = a.spent.saturating_add(cost);
            if !e.leased && a.cap.is_some() && cost > 0 {
                if let Some(leases) = &self.0.leases {
                    // Reserved while Redis was unreachable: the spend came from no lease, so the shared counter
                    // is told (if Redis answers by now), for the other replicas.
                    leases.count_excess(&a.scope, e.period_start, cost);
                }
            } else if e.leased {
                if cost <= e.amount {
                    a.lease += e.amount - cost;
                } else if let Some(leases) = &self.0.leases {
                    // The estimate was short (a tokenizer's approximation): the excess is spent anyway and
                    // counted in Redis, past the cap if need be, so other replicas see it.
                    let excess = cost - e.amount;
                    let from_lease = excess.min(a.lease);
                    a.lease -= from_lease;
                    if excess > from_lease {
                        leases.count_excess(&a.scope, e.period_start, excess - from_lease);
                    }
                }
            }
            if let Some(soft) = a.soft {
                if a.spent >= soft && !a.soft_warned {
                    a.soft_warned = true;
                    if let Some(n) = self.0.stats.soft_crossed.get(kind_index(a.kind)) {
                        n.fetch_add(1, Relaxed);
                    }
                    let max_budget = a.cap.map(super::usd).unwrap_or_else(|| "none".into());
                    tracing::warn!(
                        budget = a.kind.tag(),
                        name = %a.name,
                        spend = %super::usd(a.spent),
                        soft_budget = %super::usd(soft),
                        max_budget = %max_budget,
                        "soft budget crossed (requests are still served)"
                    );
                    if let Some(hook) = self.0.soft_hook.get() {
                        hook(format!(
                            "tollgate: the {} `{}` crossed its soft budget: spend {} of soft budget {} (max budget \
                             {max_budget}); requests are still served",
                            a.kind.tag(),
                            a.name,
                            super::usd(a.spent),
                            super::usd(soft)
                        ));
                    }
                }
            }
        }
    }
}

/// A request's reserved budget. Settled with the request's real cost by [`Reservation::settle`] when the request
/// log's record is finished (however the request ended); dropped unsettled, it releases the reservation and
/// counts nothing.
pub struct Reservation {
    ledger: Ledger,
    entries: Vec<Entry>,
    cost: Option<u64>,
}

impl Reservation {
    /// `(kind, period_start)` of each budget reserved on: which period the request's cost belongs to.
    pub fn periods(&self) -> Vec<(BudgetKind, i64)> {
        self.entries.iter().map(|e| (lock(&e.account).kind, e.period_start)).collect()
    }

    /// Replaces the reservation by `cost` (nano-dollars) on every budget it was made on.
    pub fn settle(mut self, cost: u64) {
        self.cost = Some(cost);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.ledger.settle(&self.entries, self.cost.unwrap_or(0));
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("budgets", &self.entries.len()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    use futures_util::FutureExt;

    use super::*;
    use crate::{access::period::Period, budgets::Budget};

    fn charge(kind: BudgetKind, id: &str, cap: Option<u64>) -> Charge {
        Charge { kind, id: id.into(), name: id.into(), budget: Budget { cap, ..Budget::default() }, stored: None }
    }

    fn reserve(ledger: &Ledger, charges: &[Charge], amount: u64, now: i64) -> Result<Reservation, Box<Exceeded>> {
        // In-process reservations never wait.
        ledger.reserve(charges, amount, now).now_or_never().unwrap_or_else(|| unreachable!("in-process never waits"))
    }

    #[test]
    fn many_threads_never_take_spend_and_reservations_past_the_cap() {
        for (threads, per_thread, cap, amount, cost) in
            [(8u64, 50u64, 1_000u64, 100u64, 100u64), (16, 40, 1_050, 100, 60), (4, 10, 10_000, 7, 7)]
        {
            let ledger = Ledger::in_process();
            let charges = [charge(BudgetKind::Key, "k", Some(cap)), charge(BudgetKind::Team, "t", None)];
            let admitted = AtomicU64::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..per_thread {
                            if let Ok(r) = reserve(&ledger, &charges, amount, 0) {
                                admitted.fetch_add(1, SeqCst);
                                r.settle(cost);
                            }
                        }
                    });
                }
            });
            let spent = ledger.spent(BudgetKind::Key, "k", 0).unwrap_or(0);
            assert!(spent <= cap, "{spent} > {cap}");
            // Every request reserves `amount` and then costs `cost` (≤ amount): admission stops when the room
            // left is smaller than one reservation.
            let want =
                if cost == amount { (cap / amount).min(threads * per_thread) } else { (cap - amount) / cost + 1 };
            assert_eq!(admitted.load(SeqCst), want.min(threads * per_thread), "{threads}x{per_thread} cap {cap}");
            assert_eq!(ledger.spent(BudgetKind::Team, "t", 0), Some(admitted.load(SeqCst) * cost), "uncapped: counted");
        }
    }

    #[test]
    fn a_refusal_takes_nothing_and_names_the_budget() {
        let ledger = Ledger::in_process();
        let key = charge(BudgetKind::Key, "k", Some(1_000));
        let team = charge(BudgetKind::Team, "t", Some(150));
        let first = reserve(&ledger, &[key.clone(), team.clone()], 100, 0);
        assert!(first.is_ok());
        let refused = reserve(&ledger, &[key.clone(), team.clone()], 100, 0).err();
        assert_eq!(refused.map(|e| (e.kind, e.cap)), Some((BudgetKind::Team, 150)), "the team binds");
        drop(first);
        assert!(reserve(&ledger, &[key.clone(), team], 100, 0).is_ok(), "released: room again");
        let r = reserve(&ledger, std::slice::from_ref(&key), 100, 0).map(|r| r.settle(1_000));
        assert!(r.is_ok());
        let over = reserve(&ledger, &[key], 0, 0).err();
        assert_eq!(over.map(|e| (e.spent, e.cap)), Some((1_000, 1_000)), "at the cap, even an unpriced request waits");
    }

    #[test]
    fn periods_roll_at_their_reset_and_start_from_zero() {
        let ledger = Ledger::in_process();
        let budget = Budget { cap: Some(100), soft: None, period: Some(Period::Seconds(10)), anchor: Some(110) };
        let c = Charge { kind: BudgetKind::Key, id: "k".into(), name: "k".into(), budget, stored: Some((100, 90)) };
        let refused = reserve(&ledger, std::slice::from_ref(&c), 20, 105).err();
        assert_eq!(refused.map(|e| (e.spent, e.resets_at)), Some((90, Some(110))), "starts from the stored spend");
        let r = reserve(&ledger, std::slice::from_ref(&c), 10, 105);
        assert!(r.is_ok());
        let during = reserve(&ledger, std::slice::from_ref(&c), 50, 111);
        assert!(during.is_ok(), "the next period starts at 0 (the stored spend was the old period's)");
        drop(r.map(|r| r.settle(10)));
        assert_eq!(ledger.spent(BudgetKind::Key, "k", 110), Some(0), "an old period's cost stays in the old period");
        drop(during.map(|r| r.settle(40)));
        assert_eq!(ledger.spent(BudgetKind::Key, "k", 110), Some(40));
        let later = reserve(&ledger, std::slice::from_ref(&c), 100, 125).map(|r| r.periods());
        assert_eq!(later.ok(), Some(vec![(BudgetKind::Key, 120)]));
    }

    #[test]
    fn a_soft_budget_warns_once_per_period_and_never_refuses() {
        let ledger = Ledger::in_process();
        let budget = Budget { cap: None, soft: Some(50), period: Some(Period::Seconds(10)), anchor: Some(10) };
        let c = Charge { kind: BudgetKind::Team, id: "t".into(), name: "t".into(), budget, stored: None };
        let crossed = || ledger.stats().soft_crossed[1].load(SeqCst);
        for (now, cost, want) in [(1, 40, 0), (2, 40, 1), (3, 40, 1), (12, 60, 2), (13, 1, 2)] {
            let r = reserve(&ledger, std::slice::from_ref(&c), 10, now);
            assert!(r.is_ok(), "never refused");
            drop(r.map(|r| r.settle(cost)));
            assert_eq!(crossed(), want, "at {now}");
        }
    }

    #[test]
    fn room_is_the_tightest_capped_budgets_cap_less_spend_and_reservations() {
        let ledger = Ledger::in_process();
        let key = charge(BudgetKind::Key, "k", Some(1_000));
        let team = charge(BudgetKind::Team, "t", Some(500));
        let uncapped = charge(BudgetKind::User, "u", None);
        assert_eq!(ledger.room(std::slice::from_ref(&uncapped), 1), None);
        assert_eq!(ledger.room(&[key.clone(), uncapped.clone()], 1), Some(1_000));
        let both = [key.clone(), team.clone()];
        assert_eq!(ledger.room(&both, 1), Some(500));
        let held = reserve(&ledger, &both, 100, 1);
        assert_eq!(ledger.room(&both, 1), Some(400), "a reservation in flight counts");
        drop(held.map(|r| r.settle(300)));
        assert_eq!(ledger.room(&both, 1), Some(200), "then its real cost");
    }
}
