//! Live, lock-free per-deployment statistics: written by the request path (atomics, no locks, no messages) and
//! by the deployment's worker (cooldown), read by the router's picker and, later, the dashboard.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::pipeline::usage::Usage;

#[derive(Debug, Default)]
pub struct DeploymentStats {
    pub in_flight: AtomicU64,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub spend_nanos: AtomicU64,
    /// Exponentially weighted moving average of time to response headers, in microseconds.
    pub latency_ewma_us: AtomicU64,
    /// Unix milliseconds until which the deployment sits out; 0 when healthy. Written only by its worker.
    pub cooldown_until_ms: AtomicU64,
    /// Failure reports the worker's mailbox had no room for.
    pub dropped_reports: AtomicU64,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl DeploymentStats {
    pub fn is_cooling_down(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms.load(Relaxed) > now_ms
    }

    /// Time left in the cooldown, rounded up to whole seconds (for `retry-after`).
    pub fn cooldown_left_secs(&self, now_ms: u64) -> u64 {
        self.cooldown_until_ms.load(Relaxed).saturating_sub(now_ms).div_ceil(1000)
    }

    pub fn record_latency(&self, latency: Duration) {
        let sample = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        // Races between two updaters lose one sample at worst; an average does not need more.
        let old = self.latency_ewma_us.load(Relaxed);
        let new = if old == 0 { sample } else { (old * 7 + sample) / 8 };
        self.latency_ewma_us.store(new, Relaxed);
    }

    pub fn record_usage(&self, usage: Usage, cost_nanos: u64) {
        self.prompt_tokens.fetch_add(usage.prompt_tokens, Relaxed);
        self.completion_tokens.fetch_add(usage.completion_tokens, Relaxed);
        self.spend_nanos.fetch_add(cost_nanos, Relaxed);
    }
}
