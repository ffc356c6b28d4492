//! DeploymentWorker: one per deployment, supervised (restarted if it panics). Owns the deployment's health state
//! machine: it keeps the last minute of calls and failures and puts the deployment in cooldown when
//! `routing::circuit` says so (a rate limit, a failed probe or health check, more failures than `allowed_fails`
//! or its `allowed_fails_policy`, or a failure rate above `failure_threshold_percent`), publishing the cooldown
//! into the deployment's lock-free stats for the request path to read.
//!
//! The request path tells it about failures with `try_send` on a bounded mailbox and never waits for it; a
//! success needs no message at all: the worker reads the calls from the stats' request counter on a tick.
//!
//! With `general_settings.background_health_checks`, the worker also probes its deployment every
//! `health_check_interval` (`pipeline::probe`) and publishes each result in the stats; a failed probe reports
//! its failure like any call, and a healthy one does not end a cooldown early (the half-open probe after the
//! cooldown does that, with a caller's call).
//!
//! For providers whose credential is an access token (Vertex AI's service account), the worker also fetches the
//! token at start and refreshes it before it expires; the provider publishes it to the request path through an
//! atomic pointer, so requests never wait for the worker.

use std::{
    sync::{
        atomic::Ordering::{Relaxed, Release},
        Arc, Weak,
    },
    time::Duration,
};

use actix::{
    fut::wrap_future, Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Supervised,
};
use awc::http::header;

use crate::{
    alerts::Alerts,
    clock::monotonic_ms,
    config::AlertType,
    lifecycle::Lifecycle,
    pipeline::probe,
    providers::codec::{Dialect, TokenRequest},
    routing::{
        circuit::{self, Circuit, Failed, Window},
        stats::{DeploymentStats, ReportFailure, PROBE_DUE},
        Deployment,
    },
    upstream::Upstream,
};

/// A token endpoint gets this long to answer, and its answer is read up to this size.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TOKEN_BODY: usize = 64 * 1024;
/// Retries of a failed token fetch back off from the first delay to the last.
const TOKEN_RETRY_FIRST: Duration = Duration::from_secs(1);
const TOKEN_RETRY_MAX: Duration = Duration::from_secs(60);

/// Room for failure reports between two worker turns; reports beyond it are dropped and counted.
pub const MAILBOX_CAPACITY: usize = 256;

/// The deployment left the routing table (config reload): stop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Retire;

/// The deployment this worker serves, once the routing table holding it is built (the worker starts first). Weak:
/// the table owns its deployments, and a deployment holds its worker's address.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Watch(pub Weak<Deployment>);

/// Background health checks: how the worker reaches the upstream, and how often.
#[derive(Clone)]
pub struct BackgroundChecks {
    pub upstream: Upstream,
    pub interval: Duration,
}

pub struct DeploymentWorker {
    id: String,
    stats: Arc<DeploymentStats>,
    /// The provider and the way to reach its token endpoint, for deployments with tokens to refresh.
    credentials: Option<(Arc<dyn Dialect>, Upstream)>,
    /// The only deployment of its group: a rate limit or a failure rate does not take it out (there is nowhere
    /// else to go; the caller gets the upstream's error instead of a 503), as in LiteLLM.
    alone: bool,
    circuit: Circuit,
    window: Window,
    health_checks: Option<BackgroundChecks>,
    deployment: Weak<Deployment>,
    /// A background health check is running: the next one waits for it.
    checking: bool,
    /// Health checks' calls count as in flight here, not in the server's drain.
    lifecycle: Arc<Lifecycle>,
    /// Where a cooldown is announced (`general_settings.alerting`).
    alerts: Option<Alerts>,
}

impl DeploymentWorker {
    pub fn new(id: String, stats: Arc<DeploymentStats>, circuit: Circuit) -> Self {
        let window = Window::new(monotonic_ms(), stats.requests.load(Relaxed));
        Self {
            id,
            stats,
            credentials: None,
            alone: false,
            circuit,
            window,
            health_checks: None,
            deployment: Weak::new(),
            checking: false,
            alerts: None,
            lifecycle: Arc::default(),
        }
    }

    pub fn with_credentials(mut self, credentials: Option<(Arc<dyn Dialect>, Upstream)>) -> Self {
        self.credentials = credentials;
        self
    }

    pub fn alone(mut self, alone: bool) -> Self {
        self.alone = alone;
        self
    }

    pub fn with_health_checks(mut self, health_checks: Option<BackgroundChecks>) -> Self {
        self.health_checks = health_checks;
        self
    }

    pub fn with_alerts(mut self, alerts: Option<Alerts>) -> Self {
        self.alerts = alerts;
        self
    }

    /// Reads the calls started since the last look into the window.
    fn tick(&mut self) {
        self.window.advance(monotonic_ms(), self.stats.requests.load(Relaxed));
    }

    /// Starts a background health check unless one is running, and publishes its result when it ends.
    fn health_check(&mut self, ctx: &mut Context<Self>) {
        let (Some(checks), Some(deployment)) = (&self.health_checks, self.deployment.upgrade()) else { return };
        if self.checking {
            return;
        }
        self.checking = true;
        let (upstream, lifecycle) = (checks.upstream.clone(), self.lifecycle.clone());
        let run = async move {
            let client = upstream.client();
            probe::check(&client, &deployment, &lifecycle).await
        };
        ctx.spawn(wrap_future::<_, Self>(run).map(|result, act, _| {
            act.checking = false;
            if !result.healthy {
                tracing::warn!(deployment = %act.id, error = result.error.as_deref().unwrap_or(""), "health check failed");
            }
            act.stats.health.store(Some(Arc::new(result)));
        }));
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Fetches the provider's token, installs it, and sleeps until the provider says to refresh; failures retry with
/// backoff. Runs as long as the worker does (a retired worker's loop is dropped with it).
async fn refresh_tokens(id: String, dialect: Arc<dyn Dialect>, upstream: Upstream) {
    let client = upstream.awc();
    let mut retry = TOKEN_RETRY_FIRST;
    loop {
        let Some(request) = dialect.token_request(unix_now()) else { return };
        let outcome = match request {
            Ok(request) => fetch_token(&client, request, dialect.as_ref()).await,
            Err(e) => Err(format!("cannot build the token request: {e}")),
        };
        let wait = match outcome {
            Ok(refresh_in) => {
                tracing::info!(deployment = %id, refresh_in_secs = refresh_in.as_secs(), "access token installed");
                retry = TOKEN_RETRY_FIRST;
                refresh_in
            }
            Err(error) => {
                tracing::warn!(deployment = %id, %error, retry_in_secs = retry.as_secs(), "access token fetch failed");
                let wait = retry;
                retry = (retry * 2).min(TOKEN_RETRY_MAX);
                wait
            }
        };
        actix_rt::time::sleep(wait).await;
    }
}

async fn fetch_token(client: &awc::Client, request: TokenRequest, dialect: &dyn Dialect) -> Result<Duration, String> {
    let mut response = client
        .post(request.url)
        .timeout(TOKEN_TIMEOUT)
        .insert_header((header::CONTENT_TYPE, TokenRequest::CONTENT_TYPE))
        .send_body(request.body)
        .await
        .map_err(|e| format!("token endpoint unreachable: {e}"))?;
    let status = response.status();
    let body = actix_rt::time::timeout(TOKEN_TIMEOUT, response.body().limit(MAX_TOKEN_BODY))
        .await
        .map_err(|_| "token endpoint did not send its answer in time".to_owned())?
        .map_err(|e| format!("token endpoint answer unreadable: {e}"))?;
    if !status.is_success() {
        // The endpoint's error body is OAuth's `{"error","error_description"}`: no secret in it.
        return Err(format!("token endpoint answered {status}: {}", String::from_utf8_lossy(&body)));
    }
    dialect.install_token(&body, unix_now())
}

impl Actor for DeploymentWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        tracing::debug!(deployment = %self.id, "deployment worker started");
        if let Some((dialect, upstream)) = self.credentials.clone() {
            ctx.spawn(wrap_future(refresh_tokens(self.id.clone(), dialect, upstream)));
        }
        // Successes send no message: the calls are read from the stats once per window bucket.
        ctx.run_interval(Duration::from_millis(circuit::BUCKET_MS), |act, _| act.tick());
        if let Some(interval) = self.health_checks.as_ref().map(|c| c.interval) {
            ctx.run_interval(interval, |act, ctx| act.health_check(ctx));
        }
    }
}

impl Supervised for DeploymentWorker {
    fn restarting(&mut self, _: &mut Self::Context) {
        tracing::warn!(deployment = %self.id, "deployment worker restarting");
        self.window = Window::new(monotonic_ms(), self.stats.requests.load(Relaxed));
        self.checking = false;
    }
}

impl Handler<ReportFailure> for DeploymentWorker {
    type Result = ();

    fn handle(&mut self, msg: ReportFailure, _: &mut Self::Context) {
        if !self.circuit.counts(msg.failure, msg.class) {
            return;
        }
        self.tick();
        self.window.fail(msg.class);
        let failed = Failed {
            failure: msg.failure,
            class: msg.class,
            // The call after a cooldown is the probe: its failure reopens the circuit at once.
            probe: self.stats.probe.load(Relaxed) != 0,
            health_check: msg.health_check,
            alone: self.alone,
        };
        let Some(trip) = circuit::decide(&self.circuit, &self.window, &failed) else { return };
        let cooldown = circuit::cooldown(&self.circuit, trip, msg.retry_after);
        let until = monotonic_ms() + cooldown.as_millis() as u64;
        self.stats.cooldown_until_ms.fetch_max(until, Relaxed);
        // After the cooldown, one call probes before traffic returns.
        self.stats.probe.store(PROBE_DUE, Release);
        tracing::warn!(
            deployment = %self.id,
            failure = ?msg.failure,
            reason = trip.as_str(),
            failures_last_minute = self.window.failures(),
            calls_last_minute = self.window.calls(),
            cooldown_secs = cooldown.as_secs_f64(),
            "deployment cooling down"
        );
        if let Some(alerts) = &self.alerts {
            alerts.raise(
                AlertType::Cooldown,
                format!(
                    "tollgate: deployment `{}` is cooling down for {:.1} s ({}; last failure: {:?}; {} failures in \
                     {} calls in the last minute)",
                    self.id,
                    cooldown.as_secs_f64(),
                    trip.as_str(),
                    msg.failure,
                    self.window.failures(),
                    self.window.calls()
                ),
            );
        }
        self.window.clear();
    }
}

impl Handler<Watch> for DeploymentWorker {
    type Result = ();

    fn handle(&mut self, Watch(deployment): Watch, ctx: &mut Self::Context) {
        self.deployment = deployment;
        // The first background check at once: `GET /health` has a result before the first interval ends.
        self.health_check(ctx);
    }
}

impl Handler<Retire> for DeploymentWorker {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        self.health_checks = None;
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::UpstreamFailure;

    fn circuit(allowed_fails: u32) -> Circuit {
        Circuit {
            allowed_fails,
            allowed_fails_policy: crate::llm::PerClass::default(),
            failure_threshold: 0.5,
            failure_threshold_minimum_requests: 5,
            cooldown_time: Duration::from_secs(5),
            disabled: false,
        }
    }

    fn worker(id: &str, stats: &Arc<DeploymentStats>, allowed_fails: u32) -> DeploymentWorker {
        DeploymentWorker::new(id.into(), stats.clone(), circuit(allowed_fails))
    }

    #[actix_rt::test]
    async fn cools_down_after_more_than_allowed_fails() {
        let stats = Arc::new(DeploymentStats::default());
        // Many calls this minute: the failure rate stays low, allowed_fails decides.
        stats.requests.store(1000, Relaxed);
        let addr = DeploymentWorker::new("d".into(), stats.clone(), circuit(2)).start();
        stats.requests.store(2000, Relaxed);
        let report = ReportFailure::of;
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
            .send(ReportFailure {
                retry_after: Some(Duration::from_secs(30)),
                ..ReportFailure::of(UpstreamFailure::Status(429))
            })
            .await;
        assert!(stats.is_cooling_down(monotonic_ms()));
        let left = stats.cooldown_left_secs(monotonic_ms());
        assert!((29..=30).contains(&left), "retry-after outlasts cooldown_time: {left}");
    }

    #[actix_rt::test]
    async fn a_rate_limit_cools_down_at_once_for_as_long_as_asked() {
        let stats = Arc::new(DeploymentStats::default());
        let addr = worker("d", &stats, 3).start();
        let limited = |retry_after| ReportFailure { retry_after, ..ReportFailure::of(UpstreamFailure::Status(429)) };
        let _ = addr.send(limited(Some(Duration::from_secs(2)))).await;
        assert!(stats.is_cooling_down(monotonic_ms()), "the first 429, allowed_fails notwithstanding");
        assert_eq!(stats.cooldown_left_secs(monotonic_ms()), 2, "the upstream's retry-after, even below cooldown_time");
        let stats = Arc::new(DeploymentStats::default());
        let addr = worker("e", &stats, 3).start();
        let _ = addr.send(limited(None)).await;
        assert_eq!(stats.cooldown_left_secs(monotonic_ms()), 5, "cooldown_time when the upstream did not say");
        let stats = Arc::new(DeploymentStats::default());
        let addr = worker("f", &stats, 3).alone(true).start();
        let _ = addr.send(limited(Some(Duration::from_secs(2)))).await;
        assert!(!stats.is_cooling_down(monotonic_ms()), "a group's only deployment stays: the caller gets the 429");
    }

    #[actix_rt::test]
    async fn a_failure_rate_or_a_failed_health_check_cools_down() {
        let stats = Arc::new(DeploymentStats::default());
        let addr = worker("d", &stats, 100).start();
        // Five calls this minute (the worker reads the counter, no message per success).
        stats.requests.store(5, Relaxed);
        for _ in 0..2 {
            let _ = addr.send(ReportFailure::of(UpstreamFailure::Status(500))).await;
        }
        assert!(!stats.is_cooling_down(monotonic_ms()), "2 of 5 is not over half");
        let _ = addr.send(ReportFailure::of(UpstreamFailure::Status(500))).await;
        assert!(stats.is_cooling_down(monotonic_ms()), "3 of 5 is, allowed_fails notwithstanding");

        let stats = Arc::new(DeploymentStats::default());
        let addr = worker("h", &stats, 100).start();
        stats.requests.store(100, Relaxed);
        let check = ReportFailure { health_check: true, ..ReportFailure::of(UpstreamFailure::Unreachable) };
        let _ = addr.send(check).await;
        assert!(stats.is_cooling_down(monotonic_ms()), "a failed health check takes it out at once");
        assert_eq!(stats.probe.load(Relaxed), PROBE_DUE, "and a probe call follows the cooldown");
    }
}
