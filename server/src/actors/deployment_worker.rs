//! DeploymentWorker: one per deployment, supervised (restarted if it panics). Owns the deployment's health
//! state machine: it counts failures per minute and puts the deployment in cooldown after more than
//! `allowed_fails`, publishing the cooldown into the deployment's lock-free stats for the request path to read.
//!
//! The request path tells it about failures with `try_send` on a bounded mailbox and never waits for it; a
//! success needs no message at all, so the common case costs nothing here.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use actix::{Actor, ActorContext, Context, Handler, Message, Supervised};

use crate::{
    clock::monotonic_ms,
    routing::stats::{DeploymentStats, ReportFailure},
};

/// Room for failure reports between two worker turns; reports beyond it are dropped and counted.
pub const MAILBOX_CAPACITY: usize = 256;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The deployment left the routing table (config reload): stop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Retire;

pub struct DeploymentWorker {
    id: String,
    stats: Arc<DeploymentStats>,
    allowed_fails: u32,
    cooldown: Duration,
    failures_in_window: u32,
    window_started: Instant,
}

impl DeploymentWorker {
    pub fn new(id: String, stats: Arc<DeploymentStats>, allowed_fails: u32, cooldown: Duration) -> Self {
        Self { id, stats, allowed_fails, cooldown, failures_in_window: 0, window_started: Instant::now() }
    }
}

impl Actor for DeploymentWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        tracing::debug!(deployment = %self.id, "deployment worker started");
    }
}

impl Supervised for DeploymentWorker {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(deployment = %self.id, "deployment worker restarting");
        self.failures_in_window = 0;
    }
}

impl Handler<ReportFailure> for DeploymentWorker {
    type Result = ();

    fn handle(&mut self, msg: ReportFailure, _: &mut Self::Context) {
        if !msg.failure.counts_against_deployment() {
            return;
        }
        // The window restarts lazily on the first failure after it expired: no timer needed.
        if self.window_started.elapsed() >= FAILURE_WINDOW {
            self.window_started = Instant::now();
            self.failures_in_window = 0;
        }
        self.failures_in_window += 1;
        if self.failures_in_window <= self.allowed_fails {
            return;
        }
        let cooldown = msg.retry_after.map_or(self.cooldown, |r| r.max(self.cooldown));
        let until = monotonic_ms() + cooldown.as_millis() as u64;
        self.stats.cooldown_until_ms.fetch_max(until, Relaxed);
        self.failures_in_window = 0;
        tracing::warn!(
            deployment = %self.id,
            failure = ?msg.failure,
            cooldown_secs = cooldown.as_secs_f64(),
            "deployment cooling down after repeated failures"
        );
    }
}

impl Handler<Retire> for DeploymentWorker {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::UpstreamFailure;

    #[actix_rt::test]
    async fn cools_down_after_more_than_allowed_fails() {
        let stats = Arc::new(DeploymentStats::default());
        let addr = DeploymentWorker::new("d".into(), stats.clone(), 2, Duration::from_secs(5)).start();
        let report = |failure| ReportFailure { failure, retry_after: None };
        for failure in [
            UpstreamFailure::Status(400),
            UpstreamFailure::Status(404),
            UpstreamFailure::Timeout,
            UpstreamFailure::Status(500),
        ] {
            let _ = addr.send(report(failure)).await;
        }
        assert!(!stats.is_cooling_down(monotonic_ms()), "2 counted failures are allowed");
        let _ = addr
            .send(ReportFailure { failure: UpstreamFailure::Status(429), retry_after: Some(Duration::from_secs(30)) })
            .await;
        assert!(stats.is_cooling_down(monotonic_ms()));
        let left = stats.cooldown_left_secs(monotonic_ms());
        assert!((29..=30).contains(&left), "retry-after outlasts cooldown_time: {left}");
    }
}
