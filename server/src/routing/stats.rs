//! Live, lock-free per-deployment statistics: written by the request path (atomics, no locks, no messages) and
//! by the deployment's worker (cooldown), read by the router's picker and by `GET /metrics`.
//!
//! Every counter here is exported by `http/metrics.rs`; a counter nobody reads does not belong here.

use std::{
    sync::atomic::{
        AtomicBool, AtomicU64, AtomicU8,
        Ordering::{AcqRel, Acquire, Relaxed},
    },
    time::Duration,
};

use actix::Message;
use arc_swap::ArcSwapOption;

use crate::llm::{ErrorClass, UpstreamFailure, Usage};

/// An upstream call of this deployment failed; sent to the deployment's worker with `try_send`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReportFailure {
    pub failure: UpstreamFailure,
    /// LiteLLM's error class of the failure (for `allowed_fails_policy`), when it has one.
    pub class: Option<ErrorClass>,
    /// The upstream's `retry-after`, when it sent one: the cooldown lasts at least that long.
    pub retry_after: Option<Duration>,
    /// The call was a health check.
    pub health_check: bool,
}

#[cfg(test)]
impl ReportFailure {
    /// A failure of an ordinary call, without `retry-after`.
    pub fn of(failure: UpstreamFailure) -> Self {
        Self { failure, class: ErrorClass::of(failure, None), retry_after: None, health_check: false }
    }
}

/// A deployment's latest health check: published by whoever ran it (its worker in the background, or
/// `GET /health`), read by `GET /health`, `GET /metrics` and `GET /routing/explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub healthy: bool,
    /// The whole call, until its answer was read.
    pub latency: Duration,
    /// Why it failed: the error message a caller would have got (secrets scrubbed, as in every upstream error).
    pub error: Option<String>,
    /// Unix time of the check's end, in milliseconds (wall clock: it is shown to people, never compared).
    pub checked_at_unix_ms: u64,
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
    /// The call lost a hedged race and was cancelled: the upstream had the request and may bill for what it
    /// generated before the connection closed.
    HedgeCancelled,
}

impl AccountingGap {
    pub const ALL: [AccountingGap; 6] = [
        Self::UsageMissing,
        Self::StreamEndedBeforeUsage,
        Self::BodyTooLargeForUsage,
        Self::Unpriced,
        Self::CutBeforeUsage,
        Self::HedgeCancelled,
    ];

    /// Metric label and log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsageMissing => "usage_missing",
            Self::StreamEndedBeforeUsage => "stream_ended_before_usage",
            Self::BodyTooLargeForUsage => "body_too_large_for_usage",
            Self::Unpriced => "unpriced",
            Self::CutBeforeUsage => "cut_before_usage",
            Self::HedgeCancelled => "hedge_cancelled",
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
    /// Exponentially weighted moving average of time to first byte (a stream's first event) of successful calls, in seconds, as
    /// `f64` bits (lock-free); meaningful once `latency_samples` is above 0.
    latency_ewma_bits: AtomicU64,
    pub latency_samples: AtomicU64,
    /// The minute (`now_ms / 60_000` on the monotonic clock) `minute_requests` and `minute_tokens` count; they
    /// restart lazily when a call arrives in a later minute.
    minute: AtomicU64,
    minute_requests: AtomicU64,
    minute_tokens: AtomicU64,
    /// Monotonic milliseconds (`clock::monotonic_ms`) until which the deployment sits out; 0 when healthy.
    /// Written only by its worker.
    pub cooldown_until_ms: AtomicU64,
    /// Half-open circuit after a cooldown ([`PROBE_DUE`], [`PROBE_RUNNING`], or 0): the first call after the
    /// cooldown is a probe, and no other call is sent until it has answered.
    pub probe: AtomicU8,
    /// Failure reports the worker's mailbox had no room for.
    pub dropped_reports: AtomicU64,
    /// The latest health check, `None` before the first.
    pub health: ArcSwapOption<HealthCheck>,
    gaps: [AtomicU64; AccountingGap::ALL.len()],
    gap_logged: [AtomicBool; AccountingGap::ALL.len()],
}

/// The deployment sat out a cooldown: its next call is a probe.
pub const PROBE_DUE: u8 = 1;
/// The probe is in flight: the deployment takes no other call until it answers.
pub const PROBE_RUNNING: u8 = 2;

impl DeploymentStats {
    pub fn is_cooling_down(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms.load(Relaxed) > now_ms
    }

    /// Whether a new call may go here at `now_ms`: not cooling down, and no probe in flight.
    pub fn admits(&self, now_ms: u64) -> bool {
        !self.is_cooling_down(now_ms) && self.probe.load(Acquire) != PROBE_RUNNING
    }

    /// Takes a call about to be sent: `false` when it may not go (another call just became the probe). When a
    /// probe is due, this call becomes it.
    pub fn claim(&self) -> bool {
        match self.probe.load(Acquire) {
            PROBE_DUE => self.probe.compare_exchange(PROBE_DUE, PROBE_RUNNING, AcqRel, Acquire).is_ok(),
            PROBE_RUNNING => false,
            _ => true,
        }
    }

    /// The probe answered: healthy closes the circuit; otherwise the worker cools the deployment down again, or
    /// (the probe was cancelled) the next call probes.
    pub fn probe_done(&self, healthy: bool) {
        let next = if healthy { 0 } else { PROBE_DUE };
        let _ = self.probe.compare_exchange(PROBE_RUNNING, next, AcqRel, Acquire);
    }

    /// Time left in the cooldown, rounded up to whole seconds (for `retry-after`).
    pub fn cooldown_left_secs(&self, now_ms: u64) -> u64 {
        self.cooldown_until_ms.load(Relaxed).saturating_sub(now_ms).div_ceil(1000)
    }

    /// Folds in the time to first byte of a successful call (weight 1/8; the first sample is taken whole).
    pub fn record_latency(&self, latency: Duration) {
        let sample = latency.as_secs_f64();
        // Races between two updaters lose one sample at worst; an average does not need more.
        let new = match self.latency() {
            Some(old) => old + (sample - old) / 8.0,
            None => sample,
        };
        self.latency_ewma_bits.store(new.to_bits(), Relaxed);
        self.latency_samples.fetch_add(1, Relaxed);
    }

    /// The moving average of time to first byte in seconds; `None` before the first successful call.
    pub fn latency(&self) -> Option<f64> {
        (self.latency_samples.load(Relaxed) > 0).then(|| f64::from_bits(self.latency_ewma_bits.load(Relaxed)))
    }

    /// Counts a call started at `now_ms` against this minute's requests.
    pub fn count_minute_request(&self, now_ms: u64) {
        self.enter_minute(now_ms);
        self.minute_requests.fetch_add(1, Relaxed);
    }

    /// Counts tokens a call used, at `now_ms`, against this minute's tokens.
    pub fn count_minute_tokens(&self, now_ms: u64, tokens: u64) {
        self.enter_minute(now_ms);
        self.minute_tokens.fetch_add(tokens, Relaxed);
    }

    /// Requests and tokens counted in the minute of `now_ms` (zero when nothing was counted in it yet).
    pub fn minute_usage(&self, now_ms: u64) -> (u64, u64) {
        if self.minute.load(Relaxed) != now_ms / 60_000 {
            return (0, 0);
        }
        (self.minute_requests.load(Relaxed), self.minute_tokens.load(Relaxed))
    }

    /// Restarts the counts when `now_ms` is in a later minute than the one they count. The caller that moves the
    /// window resets it; a count racing the reset may land in either minute, which a per-minute cap tolerates.
    fn enter_minute(&self, now_ms: u64) {
        let minute = now_ms / 60_000;
        let current = self.minute.load(Relaxed);
        if current < minute && self.minute.compare_exchange(current, minute, Relaxed, Relaxed).is_ok() {
            self.minute_requests.store(0, Relaxed);
            self.minute_tokens.store(0, Relaxed);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_a_moving_average_of_successful_calls() {
        let s = DeploymentStats::default();
        assert_eq!(s.latency(), None);
        s.record_latency(Duration::from_millis(500));
        assert_eq!(s.latency(), Some(0.5));
        s.record_latency(Duration::from_millis(1300));
        assert_eq!(s.latency(), Some(0.6));
        assert_eq!(s.latency_samples.load(Relaxed), 2);
    }

    #[test]
    fn minute_counts_restart_when_the_minute_changes() {
        let s = DeploymentStats::default();
        assert_eq!(s.minute_usage(1_000), (0, 0));
        s.count_minute_request(1_000);
        s.count_minute_request(59_999);
        s.count_minute_tokens(30_000, 40);
        assert_eq!(s.minute_usage(59_999), (2, 40));
        assert_eq!(s.minute_usage(60_000), (0, 0), "a new minute starts empty before anything is counted");
        s.count_minute_tokens(61_000, 5);
        assert_eq!(s.minute_usage(61_000), (0, 5));
        s.count_minute_request(30_000);
        assert_eq!(s.minute_usage(61_000), (1, 5), "a late count from the old minute lands in the current one");
    }
}
