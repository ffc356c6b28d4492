//! Rate limits on the request path: `rpm_limit`, `tpm_limit`, `max_parallel_requests` and the per-model
//! `model_rpm_limit` / `model_tpm_limit` (LiteLLM's names), for every entity a request is made by: its key, the
//! key's team, the key's owner (user) and the request's end user, each an [`EntityKind`] with counters of its own.
//!
//! Contract: one admission per request covers every applicable limit, all or nothing: either every counter is
//! taken or none is (no request is half-counted). In-process ([`local`]) the admission takes the scopes' locks in
//! a fixed order for microseconds, never across an await; with Redis ([`redis`]) it is one atomic Lua script call,
//! bounded by a deadline, falling back to the in-process limiter while Redis is unreachable. The algorithm is the
//! sliding window of [`window`]. Imports nothing of the request path, the store or HTTP.

pub mod local;
pub mod redis;
pub mod window;

use std::{collections::BTreeMap, fmt, sync::Arc};

pub use self::window::WINDOW_MS;

/// The limits one entity (a key, a team, a user, an end user) sets. `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u64>,
    /// Model group → requests per minute with this model.
    pub model_rpm: BTreeMap<String, u64>,
    /// Model group → tokens per minute with this model.
    pub model_tpm: BTreeMap<String, u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.max_parallel.is_none()
            && self.model_rpm.is_empty()
            && self.model_tpm.is_empty()
    }
}

/// Who a limit belongs to. Each kind's counters are its own (the kind's tag starts the scope), so a team and a key
/// (or a user and an end user) with the same id never share counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Key,
    /// A key's team: every key of the team shares its counters.
    Team,
    /// A key's owner (`user_id`): every key the user owns shares its counters.
    User,
    EndUser,
}

impl EntityKind {
    /// The scope prefix in counter names (and Redis keys).
    fn tag(self) -> &'static str {
        match self {
            EntityKind::Key => "k",
            EntityKind::Team => "t",
            EntityKind::User => "u",
            EntityKind::EndUser => "e",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            EntityKind::Key => "key",
            EntityKind::Team => "team",
            EntityKind::User => "user",
            EntityKind::EndUser => "end user",
        }
    }
}

/// An entity a request is made by, with its limits.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: EntityKind,
    /// Stable and safe to keep in memory and Redis: a key's hash (hex), a team's or user's or end user's id.
    pub id: &'a str,
    /// How messages name it: `sk-...abcd` (or the key's alias), the team's alias (else its id), the user's or end
    /// user's id.
    pub name: &'a str,
    pub limits: &'a Limits,
}

/// What a check counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Requests,
    Tokens,
    Parallel,
}

/// One limit to check for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The counters' name: `k:<hash>`, `k:<hash>:m:<model>`, `t:<team id>`, `u:<user id>`, `e:<id>`.
    pub scope: String,
    pub counter: Counter,
    pub limit: u64,
    /// `key sk-...abcd`, `team ml`, `user u1`, `end user bob`.
    pub who: String,
    /// Set for per-model limits.
    pub model: Option<String>,
}

/// The checks a request to `model` by `subjects` must pass, in the order refusals name them.
pub fn checks(subjects: &[Subject<'_>], model: &str) -> Vec<Check> {
    let mut out = Vec::new();
    for s in subjects {
        let scope = format!("{}:{}", s.kind.tag(), s.id);
        let who = format!("{} {}", s.kind.noun(), s.name);
        let mut push = |scope: &str, counter, limit: Option<u64>, model: Option<&str>| {
            if let Some(limit) = limit {
                out.push(Check {
                    scope: scope.to_owned(),
                    counter,
                    limit,
                    who: who.clone(),
                    model: model.map(str::to_owned),
                });
            }
        };
        push(&scope, Counter::Parallel, s.limits.max_parallel, None);
        push(&scope, Counter::Requests, s.limits.rpm, None);
        push(&scope, Counter::Tokens, s.limits.tpm, None);
        let per_model = format!("{scope}:m:{model}");
        push(&per_model, Counter::Requests, s.limits.model_rpm.get(model).copied(), Some(model));
        push(&per_model, Counter::Tokens, s.limits.model_tpm.get(model).copied(), Some(model));
    }
    out
}

/// One `x-ratelimit-*` family: the limit, what is left of it, and when the current window ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauge {
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
}

/// OpenAI's rate-limit headers for a limited caller: the tightest requests limit and the tightest tokens limit
/// among the request's checks (the one with the least remaining).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateHeaders {
    pub requests: Option<Gauge>,
    pub tokens: Option<Gauge>,
}

impl RateHeaders {
    /// Keeps `gauge` for `counter` when it is tighter than the one kept.
    pub fn keep(&mut self, counter: Counter, gauge: Gauge) {
        let slot = match counter {
            Counter::Requests => &mut self.requests,
            Counter::Tokens => &mut self.tokens,
            Counter::Parallel => return,
        };
        if slot.is_none_or(|g| gauge.remaining < g.remaining) {
            *slot = Some(gauge);
        }
    }

    /// `(name, value)` pairs; OpenAI's names (the provider's own are passed on as `llm_provider-x-ratelimit-*`).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(g) = self.requests {
            out.push(("x-ratelimit-limit-requests", g.limit.to_string()));
            out.push(("x-ratelimit-remaining-requests", g.remaining.to_string()));
            out.push(("x-ratelimit-reset-requests", duration(g.reset_ms)));
        }
        if let Some(g) = self.tokens {
            out.push(("x-ratelimit-limit-tokens", g.limit.to_string()));
            out.push(("x-ratelimit-remaining-tokens", g.remaining.to_string()));
            out.push(("x-ratelimit-reset-tokens", duration(g.reset_ms)));
        }
        out
    }
}

/// OpenAI's duration format in `x-ratelimit-reset-*`: `850ms`, `12s`, `1m0s`.
fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// A request refused by a limit: 429 with `retry-after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub check: Check,
    /// Until the refused limit (the longest of those refused) would admit this request, if nothing else arrives.
    pub retry_after_ms: u64,
    pub headers: RateHeaders,
}

impl Refusal {
    /// `retry-after` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms.div_ceil(1000).max(1)
    }

    /// The error code naming the limit.
    pub fn code(&self) -> &'static str {
        match self.check.counter {
            Counter::Requests => "rpm_limit_exceeded",
            Counter::Tokens => "tpm_limit_exceeded",
            Counter::Parallel => "max_parallel_exceeded",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.check;
        let (name, what) = match (c.counter, &c.model) {
            (Counter::Requests, None) => ("rpm_limit", "requests per minute"),
            (Counter::Tokens, None) => ("tpm_limit", "tokens per minute"),
            (Counter::Requests, Some(_)) => ("model_rpm_limit", "requests per minute"),
            (Counter::Tokens, Some(_)) => ("model_tpm_limit", "tokens per minute"),
            (Counter::Parallel, _) => ("max_parallel_requests", "requests at a time"),
        };
        let model = c.model.as_ref().map(|m| format!(" for model `{m}`")).unwrap_or_default();
        write!(
            f,
            "rate limit exceeded: {} is at its {name} of {} {what}{model}; retry after {}s",
            c.who,
            c.limit,
            self.retry_after_secs()
        )
    }
}

/// A request's admission: holds its parallel slots until dropped (the request ended, however it ended) and takes
/// its calls' tokens at settlement. Shared by the handler and each call's settlement.
pub struct Ticket {
    held: Held,
    pub headers: RateHeaders,
}

enum Held {
    Local(local::Held),
    Redis(redis::Held),
}

impl Ticket {
    /// Counts a settled call's tokens against the request's tpm limits.
    pub fn record_tokens(&self, tokens: u64) {
        if tokens == 0 {
            return;
        }
        match &self.held {
            Held::Local(h) => h.record_tokens(tokens),
            Held::Redis(h) => h.record_tokens(tokens),
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket").field("headers", &self.headers).finish_non_exhaustive()
    }
}

/// The limiter a gateway runs: in-process, or Redis-backed with the in-process one as its fallback.
#[derive(Clone)]
pub struct Limiter {
    local: Arc<local::LocalLimiter>,
    redis: Option<redis::RedisLimiter>,
}

impl Limiter {
    pub fn in_process() -> Limiter {
        Limiter { local: Arc::default(), redis: None }
    }

    pub fn with_redis(redis: redis::RedisLimiter) -> Limiter {
        Limiter { local: Arc::default(), redis: Some(redis) }
    }

    /// Admits a request to `model` by `subjects`, or refuses it naming the limit. `None` when nothing limits it.
    pub async fn admit(&self, subjects: &[Subject<'_>], model: &str) -> Result<Option<Arc<Ticket>>, Box<Refusal>> {
        if subjects.iter().all(|s| s.limits.is_empty()) {
            return Ok(None);
        }
        let checks = checks(subjects, model);
        if checks.is_empty() {
            return Ok(None);
        }
        if let Some(redis) = &self.redis {
            // Boxed: the Redis call's state is about 7 KB, and without the box every request's future carries it
            // (and is moved, memcpy'd, at that size) even with no Redis configured.
            if let Some(answer) = Box::pin(redis.admit(&checks)).await {
                return answer.map(|(held, headers)| Some(Arc::new(Ticket { held: Held::Redis(held), headers })));
            }
        }
        let (held, headers) = self.local.admit(&checks, crate::clock::monotonic_ms())?;
        Ok(Some(Arc::new(Ticket { held: Held::Local(held), headers })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_cover_every_limit_that_applies_to_the_model() {
        let key = Limits {
            rpm: Some(10),
            max_parallel: Some(2),
            model_rpm: BTreeMap::from([("a".to_owned(), 3)]),
            model_tpm: BTreeMap::from([("b".to_owned(), 100)]),
            ..Limits::default()
        };
        let user = Limits { tpm: Some(500), ..Limits::default() };
        let subjects = [
            Subject { kind: EntityKind::Key, id: "abc", name: "sk-...abcd", limits: &key },
            Subject { kind: EntityKind::EndUser, id: "bob", name: "bob", limits: &user },
        ];
        let seen: Vec<(String, Counter, u64)> =
            checks(&subjects, "a").into_iter().map(|c| (c.scope, c.counter, c.limit)).collect();
        assert_eq!(
            seen,
            [
                ("k:abc".to_owned(), Counter::Parallel, 2),
                ("k:abc".to_owned(), Counter::Requests, 10),
                ("k:abc:m:a".to_owned(), Counter::Requests, 3),
                ("e:bob".to_owned(), Counter::Tokens, 500),
            ]
        );
        assert_eq!(checks(&subjects, "b").iter().filter(|c| c.model.is_some()).count(), 1);
    }

    #[test]
    fn teams_and_users_have_counters_of_their_own() {
        let rpm = Limits { rpm: Some(3), ..Limits::default() };
        let subjects = [
            Subject { kind: EntityKind::Key, id: "x", name: "sk-...abcd", limits: &rpm },
            Subject { kind: EntityKind::Team, id: "x", name: "ml", limits: &rpm },
            Subject { kind: EntityKind::User, id: "x", name: "x", limits: &rpm },
            Subject { kind: EntityKind::EndUser, id: "x", name: "x", limits: &rpm },
        ];
        let seen: Vec<(String, String)> = checks(&subjects, "a").into_iter().map(|c| (c.scope, c.who)).collect();
        let want = [("k:x", "key sk-...abcd"), ("t:x", "team ml"), ("u:x", "user x"), ("e:x", "end user x")];
        assert_eq!(seen, want.map(|(s, w)| (s.to_owned(), w.to_owned())));
    }

    #[test]
    fn refusals_name_the_limit_and_the_caller() {
        let check = |counter, model: Option<&str>| Check {
            scope: "k:x".into(),
            counter,
            limit: 10,
            who: "key sk-...abcd".into(),
            model: model.map(str::to_owned),
        };
        let cases = [
            (check(Counter::Requests, None), "rpm_limit_exceeded", "key sk-...abcd is at its rpm_limit of 10"),
            (check(Counter::Tokens, None), "tpm_limit_exceeded", "tpm_limit of 10 tokens per minute"),
            (check(Counter::Parallel, None), "max_parallel_exceeded", "max_parallel_requests of 10"),
            (
                check(Counter::Requests, Some("a")),
                "rpm_limit_exceeded",
                "model_rpm_limit of 10 requests per minute for model `a`",
            ),
        ];
        for (check, code, says) in cases {
            let refusal = Refusal { check, retry_after_ms: 1500, headers: RateHeaders::default() };
            assert_eq!(refusal.code(), code);
            assert!(refusal.to_string().contains(says), "{refusal}");
            assert_eq!(refusal.retry_after_secs(), 2);
        }
    }

    #[test]
    fn headers_show_the_tightest_limit_in_openais_format() {
        let mut h = RateHeaders::default();
        h.keep(Counter::Requests, Gauge { limit: 100, remaining: 40, reset_ms: 30_000 });
        h.keep(Counter::Requests, Gauge { limit: 10, remaining: 3, reset_ms: 850 });
        h.keep(Counter::Requests, Gauge { limit: 50, remaining: 20, reset_ms: 1 });
        h.keep(Counter::Tokens, Gauge { limit: 1000, remaining: 0, reset_ms: 61_000 });
        let pairs = h.pairs();
        let get = |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-ratelimit-limit-requests"), Some("10"));
        assert_eq!(get("x-ratelimit-remaining-requests"), Some("3"));
        assert_eq!(get("x-ratelimit-reset-requests"), Some("850ms"));
        assert_eq!(get("x-ratelimit-reset-tokens"), Some("1m1s"));
        assert_eq!(RateHeaders::default().pairs(), []);
    }
}
