//! Limits shared by every replica through Redis: one atomic Lua script call per request checks and takes every
//! counter it needs (the same sliding window as in-process, on Redis's own clock, `TIME`, so replicas agree on
//! the windows), and returns the counts the answer's headers and `retry-after` are computed from in Rust.
//!
//! Counters are Redis keys under the configured prefix: `<prefix><scope>:r:<minute>` and `...:t:<minute>`
//! (requests and tokens, expiring after two minutes) and `<prefix><scope>:p` (requests in flight).
//!
//! **Failure choice: fail open to local limits.** Each call has [`RedisLimiter`]'s deadline; when Redis errs or is
//! late, the request is checked by the in-process limiter instead (each replica then holds the whole limit on its
//! own, so during an outage the global total can reach the limit times the replica count), and the outage is
//! logged once when it starts and once when Redis answers again. Refusing every request while Redis is down would
//! turn a cache outage into a gateway outage.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use deadpool_redis::redis::Script;

use crate::redis_pool::Pools;

use super::{
    window::{Need, Window},
    Check, Counter, Gauge, RateHeaders, Refusal, WINDOW_MS,
};

/// Checks every counter of one request and, only if all pass, takes them. ARGV: prefix, then per check its scope,
/// `r` (requests), `t` (tokens) or `p` (parallel), and its limit. Returns `{admitted, now_ms, then per check the
/// previous window's count and the current one (the parallel count for p)}`, counts as they are after the script.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local W = 60000
local idx = math.floor(now / W)
local e = now % W
local prefix = ARGV[1]
local n = (#ARGV - 1) / 3
local keys, prev, cur = {}, {}, {}
local ok = 1
for i = 1, n do
  local scope, kind, limit = ARGV[3 * i - 1], ARGV[3 * i], tonumber(ARGV[3 * i + 1])
  if kind == 'p' then
    keys[i] = prefix .. scope .. ':p'
    prev[i] = 0
    cur[i] = tonumber(redis.call('GET', keys[i]) or '0')
    if cur[i] + 1 > limit then ok = 0 end
  else
    keys[i] = prefix .. scope .. ':' .. kind .. ':' .. string.format('%d', idx)
    cur[i] = tonumber(redis.call('GET', keys[i]) or '0')
    prev[i] = tonumber(redis.call('GET', prefix .. scope .. ':' .. kind .. ':' .. string.format('%d', idx - 1)) or '0')
    local need = 1
    if kind == 'r' then need = W end
    if prev[i] * (W - e) + cur[i] * W + need > limit * W then ok = 0 end
  end
end
if ok == 1 then
  for i = 1, n do
    local kind = ARGV[3 * i]
    if kind == 'r' then
      cur[i] = redis.call('INCR', keys[i])
      redis.call('PEXPIRE', keys[i], 2 * W + 5000)
    elseif kind == 'p' then
      cur[i] = redis.call('INCR', keys[i])
      redis.call('EXPIRE', keys[i], 600)
    end
  end
end
local out = {ok, now}
for i = 1, n do
  out[#out + 1] = prev[i]
  out[#out + 1] = cur[i]
end
return out
";

/// Settles an admission when it ends, in one call: adds its calls' tokens to the current window of each token
/// scope, and gives back one parallel slot of each parallel scope. ARGV: prefix, tokens, the number of token scopes,
/// the token scopes, then the parallel scopes.
const SETTLE: &str = r"
local t = redis.call('TIME')
local idx = math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / 60000)
local n = tonumber(ARGV[3])
for i = 4, 3 + n do
  local key = ARGV[1] .. ARGV[i] .. ':t:' .. string.format('%d', idx)
  redis.call('INCRBY', key, ARGV[2])
  redis.call('PEXPIRE', key, 125000)
end
for i = 4 + n, #ARGV do
  local key = ARGV[1] .. ARGV[i] .. ':p'
  if redis.call('DECR', key) < 0 then redis.call('SET', key, 0) end
end
return 1
";

struct Inner {
    pool: Pools,
    prefix: String,
    deadline: Duration,
    /// Redis failed last time: the outage was logged, the next success logs the recovery.
    down: AtomicBool,
    admit: Script,
    settle: Script,
}

#[derive(Clone)]
pub struct RedisLimiter(Arc<Inner>);

/// What a Redis admission holds: the scopes whose parallel count it took and those whose tokens it counts. Its
/// calls' tokens add up here and reach Redis with the parallel slots' release, in one script call when the
/// admission ends (the request's answer is complete): one round trip per request instead of one per call and
/// one more for the release.
pub struct Held {
    limiter: RedisLimiter,
    parallel: Vec<String>,
    tokens: Vec<String>,
    used: AtomicU64,
}

impl Held {
    pub fn record_tokens(&self, tokens: u64) {
        self.used.fetch_add(tokens, SeqCst);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let used = *self.used.get_mut();
        let tokens = if used > 0 { std::mem::take(&mut self.tokens) } else { Vec::new() };
        if !tokens.is_empty() || !self.parallel.is_empty() {
            self.limiter.settle(used, tokens, std::mem::take(&mut self.parallel));
        }
    }
}

impl RedisLimiter {
    pub fn new(pool: Pools, prefix: String, deadline: Duration) -> RedisLimiter {
        RedisLimiter(Arc::new(Inner {
            pool,
            prefix,
            deadline,
            down: AtomicBool::new(false),
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
        }))
    }

    /// Admits against Redis; `None` when Redis did not answer in time (the caller falls back to local limits).
    pub async fn admit(&self, checks: &[Check]) -> Option<Result<(Held, RateHeaders), Box<Refusal>>> {
        let mut invocation = self.0.admit.prepare_invoke();
        invocation.arg(&self.0.prefix);
        for check in checks {
            let kind = match check.counter {
                Counter::Requests => "r",
                Counter::Tokens => "t",
                Counter::Parallel => "p",
            };
            invocation.arg(&check.scope).arg(kind).arg(check.limit);
        }
        let call = async |c: &mut _| invocation.invoke_async::<Vec<u64>>(c).await;
        let answer = match self.0.pool.run(self.0.deadline, call).await {
            Ok(answer) => answer,
            Err(e) => return self.failed(&e),
        };
        if self.0.down.swap(false, SeqCst) {
            tracing::warn!("Redis answers again: rate limits are shared across replicas again");
        }
        Some(decide(self, checks, &answer))
    }

    fn failed<T>(&self, why: &str) -> Option<T> {
        if !self.0.down.swap(true, SeqCst) {
            tracing::error!(
                error = why,
                deadline_ms = self.0.deadline.as_millis() as u64,
                "Redis did not answer a rate-limit check: limits fall back to this replica's own counters until it \
                 does (fail open to local limits)"
            );
        }
        None
    }

    /// Runs [`SETTLE`] on a task of its own, within ten deadlines (nobody waits for it); a failure is logged with
    /// the outage, and the counters expire on their own.
    fn settle(&self, tokens: u64, token_scopes: Vec<String>, parallel: Vec<String>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let limiter = self.clone();
        runtime.spawn(async move {
            let inner = &limiter.0;
            let mut invocation = inner.settle.prepare_invoke();
            invocation.arg(&inner.prefix).arg(tokens).arg(token_scopes.len());
            for scope in token_scopes.iter().chain(&parallel) {
                invocation.arg(scope);
            }
            let call = async |c: &mut _| invocation.invoke_async::<u64>(c).await;
            if let Err(e) = inner.pool.run(inner.deadline * 10, call).await {
                let _: Option<()> = limiter.failed(&e);
            }
        });
    }
}

/// The script's answer as an admission or a refusal, with the headers computed from the counts it returned.
fn decide(limiter: &RedisLimiter, checks: &[Check], answer: &[u64]) -> Result<(Held, RateHeaders), Box<Refusal>> {
    let admitted = answer.first() == Some(&1);
    let now = answer.get(1).copied().unwrap_or(0);
    let mut headers = RateHeaders::default();
    let mut refused: Option<Refusal> = None;
    let mut held = Held { limiter: limiter.clone(), parallel: Vec::new(), tokens: Vec::new(), used: AtomicU64::new(0) };
    for (i, check) in checks.iter().enumerate() {
        let previous = answer.get(2 + 2 * i).copied().unwrap_or(0);
        let current = answer.get(3 + 2 * i).copied().unwrap_or(0);
        let window = Window::with_counts(now, previous, current);
        let (wait, counter) = match check.counter {
            Counter::Parallel => {
                if admitted {
                    held.parallel.push(check.scope.clone());
                }
                (if current < check.limit { 0 } else { super::local::PARALLEL_RETRY_MS }, None)
            }
            Counter::Requests => (window.wait_ms(now, Need::Requests(1), check.limit), Some(Counter::Requests)),
            Counter::Tokens => {
                if admitted {
                    held.tokens.push(check.scope.clone());
                }
                (window.wait_ms(now, Need::AnyRoom, check.limit), Some(Counter::Tokens))
            }
        };
        if let Some(counter) = counter {
            let remaining = check.limit.saturating_sub(window.used(now));
            headers.keep(counter, Gauge { limit: check.limit, remaining, reset_ms: Window::reset_ms(now) });
        }
        if !admitted && wait > 0 {
            match &mut refused {
                Some(r) => r.retry_after_ms = r.retry_after_ms.max(wait),
                None => {
                    refused =
                        Some(Refusal { check: check.clone(), retry_after_ms: wait, headers: RateHeaders::default() })
                }
            }
        }
    }
    if admitted {
        return Ok((held, headers));
    }
    // Refused: nothing was taken, so nothing is held (and dropping `held` releases nothing).
    held.parallel.clear();
    let Some(mut refusal) = refused.or_else(|| {
        let check = checks.first()?.clone();
        Some(Refusal { check, retry_after_ms: WINDOW_MS, headers: RateHeaders::default() })
    }) else {
        return Ok((held, headers));
    };
    refusal.headers = headers;
    Err(Box::new(refusal))
}
