//! Circuit breaking: when a deployment's failures take it out of rotation (cooldown), and for how long. Pure
//! functions over counts the deployment's worker keeps in a [`Window`]; the worker publishes the verdict into the
//! deployment's stats. Time comes in as `now_ms` (`clock::monotonic_ms`).
//!
//! The rules, in the order [`decide`] applies them to a failure that counts (none with `disable_cooldowns`):
//! 1. a rate limit (429) takes the deployment out at once, unless it is its group's only one (LiteLLM's rule);
//! 2. a failed half-open probe (the first call after a cooldown) reopens the circuit at once;
//! 3. a failed background health check takes the deployment out at once, unless it is its group's only one;
//! 4. more failures in the last minute than allowed: `allowed_fails`, or the class's number in
//!    `allowed_fails_policy` (then counting that class's failures only);
//! 5. failures above `failure_threshold_percent` of the last minute's calls, once there were at least
//!    `failure_threshold_minimum_requests` calls, unless it is its group's only one; a group's only deployment
//!    cools down only when every one of at least [`ALONE_MINIMUM_REQUESTS`] calls failed (LiteLLM's rules).

use std::time::Duration;

use crate::{
    config::RouterSettings,
    llm::{ErrorClass, PerClass, UpstreamFailure},
};

/// LiteLLM's `SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD`: the calls per minute, all failed, that take out a
/// group's only deployment.
pub const ALONE_MINIMUM_REQUESTS: u64 = 1000;
/// The window is a minute of six ten-second buckets: the worker ticks once per bucket.
pub const BUCKET_MS: u64 = 10_000;
const BUCKETS: usize = 6;
const CLASSES: usize = ErrorClass::ALL.len();

/// The circuit's settings, from `router_settings`.
#[derive(Debug, Clone, PartialEq)]
pub struct Circuit {
    pub allowed_fails: u32,
    pub allowed_fails_policy: PerClass,
    /// A fraction of the calls (0.5 = 50%).
    pub failure_threshold: f64,
    pub failure_threshold_minimum_requests: u64,
    pub cooldown_time: Duration,
    /// `disable_cooldowns`: nothing takes the deployment out.
    pub disabled: bool,
}

impl From<&RouterSettings> for Circuit {
    fn from(r: &RouterSettings) -> Self {
        Self {
            allowed_fails: r.allowed_fails,
            allowed_fails_policy: r.allowed_fails_policy,
            failure_threshold: r.failure_threshold,
            failure_threshold_minimum_requests: r.failure_threshold_minimum_requests,
            cooldown_time: r.cooldown_time,
            disabled: r.disable_cooldowns,
        }
    }
}

impl Circuit {
    pub fn counts(&self, failure: UpstreamFailure, class: Option<ErrorClass>) -> bool {
        counts(&self.allowed_fails_policy, failure, class)
    }
}

/// Whether a failure of this kind counts against the deployment: 408, 429, 5xx, timeouts and broken answers
/// always; bad requests, auth errors and content-policy refusals only when `allowed_fails_policy` names their class
/// (they are usually the request's fault, not the deployment's). The request path asks too, so a flood of bad
/// requests sends the worker no message unless the policy wants them.
pub fn counts(allowed_fails_policy: &PerClass, failure: UpstreamFailure, class: Option<ErrorClass>) -> bool {
    failure.counts_against_deployment() || class.is_some_and(|c| allowed_fails_policy.get(c).is_some())
}

/// A failure reported to the worker, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Failed {
    pub failure: UpstreamFailure,
    pub class: Option<ErrorClass>,
    /// The call was the half-open probe after a cooldown.
    pub probe: bool,
    /// The call was a background health check.
    pub health_check: bool,
    /// The deployment is its group's only one.
    pub alone: bool,
}

/// Why a deployment cools down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    RateLimited,
    ProbeFailed,
    HealthCheckFailed,
    AllowedFails,
    FailureRate,
}

impl Trip {
    /// Log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::ProbeFailed => "probe_failed",
            Self::HealthCheckFailed => "health_check_failed",
            Self::AllowedFails => "allowed_fails",
            Self::FailureRate => "failure_rate",
        }
    }
}

/// The last minute of a deployment's calls and counted failures, in [`BUCKET_MS`] buckets. Calls come from the
/// stats' request counter (read on each tick and before each failure: successes send no message), failures as the
/// worker is told of them.
#[derive(Debug, Clone)]
pub struct Window {
    /// The bucket `now_ms / BUCKET_MS` that index `current` counts.
    bucket: u64,
    current: usize,
    calls: [u64; BUCKETS],
    failures: [[u32; CLASSES]; BUCKETS],
    /// Failures without a class (a 404 counted by no rule but its own) go to the totals only.
    unclassed: [u32; BUCKETS],
    /// The request counter when last read.
    requests_seen: u64,
}

impl Window {
    pub fn new(now_ms: u64, requests_total: u64) -> Self {
        Self {
            bucket: now_ms / BUCKET_MS,
            current: 0,
            calls: [0; BUCKETS],
            failures: [[0; CLASSES]; BUCKETS],
            unclassed: [0; BUCKETS],
            requests_seen: requests_total,
        }
    }

    /// Moves to the bucket of `now_ms` (forgetting buckets older than a minute) and adds the calls started since
    /// the counter was last read to it.
    pub fn advance(&mut self, now_ms: u64, requests_total: u64) {
        let bucket = now_ms / BUCKET_MS;
        let steps = bucket.saturating_sub(self.bucket).min(BUCKETS as u64);
        for _ in 0..steps {
            self.current = (self.current + 1) % BUCKETS;
            self.calls[self.current] = 0;
            self.failures[self.current] = [0; CLASSES];
            self.unclassed[self.current] = 0;
        }
        self.bucket = self.bucket.max(bucket);
        self.calls[self.current] += requests_total.saturating_sub(self.requests_seen);
        self.requests_seen = self.requests_seen.max(requests_total);
    }

    pub fn fail(&mut self, class: Option<ErrorClass>) {
        match class {
            Some(c) => self.failures[self.current][c as usize] += 1,
            None => self.unclassed[self.current] += 1,
        }
    }

    /// Forgets the failures (after they took the deployment out: the next cooldown needs new ones).
    pub fn clear(&mut self) {
        self.failures = [[0; CLASSES]; BUCKETS];
        self.unclassed = [0; BUCKETS];
        self.calls = [0; BUCKETS];
    }

    pub fn failures(&self) -> u64 {
        let classed: u64 = self.failures.iter().flatten().map(|&n| u64::from(n)).sum();
        classed + self.unclassed.iter().map(|&n| u64::from(n)).sum::<u64>()
    }

    pub fn failures_of(&self, class: ErrorClass) -> u64 {
        self.failures.iter().map(|b| u64::from(b[class as usize])).sum()
    }

    /// Calls in the last minute; at least the failures (a call that began before the window counts once it fails).
    pub fn calls(&self) -> u64 {
        self.calls.iter().sum::<u64>().max(self.failures())
    }
}

/// Whether the failure just added to `window` takes the deployment out, and why. `None`: it stays.
pub fn decide(circuit: &Circuit, window: &Window, failed: &Failed) -> Option<Trip> {
    if circuit.disabled {
        return None;
    }
    if failed.failure == UpstreamFailure::Status(429) && !failed.alone {
        return Some(Trip::RateLimited);
    }
    if failed.probe {
        return Some(Trip::ProbeFailed);
    }
    if failed.health_check && !failed.alone {
        return Some(Trip::HealthCheckFailed);
    }
    let policy = failed.class.and_then(|c| Some((c, circuit.allowed_fails_policy.get(c)?)));
    let over_allowed = match policy {
        Some((class, allowed)) => window.failures_of(class) > u64::from(allowed),
        None => window.failures() > u64::from(circuit.allowed_fails),
    };
    if over_allowed {
        return Some(Trip::AllowedFails);
    }
    let (calls, failures) = (window.calls(), window.failures());
    let rate_trips = if failed.alone {
        failures == calls && calls >= ALONE_MINIMUM_REQUESTS
    } else {
        calls >= circuit.failure_threshold_minimum_requests
            && failures as f64 > circuit.failure_threshold * calls as f64
    };
    rate_trips.then_some(Trip::FailureRate)
}

/// How long the deployment sits out: a rate limit for as long as the upstream asked (`cooldown_time` when it did
/// not say), anything else `cooldown_time` or the upstream's `retry-after`, whichever is longer.
pub fn cooldown(circuit: &Circuit, trip: Trip, retry_after: Option<Duration>) -> Duration {
    match (trip, retry_after) {
        (Trip::RateLimited, Some(asked)) => asked,
        (_, asked) => asked.map_or(circuit.cooldown_time, |r| r.max(circuit.cooldown_time)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit() -> Circuit {
        Circuit {
            allowed_fails: 3,
            allowed_fails_policy: PerClass::default(),
            failure_threshold: 0.5,
            failure_threshold_minimum_requests: 5,
            cooldown_time: Duration::from_secs(5),
            disabled: false,
        }
    }

    fn failed(failure: UpstreamFailure) -> Failed {
        Failed { failure, class: ErrorClass::of(failure, None), probe: false, health_check: false, alone: false }
    }

    /// A window at 0 ms with `calls` calls and `failures` failures of `class`.
    fn window(calls: u64, failures: u32, class: Option<ErrorClass>) -> Window {
        let mut w = Window::new(0, 0);
        w.advance(0, calls);
        for _ in 0..failures {
            w.fail(class);
        }
        w
    }

    #[test]
    fn the_rules_in_order() {
        use ErrorClass as C;
        use UpstreamFailure::*;
        let five_hundred = failed(Status(500));
        let alone = Failed { alone: true, ..five_hundred };
        let timeout = failed(Timeout);
        let mut policy = circuit();
        policy.allowed_fails_policy.set(C::Timeout, Some(1));
        policy.allowed_fails_policy.set(C::Authentication, Some(0));
        let cases: [(&str, Circuit, Window, Failed, Option<Trip>); 18] = [
            (
                "disable_cooldowns: a 429",
                Circuit { disabled: true, ..circuit() },
                window(100, 1, Some(C::RateLimit)),
                failed(Status(429)),
                None,
            ),
            (
                "disable_cooldowns: all failed",
                Circuit { disabled: true, ..circuit() },
                window(100, 100, Some(C::InternalServer)),
                five_hundred,
                None,
            ),
            ("a 429", circuit(), window(100, 1, Some(C::RateLimit)), failed(Status(429)), Some(Trip::RateLimited)),
            (
                "a lone 429",
                circuit(),
                window(100, 1, Some(C::RateLimit)),
                Failed { alone: true, ..failed(Status(429)) },
                None,
            ),
            (
                "the probe",
                circuit(),
                window(100, 1, Some(C::InternalServer)),
                Failed { probe: true, ..alone },
                Some(Trip::ProbeFailed),
            ),
            (
                "a health check",
                circuit(),
                window(100, 1, Some(C::InternalServer)),
                Failed { health_check: true, ..five_hundred },
                Some(Trip::HealthCheckFailed),
            ),
            (
                "a lone health check",
                circuit(),
                window(100, 1, Some(C::InternalServer)),
                Failed { health_check: true, ..alone },
                None,
            ),
            ("3 of 100 allowed", circuit(), window(100, 3, Some(C::InternalServer)), five_hundred, None),
            (
                "4 of 100: over allowed_fails",
                circuit(),
                window(100, 4, Some(C::InternalServer)),
                five_hundred,
                Some(Trip::AllowedFails),
            ),
            (
                "4 of 4, too few calls for the rate",
                circuit(),
                window(4, 3, Some(C::InternalServer)),
                five_hundred,
                None,
            ),
            (
                "3 of 5: over half",
                circuit(),
                window(5, 3, Some(C::InternalServer)),
                five_hundred,
                Some(Trip::FailureRate),
            ),
            ("3 of 6: not over half", circuit(), window(6, 3, Some(C::InternalServer)), five_hundred, None),
            ("3 of 5 alone: never by rate", circuit(), window(5, 3, Some(C::InternalServer)), alone, None),
            (
                "policy: 2 timeouts over 1",
                policy.clone(),
                window(100, 2, Some(C::Timeout)),
                timeout,
                Some(Trip::AllowedFails),
            ),
            ("policy: 1 timeout allowed", policy.clone(), window(100, 1, Some(C::Timeout)), timeout, None),
            (
                "policy counts its class only",
                policy.clone(),
                {
                    let mut w = window(100, 3, Some(C::InternalServer));
                    w.fail(Some(C::Timeout));
                    w
                },
                timeout,
                None,
            ),
            (
                "policy: auth allowed 0",
                policy,
                window(100, 1, Some(C::Authentication)),
                failed(Status(401)),
                Some(Trip::AllowedFails),
            ),
            (
                "a higher threshold",
                Circuit { failure_threshold: 0.7, ..circuit() },
                window(5, 3, Some(C::InternalServer)),
                five_hundred,
                None,
            ),
        ];
        for (name, circuit, window, failed, want) in cases {
            assert_eq!(decide(&circuit, &window, &failed), want, "{name}");
        }
    }

    #[test]
    fn a_lone_deployment_cools_down_only_when_all_of_many_calls_failed() {
        let alone = Failed { alone: true, ..failed(UpstreamFailure::Status(503)) };
        let lenient = Circuit { allowed_fails: u32::MAX, ..circuit() };
        let all = window(ALONE_MINIMUM_REQUESTS, ALONE_MINIMUM_REQUESTS as u32, Some(ErrorClass::InternalServer));
        assert_eq!(decide(&lenient, &all, &alone), Some(Trip::FailureRate));
        let one_ok =
            window(ALONE_MINIMUM_REQUESTS, ALONE_MINIMUM_REQUESTS as u32 - 1, Some(ErrorClass::InternalServer));
        assert_eq!(decide(&lenient, &one_ok, &alone), None);
    }

    #[test]
    fn only_the_deployments_faults_count_unless_the_policy_names_the_class() {
        use UpstreamFailure::*;
        let mut c = circuit();
        let class = |f| ErrorClass::of(f, None);
        for (failure, counts) in [
            (Status(500), true),
            (Status(429), true),
            (Timeout, true),
            (Status(400), false),
            (Status(401), false),
            (Status(404), false),
        ] {
            assert_eq!(c.counts(failure, class(failure)), counts, "{failure:?}");
        }
        c.allowed_fails_policy.set(ErrorClass::BadRequest, Some(10));
        assert!(c.counts(Status(400), class(Status(400))));
        assert!(!c.counts(Status(404), class(Status(404))), "no class, no policy");
    }

    #[test]
    fn the_window_forgets_what_is_older_than_a_minute() {
        let mut w = Window::new(0, 0);
        w.advance(1_000, 10);
        w.fail(Some(ErrorClass::InternalServer));
        assert_eq!((w.calls(), w.failures()), (10, 1));
        w.advance(BUCKET_MS * 3, 16);
        w.fail(None);
        assert_eq!((w.calls(), w.failures()), (16, 2), "both buckets in the minute");
        w.advance(BUCKET_MS * 6 + 1, 16);
        assert_eq!((w.calls(), w.failures()), (6, 1), "the first bucket has left the minute");
        w.advance(BUCKET_MS * 100, 20);
        assert_eq!((w.calls(), w.failures()), (4, 0), "all forgotten; the calls since are in the current bucket");
        w.fail(Some(ErrorClass::Timeout));
        w.clear();
        assert_eq!((w.calls(), w.failures(), w.failures_of(ErrorClass::Timeout)), (0, 0, 0));
        w.advance(BUCKET_MS * 100, 5);
        assert_eq!(w.calls(), 0, "a counter read lower than before (a new table) adds nothing");
    }

    #[test]
    fn cooldowns_last_the_longer_of_the_setting_and_the_upstreams_ask() {
        let c = circuit();
        let s = Duration::from_secs;
        let cases = [
            (Trip::RateLimited, Some(s(2)), s(2)),
            (Trip::RateLimited, None, s(5)),
            (Trip::AllowedFails, Some(s(2)), s(5)),
            (Trip::AllowedFails, Some(s(30)), s(30)),
            (Trip::FailureRate, None, s(5)),
            (Trip::HealthCheckFailed, None, s(5)),
        ];
        for (trip, asked, want) in cases {
            assert_eq!(cooldown(&c, trip, asked), want, "{trip:?} {asked:?}");
        }
    }
}
