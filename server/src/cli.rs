//! Command line: `tollgate --config FILE`, quick mode `tollgate --model provider/model`, and
//! `tollgate check-config FILE`. This module only describes and renders; `main.rs` acts on it.

use std::{fmt::Write, path::PathBuf};

use clap::{Parser, Subcommand};

use crate::{
    config::{Config, ConfigError},
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
        for d in table.group(name).map(|g| g.deployments.as_slice()).unwrap_or_default() {
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
                weight = d.weight,
            );
        }
    }
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
}
