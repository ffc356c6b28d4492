//! Settlement of one upstream call: whatever way the call ends (complete, failed, cancelled by a client that
//! went away), dropping the [`Settlement`] records it exactly once: live deployment stats, cost, the worker's
//! failure report, and one structured log line.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use crate::{
    actors::deployment_worker::ReportFailure,
    error::{UpstreamError, UpstreamFailure},
    lifecycle::InFlight,
    pipeline::usage::Usage,
    routing::Deployment,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still running; if dropped like this, the caller went away.
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
    outcome: Outcome,
    stream: bool,
    _in_flight: InFlight,
}

impl Settlement {
    pub fn begin(deployment: Arc<Deployment>, request_id: Arc<str>, stream: bool, in_flight: InFlight) -> Self {
        deployment.stats.in_flight.fetch_add(1, Relaxed);
        deployment.stats.requests.fetch_add(1, Relaxed);
        Self {
            deployment,
            request_id,
            started: Instant::now(),
            usage: None,
            outcome: Outcome::Pending,
            stream,
            _in_flight: in_flight,
        }
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The upstream's response headers arrived.
    pub fn headers_received(&self) {
        self.deployment.stats.record_latency(self.started.elapsed());
    }

    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    pub fn complete(&mut self) {
        self.outcome = Outcome::Completed;
    }

    pub fn broken(&mut self) {
        self.outcome = Outcome::Broken;
        self.report(UpstreamFailure::Unreachable, None);
    }

    /// The call failed before any response byte reached the caller.
    pub fn fail(&mut self, error: &UpstreamError) {
        self.outcome = Outcome::Failed(error.failure);
        let retry_after = error
            .headers
            .iter()
            .find(|(name, _)| name == "retry-after")
            .and_then(|(_, v)| v.trim().parse::<f64>().ok())
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok());
        self.report(error.failure, retry_after);
    }

    fn report(&self, failure: UpstreamFailure, retry_after: Option<Duration>) {
        let stats = &self.deployment.stats;
        stats.failures.fetch_add(1, Relaxed);
        if !failure.counts_against_deployment() {
            return;
        }
        if let Some(worker) = &self.deployment.worker {
            // Never wait on the worker: a full mailbox costs one lost report, counted, not a stalled request.
            if worker.try_send(ReportFailure { failure, retry_after }).is_err() {
                stats.dropped_reports.fetch_add(1, Relaxed);
            }
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let d = &self.deployment;
        d.stats.in_flight.fetch_sub(1, Relaxed);
        let usage = self.usage.unwrap_or_default();
        let cost_nanos = d.prices.cost_nanos(usage);
        if self.usage.is_some() {
            d.stats.record_usage(usage, cost_nanos);
        }
        let outcome = match self.outcome {
            Outcome::Pending => "cancelled",
            Outcome::Completed => "completed",
            Outcome::Failed(_) => "failed",
            Outcome::Broken => "broken",
        };
        tracing::info!(
            request_id = %self.request_id,
            model_group = %d.model_group,
            deployment = %d.id,
            provider = d.provider.name(),
            stream = self.stream,
            outcome,
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            cost_usd = cost_nanos as f64 / 1e9,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "upstream call finished"
        );
    }
}
