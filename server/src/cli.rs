//! Command line: `tollgate --config FILE`, quick mode `tollgate --model provider/model`, and
//! `tollgate check-config FILE`. This module only describes and renders; `main.rs` acts on it.

use std::{fmt::Write, path::PathBuf};

use clap::{Parser, Subcommand};

use crate::{
    config::{Config, ConfigError, RoutingStrategy},
    routing::RoutingTable,
    upstream::Upstream,
};

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Self-hosted AI gateway: one OpenAI-compatible endpoint in front of 100+ LLM providers",
    long_about = "Self-hosted AI gateway: one OpenAI-compatible endpoint in front of 100+ LLM providers.\n\n\
        Reads LiteLLM's config.yaml format. Examples:\n  \
        tollgate --config assets/examples/quickstart.yaml\n  \
        tollgate --model openai/gpt-4o-mini          (key from OPENAI_API_KEY)\n  \
        tollgate check-config config.yaml",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// LiteLLM-compatible config file (model_list, general_settings, router_settings, ...).
    #[arg(long, short = 'c', env = "TOLLGATE_CONFIG", value_name = "FILE", conflicts_with = "model")]
    pub config: Option<PathBuf>,

    /// Quick mode: serve one model, `provider/model`, with the provider's key from its usual environment variable.
    #[arg(long, short = 'm', value_name = "PROVIDER/MODEL")]
    pub model: Option<String>,

    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0", env = "TOLLGATE_HOST")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, short = 'p', default_value_t = 4000, env = "TOLLGATE_PORT")]
    pub port: u16,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "TOLLGATE_WORKERS")]
    pub workers: Option<usize>,

    /// Serve even with the publicly known example master key `sk-1234` on an address other hosts can reach
    /// (on loopback it is allowed, with a warning).
    #[arg(long)]
    pub allow_example_master_key: bool,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "TOLLGATE_JSON_LOGS")]
    pub json_logs: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file and print the resolved model groups (secrets masked); exits non-zero on error.
    CheckConfig {
        /// The config file to check.
        file: PathBuf,
    },
    /// Create or upgrade the store's schema (the gateway also does this at start-up), then exit.
    Migrate {
        /// The config file naming the database (`general_settings.database_url`, `database:`); without one,
        /// `DATABASE_URL`, else the embedded default `sqlite://tollgate.db?mode=rwc`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// `tollgate migrate`: applies pending migrations to the configured store; returns what it did, for printing.
pub async fn migrate(config: &Config) -> Result<String, crate::store::StoreError> {
    let url = config.store.database_url.expose();
    let (backend, applied) = crate::store::Store::migrate_url(url).await?;
    Ok(format!(
        "{backend} store at {}: {applied} migration(s) applied, schema up to date\n",
        crate::store::masked_url(url)
    ))
}

/// The report `check-config` prints: every model group with its deployments, then warnings.
pub fn check_config_report(config: &Config) -> Result<String, ConfigError> {
    let catalog = crate::pricing::configured(config.price_catalog.as_deref())?;
    let table = RoutingTable::build(config, &config.env, &catalog, |_, _, _| None)?;
    let upstream = Upstream::from_config(&config.upstream)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "config OK: {} model group(s), {} deployment(s)",
        table.model_names().len(),
        config.deployments.len()
    );
    for name in table.model_names() {
        match table.hedge_after(name) {
            Some(after) => {
                let _ = writeln!(out, "\nmodel group `{name}` (hedged after {} ms)", after.as_millis());
            }
            None => {
                let _ = writeln!(out, "\nmodel group `{name}`");
            }
        }
        let Some(group) = table.group(name) else { continue };
        for (d, weight) in group.deployments.iter().zip(&group.weights) {
            let key = config
                .deployments
                .iter()
                .find(|c| c.id == d.id)
                .and_then(|c| c.api_key.as_ref())
                .map_or_else(|| "(from environment or none)".to_owned(), |k| k.masked());
            let _ = writeln!(
                out,
                "  - {id}: {provider}/{model} at {endpoint}, key {key}, timeout {timeout}s, stream_timeout \
                 {first}s, stream_idle_timeout {idle}s, weight {weight}",
                id = d.id,
                provider = d.provider.name(),
                model = d.upstream_model,
                endpoint = d.provider.endpoint(),
                timeout = d.timeout.as_secs_f64(),
                first = d.stream_timeout.as_secs_f64(),
                idle = d.stream_idle_timeout.as_secs_f64(),
            );
        }
    }
    out.push_str(&routing_plan(config, &table));
    let _ = writeln!(
        out,
        "\nmaster key: {}",
        config.master_key.as_ref().map_or_else(|| "none (open access)".to_owned(), |k| k.masked())
    );
    for line in upstream.describe() {
        let _ = writeln!(out, "{line}");
    }
    for w in config.warnings.iter().chain(&table.cleartext_key_warnings()) {
        let _ = writeln!(out, "warning: {w}");
    }
    Ok(out)
}

/// How each group is routed (strategy, deployments with what the rules read, retries, fallbacks), then what each
/// of the seed's keys was mapped to.
fn routing_plan(config: &Config, table: &RoutingTable) -> String {
    let strategy = match table.strategy {
        RoutingStrategy::SimpleShuffle => "simple-shuffle".to_owned(),
        RoutingStrategy::LeastBusy => "least-busy".to_owned(),
        RoutingStrategy::LatencyBased { buffer } => format!("latency-based-routing (buffer {buffer})"),
        RoutingStrategy::UsageBased => "usage-based-routing".to_owned(),
        RoutingStrategy::CostBased => "cost-based-routing".to_owned(),
        RoutingStrategy::WeightedRoundRobin => "weighted round robin".to_owned(),
    };
    let mut out = String::new();
    let checks = if table.rules.pre_call_checks { "on" } else { "off" };
    let _ = writeln!(out, "\nrouting plan: strategy {strategy}; context-window checks {checks}");
    let retries = &table.retries;
    for name in table.model_names() {
        let Some(group) = table.group(name) else { continue };
        let shared = group.deployments.iter().any(|d| d.model_group != *name);
        let _ = writeln!(
            out,
            "  group `{name}`{}",
            if shared { " (a model several names serve, split by router.weights)" } else { "" }
        );
        for ((d, t), weight) in group.deployments.iter().zip(&group.traits).zip(&group.weights) {
            let mut caps = Vec::new();
            for (has, cap) in
                [(t.caps.vision, "vision"), (t.caps.tools, "function-calling"), (t.caps.long_context, "long-context")]
            {
                if has {
                    caps.push(cap);
                }
            }
            let _ = writeln!(
                out,
                "    - {id}: weight {weight}, order {order}, window {window}, capabilities [{caps}], cost {cost}",
                id = d.id,
                order = d.order.map_or_else(|| "-".to_owned(), |o| o.to_string()),
                window = t.window.map_or_else(|| "unknown".to_owned(), |w| format!("{w} tokens")),
                caps = caps.join(", "),
                cost = t.cost_per_1k.map_or_else(|| "unknown".to_owned(), |c| format!("${c} per 1K tokens")),
            );
        }
        let retry = match group.retry {
            Some(r) => format!("{} retries {}s apart (fallback_config)", r.retries, r.delay.as_secs_f64()),
            None => format!("{} retries with backoff (num_retries)", retries.num_retries),
        };
        let chain = retries.fallbacks.get(name).unwrap_or(&retries.default_fallbacks);
        let chain = if chain.is_empty() { "none".to_owned() } else { chain.join(" → ") };
        let _ = writeln!(out, "    retries: {retry}; then fallbacks: {chain}");
    }
    if !config.router.rules.mappings.is_empty() {
        let _ = writeln!(out, "\nseed keys:");
        for line in &config.router.rules.mappings {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn report_masks_secrets() {
        let yaml = "model_list:\n  - model_name: gpt\n    litellm_params: {model: openai/gpt-4o-mini, api_key: sk-abcdefghijklmnop1234}\n  - model_name: gpt\n    litellm_params: {model: mock/gpt}\ngeneral_settings: {master_key: sk-master-key-0000000000}\n";
        let config = Config::load_str(yaml, &|_: &str| None).unwrap_or_else(|e| unreachable!("{e}"));
        let report = check_config_report(&config).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(report.contains("model group `gpt`"), "{report}");
        assert!(report.contains("gpt#0: openai/gpt-4o-mini at https://api.openai.com/v1, key ****1234"), "{report}");
        assert!(report.contains("gpt#1: mock/gpt"), "{report}");
        assert!(!report.contains("abcdefghijklmnop"), "{report}");
        assert!(!report.contains("sk-master"), "{report}");
        assert!(report.contains("upstream TLS: built-in Mozilla roots"), "{report}");
        assert!(report.contains("HTTPS proxy: none"), "{report}");
        assert!(!report.contains("plain http://"), "https upstreams and mocks send no key in cleartext: {report}");
    }

    #[test]
    fn the_routing_example_prints_its_plan_and_each_seed_key() {
        let yaml = include_str!("../../assets/examples/routing.yaml");
        let config = Config::load_str(yaml, &|_: &str| None).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let report = check_config_report(&config).unwrap_or_else(|e| unreachable!("{e}"));
        for want in [
            "routing plan: strategy weighted round robin; context-window checks on",
            "  group `gpt-4-us`\n    - gpt-4-us#0: weight 1, order -, window 8192 tokens, capabilities [function-calling], cost $0.03 per 1K tokens\n    retries: 3 retries 1s apart (fallback_config); then fallbacks: gpt-4-eu → claude-long\n",
            "    - claude-long#2: weight 1, order -, window 200000 tokens, capabilities [vision, long-context], cost $0.015 per 1K tokens",
            "  group `gpt-4` (a model several names serve, split by router.weights)\n    - gpt-4-us#0: weight 600000",
            "    - gpt-4-eu#1: weight 400000",
            "  router.type: weighted_round_robin → weighted round robin",
            "  router.routing_strategy: cost_optimized →",
            "  router.cost_threshold: 0.02 →",
            "  router.context_threshold: 8000 →",
            "  router.weights: gpt-4-eu 0.4, gpt-4-us 0.6 →",
            "  fallback_config[0]: gpt-4-us → 3 retries 1s apart",
        ] {
            assert!(report.contains(want), "{want}\n---\n{report}");
        }
    }
}
