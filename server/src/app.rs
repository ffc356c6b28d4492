//! Assembles and runs the gateway: actors, shared state, the actix-web server with one awc client per worker,
//! and the process lifecycle (SIGTERM drain, SIGHUP reload).

use std::{
    net::TcpListener,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actix::Addr;
use actix_web::{dev::ServerHandle, web, App, HttpServer};

use actix::Actor;

use crate::{
    access::{cache::KeyCache, declared, end_users::EndUserCache},
    actors::{
        log_retention::LogRetention,
        log_writer::{Flush, LogWriter},
        router::Router,
    },
    alerts::Alerts,
    config::{AlertType, CallbackConfig, CallbackSink, Config, UpstreamConfig},
    error::InitError,
    http::{self, AppState},
    lifecycle::Lifecycle,
    limits::Limiter,
    logs::{
        callback::{CallbackStats, Consumer},
        file::RequestFile,
        journal::Journal,
        LogSink,
    },
    shared_state,
    store::{self, Store},
    upstream::Upstream,
};

/// How long shutdown waits for the request log's last batch.
const LOG_FLUSH_DEADLINE: Duration = Duration::from_secs(15);

pub struct ServeOptions {
    /// Worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// The file to re-read on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Serve with the publicly known example master key (`sk-1234`) on a non-loopback address
    /// (`--allow-example-master-key`).
    pub allow_example_master_key: bool,
}

/// The master key of LiteLLM's docs and the seed article: anyone can guess it.
pub const EXAMPLE_MASTER_KEY: &str = "sk-1234";

/// Refuses the example master key on an address other hosts can reach, unless allowed; warns loudly on loopback.
fn check_example_master_key(config: &Config, listener: &TcpListener, allow: bool) -> Result<(), InitError> {
    if !config.master_key.as_ref().is_some_and(|k| k.matches(EXAMPLE_MASTER_KEY)) {
        return Ok(());
    }
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    if !loopback && !allow {
        return Err(InitError::ExampleMasterKey);
    }
    tracing::warn!(
        loopback,
        "general_settings.master_key is the publicly known example `sk-1234`: anyone who can reach this address can \
         manage keys and call every model; set a secret master key before exposing tollgate"
    );
    Ok(())
}

/// A started gateway: await `server` to run it; `handle` stops it.
pub struct Gateway {
    pub server: actix_web::dev::Server,
    pub handle: ServerHandle,
    pub router: Addr<Router>,
    pub lifecycle: Arc<Lifecycle>,
    pub grace: Duration,
    /// The upstream settings in force; a reload that changes them says they need a restart.
    pub upstream: UpstreamConfig,
    /// The file reloads re-read and the config the process started with.
    pub reload_source: Option<Arc<(PathBuf, Config)>>,
    /// Writes the request log; flushed before the process exits.
    pub log_writer: Addr<LogWriter>,
}

/// awc's rustls needs a process-wide crypto provider before any client exists; installing twice is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Opens the store (migrating it), starts actors and the HTTP server on `listener`. Must be called inside an actix
/// system.
pub async fn start(config: Config, listener: TcpListener, options: &ServeOptions) -> Result<Gateway, InitError> {
    for warning in &config.warnings {
        tracing::warn!("config: {warning}");
    }
    if config.master_key.is_none() {
        tracing::warn!("no general_settings.master_key configured: tollgate is serving without authentication");
    }
    check_example_master_key(&config, &listener, options.allow_example_master_key)?;
    install_crypto_provider();
    // Built once (CA bundle read, proxy parsed) so a bad setting stops start-up instead of failing requests.
    let upstream = Upstream::from_config(&config.upstream)?;
    for line in upstream.describe() {
        tracing::info!("{line}");
    }
    let alerts = config.alerting.as_ref().map(|alerting| {
        let names: Vec<&str> = alerting.webhooks.keys().map(|t| t.name()).collect();
        tracing::info!(alert_types = ?names, "alerts go to Slack webhooks (general_settings.alerting)");
        Alerts::start(alerting, upstream.clone())
    });
    let (router, table) = Router::start(&config, &upstream, alerts.clone())?;
    let url = config.store.database_url.expose();
    let store = Store::open(url).await?;
    tracing::info!(backend = store.backend(), database = %store::masked_url(url), "store open, schema up to date");
    declared::store_all(&store, &config.declared_keys, crate::clock::unix_secs()).await?;
    let end_users = EndUserCache::new(store.clone(), config.store.key_cache_ttl);
    let keys = KeyCache::new(store.clone(), config.store.key_cache_ttl);
    let (limiter, budgets) = match &config.redis {
        Some(redis) => shared_state::start(redis, &keys, &end_users).await?,
        None => (Limiter::in_process(), crate::budgets::Ledger::in_process()),
    };
    if let Some(alerts) = alerts {
        budgets.on_soft_budget(Box::new(move |text| alerts.raise(AlertType::Budget, text)));
    }
    let journal = Journal::open(&config.store.log_journal)
        .map_err(|source| InitError::Journal { path: config.store.log_journal.display().to_string(), source })?;
    let journal = Arc::new(journal);
    let mut logs = LogSink::new(journal.clone());
    let callbacks = &config.logging.callbacks;
    if config.store.disable_spend_logs {
        tracing::warn!("general_settings.disable_spend_logs: requests are not recorded in the store's request log (spend still is)");
        // The callbacks still read every record from the journal.
        if callbacks.is_empty() {
            logs = logs.without_store();
        }
    }
    if let Some(file) = &config.logging.file {
        let opened = RequestFile::open(&file.path, file.completion_tokens)
            .map_err(|source| InitError::Journal { path: file.path.display().to_string(), source })?;
        tracing::info!(path = %file.path.display(), "writing one JSON line per request (litellm_settings.log_to_file)");
        logs = logs.with_file(opened);
    }
    let (consumers, stats) = open_callbacks(callbacks, &journal);
    logs = logs.with_callbacks(stats);
    let rows = !config.store.disable_spend_logs;
    if let Some(period) = config.store.log_retention {
        tracing::info!(
            period_secs = period.as_secs(),
            interval_secs = config.store.log_retention_interval.as_secs(),
            "request log retention on (maximum_spend_logs_retention_period)"
        );
        LogRetention::new(store.clone(), period, config.store.log_retention_interval).start();
    }
    let log_writer =
        LogWriter::new(store, journal, logs.stats().clone(), rows).with_callbacks(consumers, upstream.clone()).start();
    let lifecycle = Arc::new(Lifecycle::default());
    let reload_source = options.config_path.clone().map(|path| Arc::new((path, config.clone())));
    let state = web::Data::new(AppState {
        table,
        router: router.clone(),
        reload_source: reload_source.clone(),
        master_key: config.master_key.clone(),
        keys,
        logs,
        end_users,
        limiter,
        budgets,
        budget_default_max_tokens: config.store.budget_default_max_tokens,
        export_spans: config.logging.callbacks.iter().any(|c| matches!(c.sink, CallbackSink::Otlp(_))),
        max_request_bytes: config.max_request_bytes,
        request_body_timeout: config.request_body_timeout,
        lifecycle: lifecycle.clone(),
        started_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
    });
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut server = HttpServer::new(move || {
        let client = upstream.client();
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(client))
            .wrap(http::request_id::RequestIds)
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .disable_signals()
    // Why: without TCP_NODELAY, a small write that follows another unacknowledged one (the next SSE event on a
    // keep-alive connection) waits for the peer's delayed ACK, about 40 ms on Linux (Nagle's algorithm).
    .tcp_nodelay(true)
    // Why: actix-http's default keeps a half-closed connection's request running; a caller that gives up while
    // tollgate waits for upstream headers would then hold the upstream call (and an in-flight slot) until the
    // timeout. Treating the caller's FIN as a disconnect drops the handler, which drops the upstream request.
    .h1_allow_half_closed(false)
    .shutdown_timeout(config.shutdown_grace.as_secs().max(1));
    if let Some(n) = options.workers {
        server = server.workers(n);
    }
    let server = server.listen(listener).map_err(|source| InitError::Bind { addr: addr.clone(), source })?.run();
    tracing::info!(%addr, deployments = config.deployments.len(), "tollgate listening");
    Ok(Gateway {
        handle: server.handle(),
        server,
        router,
        lifecycle,
        grace: config.shutdown_grace,
        upstream: config.upstream,
        reload_source,
        log_writer,
    })
}

/// The callbacks' consumers (each at its stored cursor) and their counters.
fn open_callbacks(callbacks: &[CallbackConfig], journal: &Journal) -> (Vec<Consumer>, Vec<Arc<CallbackStats>>) {
    if callbacks.is_empty() {
        return (Vec::new(), Vec::new());
    }
    // Records per segment already in the journal: the callbacks' lag at start.
    let counts: Vec<(u64, u64)> =
        journal.segments().unwrap_or_default().iter().map(|s| (s.number, journal.count(s).unwrap_or(0))).collect();
    let mut consumers = Vec::with_capacity(callbacks.len());
    let mut stats = Vec::with_capacity(callbacks.len());
    for callback in callbacks {
        let kind = match &callback.sink {
            CallbackSink::Webhook { .. } => "webhook",
            CallbackSink::JsonlFile { .. } => "jsonl_file",
            CallbackSink::Otlp(_) => "otel",
        };
        tracing::info!(
            callback = %callback.name,
            kind,
            success = callback.success,
            failure = callback.failure,
            batch_size = callback.batch_size,
            "request log callback"
        );
        let counters = Arc::new(CallbackStats::new(&callback.name));
        consumers.push(Consumer::open(callback.clone(), counters.clone(), journal, &counts));
        stats.push(counters);
    }
    (consumers, stats)
}

/// Runs until SIGTERM/SIGINT, then drains: readiness turns 503, in-flight requests and streams finish (up to
/// the grace period), and the server stops. SIGHUP re-reads the config file and swaps the routing table.
pub async fn run(config: Config, listener: TcpListener, options: ServeOptions) -> Result<(), InitError> {
    let gateway = start(config, listener, &options).await?;
    actix_rt::spawn(handle_signals(
        gateway.handle.clone(),
        gateway.lifecycle.clone(),
        gateway.router.clone(),
        gateway.grace,
        gateway.reload_source.clone(),
        gateway.log_writer.clone(),
    ));
    gateway.server.await?;
    tracing::info!("tollgate stopped");
    Ok(())
}

async fn handle_signals(
    handle: ServerHandle,
    lifecycle: Arc<Lifecycle>,
    router: Addr<Router>,
    grace: Duration,
    // The file to re-read on SIGHUP and the config the process started with (for settings a reload cannot change).
    source: Option<Arc<(PathBuf, Config)>>,
    log_writer: Addr<LogWriter>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers; stop tollgate with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload_on_signal(&router, source.as_deref()).await,
        }
    }
    lifecycle.start_draining();
    tracing::info!(in_flight = lifecycle.in_flight(), grace_secs = grace.as_secs_f64(), "draining before shutdown");
    // A second SIGTERM/SIGINT cuts the drain short, as operators expect from a second Ctrl-C.
    let drained = tokio::select! {
        idle = actix_rt::time::timeout(grace, lifecycle.wait_idle()) => idle.is_ok(),
        _ = term.recv() => false,
        _ = int.recv() => false,
    };
    // The answered requests' records go to the store (or the journal) before the process exits.
    if actix_rt::time::timeout(LOG_FLUSH_DEADLINE, log_writer.send(Flush)).await.is_err() {
        tracing::error!(
            "the request log could not be flushed in time; unwritten records stay in its journal or are lost"
        );
    }
    if drained {
        handle.stop(true).await;
    } else {
        tracing::warn!(in_flight = lifecycle.in_flight(), "stopping with requests in flight");
        handle.stop(false).await;
    }
}

async fn reload_on_signal(router: &Addr<Router>, source: Option<&(PathBuf, Config)>) {
    match crate::actors::router::reload_from_file(router, source).await {
        Ok(done) => {
            for warning in done.warnings {
                tracing::warn!("config reload: {warning}");
            }
        }
        Err(e) => tracing::error!(error = %e, "config reload failed; keeping the current routing table"),
    }
}
