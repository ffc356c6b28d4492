//! Live, lock-free per-deployment statistics: written by the request path (atomics, no locks, no messages) and
//! by the deployment's worker (cooldown), read by the router's picker and by `GET /metrics`.
//!
//! Every counter here is exported by `http/metrics.rs`; a counter nobody reads does not belong here.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use actix::Message;

use crate::llm::{UpstreamFailure, Usage};

/// An upstream call of this deployment failed; sent to the deployment's worker with `try_send`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReportFailure {
    pub failure: UpstreamFailure,
    /// The upstream's `retry-after`, when it sent one: the cooldown lasts at least that long.
    pub retry_after: Option<Duration>,
}

/// Why a call's money could not be counted exactly. Each is counted per deployment and logged once per cause per
/// deployment (the per-call log line names it every time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountingGap {
    /// The call completed but the upstream reported no usage.
    UsageMissing,
    /// A stream ended after its `finish_reason` but without the usage chunk tollgate asked for.
    StreamEndedBeforeUsage,
    /// A response body too large to scan for usage.
    BodyTooLargeForUsage,
    /// Usage arrived but the model has no price (see `pricing::Pricing::Unpriced`).
    Unpriced,
    /// The response was cut (the caller left, or the upstream broke) after it started and before usage arrived:
    /// the upstream may bill for tokens nobody counted.
    CutBeforeUsage,
}

impl AccountingGap {
    pub const ALL: [AccountingGap; 5] = [
        Self::UsageMissing,
        Self::StreamEndedBeforeUsage,
        Self::BodyTooLargeForUsage,
        Self::Unpriced,
        Self::CutBeforeUsage,
    ];

    /// Metric label and log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsageMissing => "usage_missing",
            Self::StreamEndedBeforeUsage => "stream_ended_before_usage",
            Self::BodyTooLargeForUsage => "body_too_large_for_usage",
            Self::Unpriced => "unpriced",
            Self::CutBeforeUsage => "cut_before_usage",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
pub struct DeploymentStats {
    pub in_flight: AtomicU64,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub cache_read_tokens: AtomicU64,
    pub cache_write_tokens: AtomicU64,
    pub reasoning_tokens: AtomicU64,
    pub spend_nanos: AtomicU64,
    /// Exponentially weighted moving average of time to response headers, in microseconds.
    pub latency_ewma_us: AtomicU64,
    /// Monotonic milliseconds (`clock::monotonic_ms`) until which the deployment sits out; 0 when healthy.
    /// Written only by its worker.
    pub cooldown_until_ms: AtomicU64,
    /// Failure reports the worker's mailbox had no room for.
    pub dropped_reports: AtomicU64,
    gaps: [AtomicU64; AccountingGap::ALL.len()],
    gap_logged: [AtomicBool; AccountingGap::ALL.len()],
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

    /// Tokens always; spend only when the call was priced.
    pub fn record_usage(&self, usage: Usage, cost_nanos: Option<u64>) {
        self.prompt_tokens.fetch_add(usage.prompt_tokens, Relaxed);
        self.completion_tokens.fetch_add(usage.completion_tokens, Relaxed);
        self.cache_read_tokens.fetch_add(usage.cache_read_tokens, Relaxed);
        self.cache_write_tokens.fetch_add(usage.cache_write_tokens, Relaxed);
        self.reasoning_tokens.fetch_add(usage.reasoning_tokens, Relaxed);
        if let Some(cost) = cost_nanos {
            self.spend_nanos.fetch_add(cost, Relaxed);
        }
    }

    /// Counts a gap; `true` the first time this cause is seen on this deployment (the caller logs it then).
    pub fn record_gap(&self, gap: AccountingGap) -> bool {
        self.gaps[gap.index()].fetch_add(1, Relaxed);
        !self.gap_logged[gap.index()].swap(true, Relaxed)
    }

    pub fn gaps(&self, gap: AccountingGap) -> u64 {
        self.gaps[gap.index()].load(Relaxed)
    }
}
