//! Settlement of one upstream call: whatever way the call ends (complete, failed, cancelled by a client that
//! went away), dropping the [`Settlement`] records it exactly once: live deployment stats, cost, the worker's
//! failure report, and one structured log line.
//!
//! Money is never silently $0: a call that completes without usage, a stream cut before its usage chunk, a body
//! too large to read usage from, and usage of a model without a price are each an [`AccountingGap`], counted
//! in the deployment's stats, named in the call's log line, and warned about once per cause per deployment.

use std::{
    cell::Cell,
    fmt,
    rc::Rc,
    sync::{
        atomic::Ordering::{Acquire, Relaxed},
        Arc,
    },
    time::Instant,
};

use crate::{
    clock,
    lifecycle::InFlight,
    llm::{ErrorClass, UpstreamError, UpstreamFailure, Usage},
    logs::request::{Attempt, RequestLog},
    pricing::Pricing,
    routing::{
        circuit,
        stats::{AccountingGap, ReportFailure, PROBE_RUNNING},
        Deployment,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still running; if dropped like this, the caller went away, or the call lost a hedged race.
    Pending,
    Completed,
    Failed(UpstreamFailure),
    /// The stream broke after the response had started.
    Broken,
}

pub struct Settlement {
    deployment: Arc<Deployment>,
    request_id: Arc<str>,
    started: Instant,
    usage: Option<Usage>,
    gap: Option<AccountingGap>,
    /// The upstream answered (2xx headers, or a mock reply): from here on it may bill for tokens.
    responded: bool,
    /// Time to the upstream's first byte (its response headers, then, where the call waits for it, the first
    /// event of the body); folded into the deployment's latency only if the call succeeds.
    header_latency: Option<std::time::Duration>,
    outcome: Outcome,
    stream: bool,
    /// This call is the probe of a deployment back from a cooldown: its outcome opens or closes the circuit.
    probe: bool,
    /// The request's "a hedged race is dropping its loser" flag (`RequestCtx::drop_race_loser`), read on drop.
    race_lost: Option<Rc<Cell<bool>>>,
    /// This call is a health check (background, or `GET /health`): tagged in its log line and its failure report.
    health_check: bool,
    /// The request's record in the request log, which this call adds to when it ends.
    log: Option<Arc<RequestLog>>,
    /// Unix ms at `begin`, for the request log's first-byte time.
    started_unix_ms: i64,
    /// The request's rate-limit admission: takes this call's tokens (tpm), holds its parallel slots.
    ticket: Option<Arc<crate::limits::Ticket>>,
    /// What the answer said of itself, for the request log's span: the model that answered and why it stopped.
    /// `None` unless the request's record has a span (nothing else reads them).
    reply: Option<ReplyFacts>,
    /// tollgate's own time before this call (`x-tollgate-overhead-ms`), for the request log.
    overhead_us: Option<u64>,
    _in_flight: InFlight,
}

/// The model an answer names and its choices' finish reasons (OpenAI's names), as the call saw them.
#[derive(Debug, Default)]
pub struct ReplyFacts {
    pub model: Option<Box<str>>,
    pub finish_reasons: Vec<Box<str>>,
}

impl Settlement {
    /// This call's tokens count against the request's tpm limits, and it holds the request's parallel slots
    /// until it ends (a streamed answer outlives its handler).
    pub fn with_ticket(mut self, ticket: Option<Arc<crate::limits::Ticket>>) -> Self {
        self.ticket = ticket;
        self
    }

    pub fn begin(deployment: Arc<Deployment>, request_id: Arc<str>, stream: bool, in_flight: InFlight) -> Self {
        deployment.stats.in_flight.fetch_add(1, Relaxed);
        deployment.stats.requests.fetch_add(1, Relaxed);
        deployment.stats.count_minute_request(clock::monotonic_ms());
        // Only the probe begins while a probe runs: the picker sends no other call there meanwhile.
        let probe = deployment.stats.probe.load(Acquire) == PROBE_RUNNING;
        Self {
            probe,
            health_check: false,
            log: None,
            started_unix_ms: clock::unix_ms(),
            deployment,
            request_id,
            started: Instant::now(),
            usage: None,
            gap: None,
            responded: false,
            header_latency: None,
            outcome: Outcome::Pending,
            stream,
            race_lost: None,
            ticket: None,
            reply: None,
            overhead_us: None,
            _in_flight: in_flight,
        }
    }

    /// Marks the call as a health check. A health check is never the half-open probe: it claimed nothing, even if
    /// a probe is running now.
    /// The request log record this call adds to when it ends.
    pub fn log(mut self, log: Option<Arc<RequestLog>>) -> Self {
        self.reply = log.as_ref().filter(|l| l.is_traced()).map(|_| ReplyFacts::default());
        self.log = log;
        self
    }

    /// tollgate's own time before this call, in milliseconds (what `x-tollgate-overhead-ms` says).
    pub fn overhead_ms(mut self, ms: f64) -> Self {
        self.overhead_us = Some((ms.max(0.0) * 1000.0) as u64);
        self
    }

    pub fn health_check(mut self, yes: bool) -> Self {
        self.health_check = yes;
        self.probe &= !yes;
        self
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Lets the call know, when it is dropped, that it lost a hedged race (see `RequestCtx::drop_race_loser`).
    pub fn watch_race(&mut self, flag: Rc<Cell<bool>>) {
        self.race_lost = Some(flag);
    }

    /// The body's first event arrived (`call` waits for it before answering): for a stream the time to first
    /// token, which is what latency routing should compare, not the time to headers.
    pub fn first_event(&mut self) {
        self.header_latency = Some(self.started.elapsed());
    }

    /// The upstream's response headers arrived.
    pub fn headers_received(&mut self) {
        self.responded = true;
        self.header_latency = Some(self.started.elapsed());
    }

    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// The model the answer names (the first one seen counts: a stream repeats it in every chunk).
    pub fn answered_by(&mut self, model: &str) {
        if let Some(reply) = self.reply.as_mut().filter(|r| r.model.is_none() && !model.is_empty()) {
            reply.model = Some(model.into());
        }
    }

    /// What a relayed OpenAI-shaped body or chunk says of itself.
    pub fn peeked(&mut self, peek: &super::peek::Peek<'_>) {
        if let Some(model) = peek.model() {
            self.answered_by(model);
        }
        for reason in peek.finish_reasons() {
            self.finished_because(reason);
        }
    }

    /// What a decoded (translated or mock) reply says of itself.
    pub fn read_reply(&mut self, reply: &crate::llm::chat::Reply) {
        self.answered_by(&reply.model);
        if let Some(finish) = &reply.finish {
            self.finished_because(finish.openai());
        }
    }

    /// A choice finished, for this reason (each distinct reason is kept once).
    pub fn finished_because(&mut self, reason: &str) {
        if let Some(reply) = self.reply.as_mut().filter(|r| !r.finish_reasons.iter().any(|f| &**f == reason)) {
            reply.finish_reasons.push(reason.into());
        }
    }

    /// The call's usage cannot be read, for this reason.
    pub fn usage_gap(&mut self, gap: AccountingGap) {
        self.gap = Some(gap);
    }

    /// The response ended as it should. A failure recorded earlier (an error event in the stream) stands.
    pub fn complete(&mut self) {
        if self.outcome == Outcome::Pending {
            self.outcome = Outcome::Completed;
        }
    }

    pub fn broken(&mut self) {
        self.outcome = Outcome::Broken;
        self.report(UpstreamFailure::Unreachable, None, None);
    }

    /// A 2xx response carried an error object (as its body or as a stream event): a failure, whatever the status.
    /// Logged and reported once per call, however many error events follow.
    pub fn error_in_body(&mut self) {
        if matches!(self.outcome, Outcome::Pending | Outcome::Completed) {
            self.outcome = Outcome::Failed(UpstreamFailure::ErrorInBody);
            tracing::error!(
                request_id = %self.request_id,
                deployment = %self.deployment.id,
                stream = self.stream,
                "upstream sent an error object in a 2xx response"
            );
            self.report(UpstreamFailure::ErrorInBody, None, None);
        }
    }

    /// A 2xx response whose body the dialect could not read (reported before any byte reached the caller).
    pub fn malformed(&mut self) {
        self.outcome = Outcome::Failed(UpstreamFailure::Malformed);
        self.report(UpstreamFailure::Malformed, None, None);
    }

    /// The upstream answered 2xx but the call was given up before the first event (a first-token timeout, a
    /// body that ended or broke first): the deployment's failure, and, unlike [`Settlement::fail`], the upstream
    /// may bill for what it generated.
    pub fn abandon(&mut self, error: &UpstreamError) {
        self.outcome = Outcome::Failed(error.failure);
        self.report(error.failure, error.code.as_deref(), None);
    }

    /// The call failed before any response byte reached the caller.
    pub fn fail(&mut self, error: &UpstreamError) {
        self.responded = false;
        self.outcome = Outcome::Failed(error.failure);
        self.report(error.failure, error.code.as_deref(), error.retry_after());
    }

    /// Tells the worker about a failure that counts against the deployment (a caller's mistake only when
    /// `allowed_fails_policy` names its class); one that does not count sends nothing.
    fn report(&self, failure: UpstreamFailure, code: Option<&str>, retry_after: Option<std::time::Duration>) {
        let stats = &self.deployment.stats;
        stats.failures.fetch_add(1, Relaxed);
        let class = ErrorClass::of(failure, code);
        if !circuit::counts(&self.deployment.allowed_fails_policy, failure, class) {
            return;
        }
        if let Some(worker) = &self.deployment.worker {
            let report = ReportFailure { failure, class, retry_after, health_check: self.health_check };
            // Never wait on the worker: a full mailbox costs one lost report, counted, not a stalled request.
            if worker.try_send(report).is_err() {
                let dropped = stats.dropped_reports.fetch_add(1, Relaxed) + 1;
                // The first drop and then every power of two: visible without flooding the log under overload.
                if dropped.is_power_of_two() {
                    tracing::warn!(deployment = %self.deployment.id, dropped, "deployment worker mailbox full: failure reports dropped");
                }
            }
        }
    }

    /// The gap this call leaves in the books, if any, once it is over.
    fn final_gap(&self, lost_race: bool) -> Option<AccountingGap> {
        match (self.outcome, self.usage, self.gap) {
            (Outcome::Pending, None, None) if lost_race => Some(AccountingGap::HedgeCancelled),
            // No tokens cost nothing, priced or not.
            (_, Some(u), _) if self.deployment.pricing == Pricing::Unpriced && u != Usage::default() => {
                Some(AccountingGap::Unpriced)
            }
            (_, Some(_), _) => None,
            (_, None, Some(gap)) => Some(gap),
            (Outcome::Completed, None, None) => Some(AccountingGap::UsageMissing),
            // Cut after the upstream started answering: it may bill for what it generated.
            (Outcome::Pending | Outcome::Broken, None, None) if self.responded => Some(AccountingGap::CutBeforeUsage),
            // Given up after 2xx headers (`abandon`): it may have generated tokens.
            (Outcome::Failed(UpstreamFailure::Timeout | UpstreamFailure::Unreachable), None, None)
                if self.responded =>
            {
                Some(AccountingGap::CutBeforeUsage)
            }
            (Outcome::Failed(UpstreamFailure::ErrorInBody), None, None) => None,
            // A 2xx body nobody could read: the upstream answered and may have billed.
            (Outcome::Failed(UpstreamFailure::Malformed), None, None) => Some(AccountingGap::UsageMissing),
            // Failed or cancelled before the upstream answered: nothing was billed.
            (Outcome::Pending | Outcome::Failed(_) | Outcome::Broken, None, None) => None,
        }
    }
}

/// Milliseconds with three decimals, from whole microseconds, by integer arithmetic: `duration_ms` in the call's
/// log line and the `x-tollgate-overhead-ms` header (the same microseconds as the log record's `overhead_us`).
pub(super) struct Millis(pub u64);

impl Millis {
    pub fn of(elapsed: std::time::Duration) -> Self {
        Millis(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
    }

    /// From fractional milliseconds, truncated to the microsecond (as `overhead_us` is).
    pub fn of_ms(ms: f64) -> Self {
        Millis((ms.max(0.0) * 1000.0) as u64)
    }

    /// Whole milliseconds through itoa (this is written once per call; `u128`'s and `f64`'s `Display` are the slow
    /// paths), then the point and three digits.
    fn parts(&self) -> (itoa::Buffer, [u8; 4]) {
        let fraction = self.0 % 1000;
        let digits =
            [b'.', b'0' + (fraction / 100) as u8, b'0' + (fraction / 10 % 10) as u8, b'0' + (fraction % 10) as u8];
        (itoa::Buffer::new(), digits)
    }

    /// The text on its own (for a header), without `fmt`'s machinery.
    pub fn text(&self) -> String {
        let (mut whole, fraction) = self.parts();
        let mut text = String::with_capacity(24);
        text.push_str(whole.format(self.0 / 1000));
        text.push_str(std::str::from_utf8(&fraction).unwrap_or(".000"));
        text
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut whole, fraction) = self.parts();
        f.write_str(whole.format(self.0 / 1000))?;
        f.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
    }
}

/// `cost_usd` in the call's log line: a number, or the word that says why there is none.
struct Cost(Option<u64>);

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(nanos) => write!(f, "{}", nanos as f64 / 1e9),
            None => f.write_str("unknown"),
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let d = &self.deployment;
        d.stats.in_flight.fetch_sub(1, Relaxed);
        if self.probe {
            d.stats.probe_done(self.outcome == Outcome::Completed);
        }
        let lost_race = self.race_lost.as_ref().is_some_and(|flag| flag.get());
        let gap = self.final_gap(lost_race);
        let cost = match self.usage {
            Some(usage) => d.pricing.cost_nanos(usage),
            // Failed, cancelled or broken before any usage: nothing was billed.
            None if gap.is_none() => Some(0),
            None => None,
        };
        if let Some(usage) = self.usage {
            d.stats.record_usage(usage, cost);
            d.stats.count_minute_tokens(clock::monotonic_ms(), usage.prompt_tokens + usage.completion_tokens);
            if let Some(ticket) = &self.ticket {
                ticket.record_tokens(usage.prompt_tokens + usage.completion_tokens);
            }
        }
        // Latency of failures (an error status arrives fast, a timeout never) would mislead latency routing.
        if let (Outcome::Completed, Some(latency)) = (self.outcome, self.header_latency) {
            d.stats.record_latency(latency);
        }
        if let Some(gap) = gap {
            if d.stats.record_gap(gap) {
                tracing::warn!(
                    deployment = %d.id,
                    model = %d.upstream_model,
                    cause = gap.as_str(),
                    "a call's cost could not be counted exactly; further calls with this cause are counted in \
                     the deployment's stats (GET /metrics) and named in their log lines"
                );
            }
        }
        let outcome = match self.outcome {
            Outcome::Pending => "cancelled",
            Outcome::Completed => "completed",
            Outcome::Failed(_) => "failed",
            Outcome::Broken => "broken",
        };
        let usage = self.usage.unwrap_or_default();
        if let Some(log) = &self.log {
            let served = self.responded && !lost_race && !matches!(self.outcome, Outcome::Failed(_));
            log.attempt(&Attempt {
                model_group: &d.model_group,
                deployment: &d.id,
                provider: d.provider.name(),
                api_base: &d.api_base,
                streamed: self.stream,
                served,
                first_byte_at_ms: self.header_latency.map(|l| self.started_unix_ms + l.as_millis() as i64),
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                cache_read_tokens: usage.cache_read_tokens,
                cache_write_tokens: usage.cache_write_tokens,
                reasoning_tokens: usage.reasoning_tokens,
                cost_nanos: cost,
                gap: gap.map(AccountingGap::as_str),
                broken: self.outcome == Outcome::Broken,
                response_model: self.reply.as_ref().and_then(|r| r.model.as_deref()),
                overhead_us: self.overhead_us,
                finish_reasons: self.reply.as_ref().map_or(&[], |r| &r.finish_reasons),
            });
        }
        tracing::info!(
            request_id = %self.request_id,
            model_group = %d.model_group,
            deployment = %d.id,
            provider = d.provider.name(),
            stream = self.stream,
            health_check = self.health_check,
            outcome,
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            cache_read_tokens = usage.cache_read_tokens,
            cache_write_tokens = usage.cache_write_tokens,
            reasoning_tokens = usage.reasoning_tokens,
            cost_usd = %Cost(cost),
            accounting = gap.map_or("exact", AccountingGap::as_str),
            duration_ms = %Millis::of(self.started.elapsed()),
            "upstream call finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix::Actor;

    use super::*;
    use crate::{
        actors::deployment_worker::{DeploymentWorker, Retire},
        config::Config,
        lifecycle::Lifecycle,
        pricing,
        routing::RoutingTable,
    };

    #[test]
    fn durations_are_logged_in_milliseconds_to_the_microsecond() {
        let cases: &[(u64, &str)] =
            &[(0, "0.000"), (7, "0.007"), (5_901, "5.901"), (60_000, "60.000"), (1_234_567_890, "1234567.890")];
        for &(us, want) in cases {
            assert_eq!(Millis::of(Duration::from_micros(us)).to_string(), want);
            assert_eq!(Millis(us).text(), want);
        }
    }

    #[actix_rt::test]
    async fn a_failure_report_the_worker_cannot_take_is_counted() {
        let env = |_: &str| None;
        let yaml = "model_list: [{model_name: m, litellm_params: {model: mock/x}}]\n";
        let config = Config::load_str(yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
        let stats = Arc::default();
        let circuit = crate::routing::circuit::Circuit::from(&config.router);
        let worker = DeploymentWorker::new("m#0".into(), stats, circuit).start();
        let _ = worker.send(Retire).await;
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        let table = RoutingTable::build(&config, &env, pricing::vendored(), |_, _, _| Some(worker.clone().recipient()))
            .unwrap_or_else(|e| unreachable!("{e}"));
        let d = table.deployments().next().cloned().unwrap_or_else(|| unreachable!());
        let life = Arc::new(Lifecycle::default());
        let error = UpstreamError {
            failure: UpstreamFailure::Status(503),
            deployment: d.id.clone(),
            message: "down".into(),
            kind: None,
            code: None,
            param: None,
            headers: Vec::new(),
        };
        let mut settle = Settlement::begin(d.clone(), Arc::from("rid"), false, life.enter());
        settle.fail(&error);
        drop(settle);
        assert_eq!(d.stats.dropped_reports.load(Relaxed), 1);
        assert_eq!(d.stats.failures.load(Relaxed), 1);
    }

    #[test]
    fn a_call_of_no_tokens_is_exact_even_unpriced() {
        let env = |_: &str| None;
        let yaml = "model_list: [{model_name: m, litellm_params: {model: openai/unknown, api_base: 'http://127.0.0.1:9/v1'}}]\n";
        let config = Config::load_str(yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
        let table = RoutingTable::build(&config, &env, pricing::vendored(), |_, _, _| None)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let d = table.deployments().next().cloned().unwrap_or_else(|| unreachable!());
        assert_eq!(d.pricing, Pricing::Unpriced);
        let life = Arc::new(Lifecycle::default());
        let settle_with = |usage: Usage| {
            let mut settle = Settlement::begin(d.clone(), Arc::from("rid"), false, life.enter());
            settle.set_usage(usage);
            settle.complete();
            settle.final_gap(false)
        };
        assert_eq!(settle_with(Usage::default()), None);
        assert_eq!(settle_with(Usage { prompt_tokens: 1, ..Usage::default() }), Some(AccountingGap::Unpriced));
    }
}
