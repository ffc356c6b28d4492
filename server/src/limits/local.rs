//! The in-process limiter: the counters of each scope (a key, a key and model, an end user) behind a mutex of its
//! own. An admission locks the scopes it checks in name order (so two admissions can never wait on each other),
//! checks every limit, and takes every counter or none; the locks are held for a few comparisons, never across an
//! await. That makes it exact: at any concurrency, no more requests are admitted than a limit allows.
//!
//! Memory: one entry per limited scope that has been used (keys, per-model scopes and end users with limits),
//! which the store's limited entities bound.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock},
};

use super::{
    window::{Need, Window},
    Check, Counter, Gauge, RateHeaders, Refusal,
};

/// How soon to try again when a parallel limit refuses: a slot frees when some request ends, which no clock says.
pub(super) const PARALLEL_RETRY_MS: u64 = 1_000;

#[derive(Debug, Default)]
struct ScopeState {
    requests: Window,
    tokens: Window,
    parallel: u64,
}

type Scope = Arc<Mutex<ScopeState>>;

fn lock(scope: &Scope) -> MutexGuard<'_, ScopeState> {
    // A panic while holding the lock leaves plain counters behind: still the best numbers there are.
    scope.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
pub struct LocalLimiter {
    scopes: RwLock<HashMap<String, Scope>>,
}

/// What an in-process admission holds: the scopes whose parallel count it took (given back on drop) and those
/// whose tokens it counts.
pub struct Held {
    parallel: Vec<Scope>,
    tokens: Vec<Scope>,
}

impl Held {
    pub fn record_tokens(&self, tokens: u64) {
        let now = crate::clock::monotonic_ms();
        for scope in &self.tokens {
            lock(scope).tokens.add(now, tokens);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for scope in &self.parallel {
            let mut state = lock(scope);
            state.parallel = state.parallel.saturating_sub(1);
        }
    }
}

impl LocalLimiter {
    fn scope(&self, name: &str) -> Scope {
        if let Some(scope) = self.scopes.read().unwrap_or_else(PoisonError::into_inner).get(name) {
            return scope.clone();
        }
        let mut scopes = self.scopes.write().unwrap_or_else(PoisonError::into_inner);
        scopes.entry(name.to_owned()).or_default().clone()
    }

    /// Admits a request against `checks` at `now` (monotonic ms): all counters taken, or none and the refusal.
    pub fn admit(&self, checks: &[Check], now: u64) -> Result<(Held, RateHeaders), Box<Refusal>> {
        let scopes: BTreeMap<&str, Scope> = checks.iter().map(|c| (c.scope.as_str(), self.scope(&c.scope))).collect();
        // In name order (the map's), so concurrent admissions over overlapping scopes cannot deadlock.
        let mut guards: BTreeMap<&str, MutexGuard<'_, ScopeState>> =
            scopes.iter().map(|(name, scope)| (*name, lock(scope))).collect();
        let mut refused: Option<Refusal> = None;
        for check in checks {
            let Some(state) = guards.get_mut(check.scope.as_str()) else { continue };
            state.requests.roll(now);
            state.tokens.roll(now);
            // The wait is worked out only for a refusal: admissions cost a few comparisons.
            let wait = match check.counter {
                Counter::Requests if state.requests.fits(now, Need::Requests(1), check.limit) => 0,
                Counter::Requests => state.requests.wait_ms(now, Need::Requests(1), check.limit).max(1),
                Counter::Tokens if state.tokens.fits(now, Need::AnyRoom, check.limit) => 0,
                Counter::Tokens => state.tokens.wait_ms(now, Need::AnyRoom, check.limit).max(1),
                Counter::Parallel if state.parallel < check.limit => 0,
                Counter::Parallel => PARALLEL_RETRY_MS,
            };
            if wait > 0 {
                match &mut refused {
                    Some(r) => r.retry_after_ms = r.retry_after_ms.max(wait),
                    None => {
                        refused = Some(Refusal {
                            check: check.clone(),
                            retry_after_ms: wait,
                            headers: RateHeaders::default(),
                        })
                    }
                }
            }
        }
        let mut headers = RateHeaders::default();
        let admitted = refused.is_none();
        let mut held = Held { parallel: Vec::new(), tokens: Vec::new() };
        for check in checks {
            let Some(state) = guards.get_mut(check.scope.as_str()) else { continue };
            let (window, counter) = match check.counter {
                Counter::Parallel => {
                    if admitted {
                        state.parallel += 1;
                        held.parallel.extend(scopes.get(check.scope.as_str()).cloned());
                    }
                    continue;
                }
                Counter::Requests => {
                    if admitted {
                        state.requests.add(now, 1);
                    }
                    (&state.requests, Counter::Requests)
                }
                Counter::Tokens => {
                    if admitted {
                        held.tokens.extend(scopes.get(check.scope.as_str()).cloned());
                    }
                    (&state.tokens, Counter::Tokens)
                }
            };
            let remaining = check.limit.saturating_sub(window.used(now));
            headers.keep(counter, Gauge { limit: check.limit, remaining, reset_ms: Window::reset_ms(now) });
        }
        drop(guards);
        match refused {
            Some(mut r) => {
                r.headers = headers;
                Err(Box::new(r))
            }
            None => Ok((held, headers)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    use super::*;
    use crate::limits::{checks, EntityKind, Limits, Subject, WINDOW_MS};

    fn key_checks(limits: &Limits, model: &str) -> Vec<Check> {
        checks(&[Subject { kind: EntityKind::Key, id: "h", name: "sk-...abcd", limits }], model)
    }

    #[test]
    fn many_threads_get_exactly_the_limit() {
        for (threads, per_thread, limit) in [(8u64, 50u64, 10u64), (16, 100, 137), (4, 10, 1000)] {
            let limiter = LocalLimiter::default();
            let checks = key_checks(&Limits { rpm: Some(limit), ..Limits::default() }, "a");
            let admitted = AtomicU64::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..per_thread {
                            // One instant for all: the test is about concurrency, not the clock.
                            if limiter.admit(&checks, 5 * WINDOW_MS).is_ok() {
                                admitted.fetch_add(1, SeqCst);
                            }
                        }
                    });
                }
            });
            assert_eq!(admitted.load(SeqCst), limit.min(threads * per_thread), "{threads}x{per_thread} /{limit}");
        }
    }

    #[test]
    fn parallel_slots_are_given_back_when_the_request_ends() {
        let limiter = LocalLimiter::default();
        let checks = key_checks(&Limits { max_parallel: Some(2), ..Limits::default() }, "a");
        let a = limiter.admit(&checks, 1).map(|(h, _)| h);
        let b = limiter.admit(&checks, 1).map(|(h, _)| h);
        assert!(a.is_ok() && b.is_ok());
        let refused = limiter.admit(&checks, 1).err();
        assert_eq!(refused.as_ref().map(|r| r.code()), Some("max_parallel_exceeded"));
        drop(a);
        assert!(limiter.admit(&checks, 1).is_ok(), "a slot is free again once a request ends");
        // Threads holding and releasing slots never see more than the limit at once.
        let limiter = LocalLimiter::default();
        let checks = key_checks(&Limits { max_parallel: Some(3), ..Limits::default() }, "a");
        let (inside, most) = (AtomicU64::new(0), AtomicU64::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        if let Ok((held, _)) = limiter.admit(&checks, 1) {
                            let n = inside.fetch_add(1, SeqCst) + 1;
                            most.fetch_max(n, SeqCst);
                            inside.fetch_sub(1, SeqCst);
                            drop(held);
                        }
                    }
                });
            }
        });
        assert!(most.load(SeqCst) <= 3, "{}", most.load(SeqCst));
    }

    #[test]
    fn a_refusal_takes_no_counter_and_names_the_first_limit_refused() {
        let limiter = LocalLimiter::default();
        let limits = Limits {
            rpm: Some(5),
            max_parallel: Some(1),
            model_rpm: [("a".to_owned(), 1)].into(),
            ..Limits::default()
        };
        let checks = key_checks(&limits, "a");
        let first = limiter.admit(&checks, 10);
        let Ok((held, headers)) = first else { unreachable!("the first request is admitted") };
        assert_eq!(headers.requests.map(|g| (g.limit, g.remaining)), Some((1, 0)), "the tightest: model a's");
        drop(held);
        // The per-model limit refuses; the key's rpm must not count the refused request.
        let refused = limiter.admit(&checks, 20).err();
        assert!(refused.as_ref().is_some_and(|r| r.check.model.as_deref() == Some("a")), "{refused:?}");
        let other = key_checks(&limits, "b");
        for n in 0..4 {
            assert!(limiter.admit(&other, 30).is_ok(), "request {n} to b: the key has 4 of its 5 left");
        }
        let over = limiter.admit(&other, 30).err();
        assert_eq!(over.map(|r| (r.code(), r.check.model)), Some(("rpm_limit_exceeded", None)));
    }

    #[test]
    fn tokens_count_at_settlement_and_refuse_while_over() {
        let limiter = LocalLimiter::default();
        let checks = key_checks(&Limits { tpm: Some(100), ..Limits::default() }, "a");
        let now = 3 * WINDOW_MS;
        let Ok((held, _)) = limiter.admit(&checks, now) else { unreachable!() };
        let Ok((other, _)) = limiter.admit(&checks, now) else { unreachable!("nothing is counted before settlement") };
        // Settlement reads the clock; the window of `now` and the real clock's differ, so count directly.
        for scope in &held.tokens {
            lock(scope).tokens.add(now, 150);
        }
        drop((held, other));
        let refused = limiter.admit(&checks, now + 1).err();
        assert_eq!(refused.as_ref().map(|r| r.code()), Some("tpm_limit_exceeded"));
        assert_eq!(refused.and_then(|r| r.headers.tokens).map(|g| g.remaining), Some(0));
        assert!(limiter.admit(&checks, now + WINDOW_MS + WINDOW_MS / 2).is_ok(), "75 of 100 after half a minute");
    }
}
