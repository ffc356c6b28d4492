//! Router: owns the routing table. It builds the immutable [`RoutingTable`] from the config, starts one
//! supervised [`DeploymentWorker`] per deployment, and publishes the table through `ArcSwap`; on reload it
//! builds the next table, swaps it in atomically (in-flight requests keep the snapshot they started with) and
//! retires the previous workers. The request path never messages the router.

use std::{path::PathBuf, sync::Arc};

use actix::{Actor, Addr, Context, Handler, Message, Supervisor};
use arc_swap::ArcSwap;

use super::deployment_worker::{BackgroundChecks, DeploymentWorker, Retire, Watch};
use crate::{
    alerts::Alerts,
    config::{Config, ConfigError},
    pricing,
    routing::{circuit::Circuit, RoutingTable},
    upstream::Upstream,
};

/// Replace the routing table with one built from this config.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, ConfigError>")]
pub struct Reload(pub Config);

pub struct Router {
    table: Arc<ArcSwap<RoutingTable>>,
    workers: Vec<Addr<DeploymentWorker>>,
    /// How workers reach token endpoints (the same TLS trust and proxy as upstream calls).
    upstream: Upstream,
    /// Where workers announce cooldowns (`general_settings.alerting`, fixed at start-up).
    alerts: Option<Alerts>,
}

impl Router {
    /// Builds the first table and starts the workers. Must run inside an actix system.
    pub fn start(
        config: &Config,
        upstream: &Upstream,
        alerts: Option<Alerts>,
    ) -> Result<(Addr<Self>, Arc<ArcSwap<RoutingTable>>), ConfigError> {
        let (table, workers) = build(config, upstream, alerts.as_ref(), None)?;
        let table = Arc::new(ArcSwap::from_pointee(table));
        let addr = Self { table: table.clone(), workers, upstream: upstream.clone(), alerts }.start();
        Ok((addr, table))
    }
}

fn build(
    config: &Config,
    upstream: &Upstream,
    alerts: Option<&Alerts>,
    previous: Option<&RoutingTable>,
) -> Result<(RoutingTable, Vec<Addr<DeploymentWorker>>), ConfigError> {
    let mut workers = Vec::new();
    // Which deployment each worker serves, by id (told once the table exists).
    let mut serves: Vec<String> = Vec::new();
    let env = config.env.clone();
    let circuit = Circuit::from(&config.router);
    let health_checks = config
        .health_checks
        .background_interval
        .map(|interval| BackgroundChecks { upstream: upstream.clone(), interval });
    let catalog = pricing::configured(config.price_catalog.as_deref())?;
    let group_of = |id: &str| config.deployments.iter().find(|d| d.id == id).map(|d| d.model_name.as_str());
    let alone =
        |id: &str| config.deployments.iter().filter(|d| Some(d.model_name.as_str()) == group_of(id)).count() == 1;
    let table = RoutingTable::rebuild(config, &env, &catalog, previous, |id, stats, provider| {
        let alone = alone(id);
        let id_for_watch = id.to_owned();
        let (id, stats) = (id.to_owned(), stats.clone());
        let credentials = provider.needs_worker().map(|dialect| (dialect, upstream.clone()));
        let (circuit, health_checks, alerts) = (circuit.clone(), health_checks.clone(), alerts.cloned());
        let addr = Supervisor::start(move |_| {
            DeploymentWorker::new(id, stats, circuit)
                .with_credentials(credentials)
                .alone(alone)
                .with_health_checks(health_checks)
                .with_alerts(alerts)
        });
        let recipient = addr.clone().recipient();
        workers.push(addr);
        serves.push(id_for_watch);
        Some(recipient)
    });
    match table {
        Ok(t) => {
            // Workers start before the table exists; each learns its deployment now.
            for (worker, id) in workers.iter().zip(&serves) {
                if let Some(d) = t.deployments().find(|d| &d.id == id) {
                    worker.do_send(Watch(Arc::downgrade(d)));
                }
            }
            // At start and on each reload: the operator sees them whenever the deployments are (re)read.
            warn_unpriced(&t);
            for warning in t.cleartext_key_warnings() {
                tracing::warn!("{warning}");
            }
            Ok((t, workers))
        }
        Err(e) => {
            workers.iter().for_each(|w| w.do_send(Retire));
            Err(e)
        }
    }
}

/// Once per model and table: calls of these deployments count tokens but no spend, and say so.
fn warn_unpriced(table: &RoutingTable) {
    let mut warned = std::collections::HashSet::new();
    for d in table.unpriced() {
        if warned.insert((d.provider.name(), d.upstream_model.as_str())) {
            tracing::warn!(
                model = %d.upstream_model,
                provider = d.provider.name(),
                deployment = %d.id,
                "no price known for this model: its calls are counted as unpriced, not as $0; set \
                 input_cost_per_token and output_cost_per_token, or base_model, in litellm_params"
            );
        }
    }
}

/// Reloads queued at most; each is a whole config, and they arrive by signal.
const MAILBOX_CAPACITY: usize = 4;

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Handler<Reload> for Router {
    type Result = Result<usize, ConfigError>;

    fn handle(&mut self, Reload(config): Reload, _: &mut Self::Context) -> Self::Result {
        // Unchanged deployments keep their stats and cooldown across the reload.
        let previous = self.table.load_full();
        let (table, workers) = build(&config, &self.upstream, self.alerts.as_ref(), Some(&previous))?;
        let count = workers.len();
        self.table.store(Arc::new(table));
        // Off the hot path and bounded by the number of deployments, so do_send is fine here.
        for old in std::mem::replace(&mut self.workers, workers) {
            old.do_send(Retire);
        }
        tracing::info!(deployments = count, "routing table reloaded");
        Ok(count)
    }
}

/// What a reload did: the deployments now served and the new config's warnings (restart-only keys included).
#[derive(Debug)]
pub struct Reloaded {
    pub deployments: usize,
    pub warnings: Vec<String>,
}

/// Re-reads the config file the process started from and swaps the routing table; on any error the current table
/// keeps serving. Shared by SIGHUP and `POST /config/reload`.
pub async fn reload_from_file(router: &Addr<Router>, source: Option<&(PathBuf, Config)>) -> Result<Reloaded, String> {
    let Some((path, running)) = source else {
        return Err("tollgate was not started from a config file: nothing to reload".into());
    };
    let config = Config::load_file(path).map_err(|e| e.to_string())?;
    let mut warnings = config.warnings.clone();
    for key in running.restart_required(&config) {
        warnings.push(format!("`{key}` changed but takes effect only after a restart; the old value stays"));
    }
    match router.send(Reload(config)).await {
        Ok(Ok(deployments)) => Ok(Reloaded { deployments, warnings }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("router unavailable for reload: {e}")),
    }
}
