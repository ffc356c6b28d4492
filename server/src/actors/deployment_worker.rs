//! DeploymentWorker: one per deployment, supervised (restarted if it panics). Owns the deployment's health
//! state machine: it counts failures per minute and puts the deployment in cooldown after more than
//! `allowed_fails`, publishing the cooldown into the deployment's lock-free stats for the request path to read.
//!
//! The request path tells it about failures with `try_send` on a bounded mailbox and never waits for it; a
//! success needs no message at all, so the common case costs nothing here.
//!
//! For providers whose credential is an access token (Vertex AI's service account), the worker also fetches the
//! token at start and refreshes it before it expires; the provider publishes it to the request path through an
//! atomic pointer, so requests never wait for the worker.

use std::{
    sync::{
        atomic::Ordering::{Relaxed, Release},
        Arc,
    },
    time::{Duration, Instant},
};

use actix::{fut::wrap_future, Actor, ActorContext, AsyncContext, Context, Handler, Message, Supervised};
use awc::http::header;

use crate::{
    clock::monotonic_ms,
    llm::UpstreamFailure,
    providers::codec::{Dialect, TokenRequest},
    routing::stats::{DeploymentStats, ReportFailure, PROBE_DUE},
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
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The deployment left the routing table (config reload): stop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Retire;

pub struct DeploymentWorker {
    id: String,
    stats: Arc<DeploymentStats>,
    /// The provider and the way to reach its token endpoint, for deployments with tokens to refresh.
    credentials: Option<(Arc<dyn Dialect>, Upstream)>,
    /// The only deployment of its group: a rate limit does not take it out (there is nowhere else to go; the
    /// caller gets the 429 and its `retry-after` instead of a 503), as in LiteLLM.
    alone: bool,
    allowed_fails: u32,
    cooldown: Duration,
    failures_in_window: u32,
    window_started: Instant,
}

impl DeploymentWorker {
    pub fn new(id: String, stats: Arc<DeploymentStats>, allowed_fails: u32, cooldown: Duration) -> Self {
        Self {
            id,
            stats,
            credentials: None,
            alone: false,
            allowed_fails,
            cooldown,
            failures_in_window: 0,
            window_started: Instant::now(),
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
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Fetches the provider's token, installs it, and sleeps until the provider says to refresh; failures retry with
/// backoff. Runs as long as the worker does (a retired worker's loop is dropped with it).
async fn refresh_tokens(id: String, dialect: Arc<dyn Dialect>, upstream: Upstream) {
    let client = upstream.client();
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
        // A rate limit takes the deployment out at once, for as long as the upstream asked (`cooldown_time` when it
        // did not say): more calls now would only be refused too, and the group has others to serve them.
        let rate_limited = msg.failure == UpstreamFailure::Status(429) && !self.alone;
        // A failed probe (the call after a cooldown) reopens the circuit at once.
        let probe_failed = self.stats.probe.load(Relaxed) != 0;
        if !rate_limited && !probe_failed {
            // The window restarts lazily on the first failure after it expired: no timer needed.
            if self.window_started.elapsed() >= FAILURE_WINDOW {
                self.window_started = Instant::now();
                self.failures_in_window = 0;
            }
            self.failures_in_window += 1;
            if self.failures_in_window <= self.allowed_fails {
                return;
            }
        }
        let cooldown = match (rate_limited, msg.retry_after) {
            (true, Some(asked)) => asked,
            (_, asked) => asked.map_or(self.cooldown, |r| r.max(self.cooldown)),
        };
        let until = monotonic_ms() + cooldown.as_millis() as u64;
        self.stats.cooldown_until_ms.fetch_max(until, Relaxed);
        // After the cooldown, one call probes before traffic returns.
        self.stats.probe.store(PROBE_DUE, Release);
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

    #[actix_rt::test]
    async fn a_rate_limit_cools_down_at_once_for_as_long_as_asked() {
        let stats = Arc::new(DeploymentStats::default());
        let addr = DeploymentWorker::new("d".into(), stats.clone(), 3, Duration::from_secs(5)).start();
        let limited = |retry_after| ReportFailure { failure: UpstreamFailure::Status(429), retry_after };
        let _ = addr.send(limited(Some(Duration::from_secs(2)))).await;
        assert!(stats.is_cooling_down(monotonic_ms()), "the first 429, allowed_fails notwithstanding");
        assert_eq!(stats.cooldown_left_secs(monotonic_ms()), 2, "the upstream's retry-after, even below cooldown_time");
        let stats = Arc::new(DeploymentStats::default());
        let addr = DeploymentWorker::new("e".into(), stats.clone(), 3, Duration::from_secs(5)).start();
        let _ = addr.send(limited(None)).await;
        assert_eq!(stats.cooldown_left_secs(monotonic_ms()), 5, "cooldown_time when the upstream did not say");
        let stats = Arc::new(DeploymentStats::default());
        let addr = DeploymentWorker::new("f".into(), stats.clone(), 3, Duration::from_secs(5)).alone(true).start();
        let _ = addr.send(limited(Some(Duration::from_secs(2)))).await;
        assert!(!stats.is_cooling_down(monotonic_ms()), "a group's only deployment stays: the caller gets the 429");
    }
}
