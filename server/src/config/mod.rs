//! Loads LiteLLM's `config.yaml` into the runtime [`Config`] in two phases: raw (what the user wrote, see
//! `raw.rs`) and validated (defaults applied, no optional required data).
//!
//! Contract: a bad file is an error naming the key path; an unknown key is a warning naming the key path, never
//! silently dropped; secrets are wrapped in [`Secret`] the moment they are read. This module does no I/O besides
//! reading the file and the environment, and knows nothing of providers or HTTP.

mod alerts;
mod callbacks;
mod declared_keys;
mod environment;
mod interpolate;
mod logging;
mod raw;
mod seed;
mod shared;
mod store;
mod upstream;

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use serde_yaml::Value;

use self::raw::{
    RawAllowedFailsPolicy, RawConfig, RawGeneralSettings, RawLitellmSettings, RawModelEntry, RawRetryPolicy,
    RawRouterSettings, NOT_YET_SUPPORTED,
};
pub use self::{
    alerts::{AlertType, Alerting},
    callbacks::{CallbackConfig, CallbackSink, OtlpConfig, OtlpEncoding},
    declared_keys::DeclaredKey,
    environment::Env,
    interpolate::EnvLookup,
    logging::{LogFile, Logging},
    seed::{DeploymentTraits, GroupRetry, RoutingRules},
    shared::RedisSettings,
    store::{default_journal, StoreSettings, DEFAULT_DATABASE_URL},
    upstream::{TlsTrust, UpstreamConfig},
};
use crate::{
    llm::{ErrorClass, PerClass},
    secret::Secret,
};

const DEFAULT_MAX_REQUEST_MB: f64 = 32.0;
/// LiteLLM's default request timeout.
const DEFAULT_TIMEOUT_SECS: f64 = 600.0;
const DEFAULT_ALLOWED_FAILS: u32 = 3;
const DEFAULT_COOLDOWN_SECS: f64 = 5.0;
/// LiteLLM's `DEFAULT_FAILURE_THRESHOLD_PERCENT` and `DEFAULT_FAILURE_THRESHOLD_MINIMUM_REQUESTS`.
const DEFAULT_FAILURE_THRESHOLD: f64 = 0.5;
const DEFAULT_FAILURE_THRESHOLD_MINIMUM_REQUESTS: u64 = 5;
/// LiteLLM's default `general_settings.health_check_interval`.
const DEFAULT_HEALTH_CHECK_INTERVAL_SECS: f64 = 300.0;
const DEFAULT_GRACE_SECS: f64 = 30.0;
const DEFAULT_REQUEST_BODY_TIMEOUT_SECS: f64 = 60.0;
/// awc's own default connect timeout, kept.
const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 5.0;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("`{path}`: environment variable `{var}` is not set")]
    MissingEnv { path: String, var: String },
    #[error("`{path}`: {message}")]
    Invalid { path: String, message: String },
}

impl ConfigError {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), message: message.into() }
    }
}

/// LiteLLM's `router_settings.routing_strategy` values; `routing::strategy::choose` acts on them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RoutingStrategy {
    /// Weighted random (`simple-shuffle`, the default).
    #[default]
    SimpleShuffle,
    /// Fewest calls in flight (`least-busy`).
    LeastBusy,
    /// Lowest moving average of time to first byte (a stream's first event) (`latency-based-routing`); deployments within
    /// `buffer` (a fraction of the best, LiteLLM's `lowest_latency_buffer`) of the best share the load.
    LatencyBased { buffer: f64 },
    /// Fewest tokens used in the current minute (`usage-based-routing`, also spelled `usage-based-routing-v2`).
    UsageBased,
    /// Cheapest input plus output price per token (`cost-based-routing`).
    CostBased,
    /// Smooth weighted round robin by weight (the seed's `router.type: weighted_round_robin`; no LiteLLM name).
    WeightedRoundRobin,
}

impl RoutingStrategy {
    /// The names `router_settings.routing_strategy` accepts.
    pub const NAMES: &[&str] = &[
        "simple-shuffle",
        "least-busy",
        "latency-based-routing",
        "usage-based-routing",
        "usage-based-routing-v2",
        "cost-based-routing",
    ];

    pub fn from_name(name: &str, latency_buffer: f64) -> Option<Self> {
        Some(match name {
            "simple-shuffle" => Self::SimpleShuffle,
            "least-busy" => Self::LeastBusy,
            "latency-based-routing" => Self::LatencyBased { buffer: latency_buffer },
            "usage-based-routing" | "usage-based-routing-v2" => Self::UsageBased,
            "cost-based-routing" => Self::CostBased,
            _ => return None,
        })
    }
}

/// The validated configuration the gateway runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub deployments: Vec<DeploymentConfig>,
    /// What providers read from the environment (see [`Env`]).
    pub env: Env,
    pub master_key: Option<Secret>,
    pub max_request_bytes: usize,
    pub router: RouterSettings,
    pub shutdown_grace: Duration,
    /// Time a caller has to send the whole request body (`tollgate.request_body_timeout_seconds`).
    pub request_body_timeout: Duration,
    pub price_catalog: Option<String>,
    /// CA trust and HTTPS proxy for upstream connections (file and environment, read at load time).
    pub upstream: UpstreamConfig,
    /// The database of keys, teams, users and spend.
    pub store: StoreSettings,
    /// Process log level and format, and the seed's request log file.
    pub logging: Logging,
    pub health_checks: HealthChecks,
    /// Redis shared by replicas; `None`: limits are in-process only.
    pub redis: Option<RedisSettings>,
    /// The seed's `key_settings`: keys declared in the file.
    pub declared_keys: Vec<DeclaredKey>,
    /// Alerts to Slack webhooks (`general_settings.alerting`); `None`: off.
    pub alerting: Option<Alerting>,
    /// Human-readable warnings gathered while loading (unknown keys, unsupported settings), each naming a path.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// `routing_strategy` (default `simple-shuffle`), with `routing_strategy_args.lowest_latency_buffer`.
    pub strategy: RoutingStrategy,
    /// Deployment id → `litellm_params.order`: deployments of the lowest order serve while any of them is
    /// available. (Kept here, beside the strategy, rather than in `DeploymentConfig`, which provider tests build.)
    pub order: BTreeMap<String, u32>,
    pub allowed_fails: u32,
    /// `allowed_fails_policy`: numbers that replace `allowed_fails` for their error class.
    pub allowed_fails_policy: PerClass,
    /// `failure_threshold_percent` (a fraction) and `failure_threshold_minimum_requests`: the failure-rate rule.
    pub failure_threshold: f64,
    pub failure_threshold_minimum_requests: u64,
    pub cooldown_time: Duration,
    /// `disable_cooldowns`: failures never take a deployment out.
    pub disable_cooldowns: bool,
    /// Retries and fallbacks (`router_settings`, else `litellm_settings`, as LiteLLM reads them).
    pub retries: RetrySettings,
    /// The seed's routing dialect and context-window checks (`config/seed.rs`).
    pub rules: RoutingRules,
    /// Model group → how long its first call may go without a first byte before a hedged call is sent
    /// (`router_settings.hedge_after_ms`, a tollgate extension).
    pub hedge_after: BTreeMap<String, Duration>,
}

/// Deployment health probes (`general_settings.background_health_checks`, `health_check_interval`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthChecks {
    /// Time between two background probes of a deployment; `None` when they are off (then `GET /health`
    /// probes when asked).
    pub background_interval: Option<Duration>,
    /// Ids of the deployments probed with an embedding (`model_info.mode: embedding`) rather than a chat.
    pub embedding: std::collections::BTreeSet<String>,
}

/// How a request recovers from failed calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetrySettings {
    pub num_retries: u32,
    /// `retry_policy`: numbers that replace `num_retries` for their error class.
    pub retry_policy: PerClass,
    /// The least wait before a retry.
    pub retry_after: Duration,
    /// Model group → groups to fall back to, in order.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    pub default_fallbacks: Vec<String>,
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    pub content_policy_fallbacks: BTreeMap<String, Vec<String>>,
    pub max_fallbacks: u32,
}

/// One `model_list` entry: a deployment of a model group.
#[derive(Debug, Clone)]
pub struct DeploymentConfig {
    /// Key path of the entry, for error messages (`model_list[2]`).
    pub path: String,
    /// Stable id: `model_info.id` or `<model_name>#<index>`. Safe to show to callers.
    pub id: String,
    pub model_name: String,
    /// `litellm_params.model` as written, e.g. `groq/llama-3.1-8b-instant`.
    pub model: String,
    pub api_key: Option<Secret>,
    pub api_base: Option<String>,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    /// The whole of a non-streaming call: connect, headers, body (`timeout`).
    pub timeout: Duration,
    /// A streaming call's start to its first event (`stream_timeout`).
    pub stream_timeout: Duration,
    /// The longest pause between a stream's chunks after its first event (`stream_idle_timeout`).
    pub stream_idle_timeout: Duration,
    pub weight: Option<u32>,
    /// Calls and tokens per minute this deployment may take; at the cap it is unavailable until the next minute.
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    /// Catalog key to price by (`model_info.base_model`).
    pub base_model: Option<String>,
    pub mock_response: Option<String>,
    pub mock_latency: Option<Duration>,
    /// Header values may carry credentials, so they are secrets (masked in `Debug`, scrubbed from errors).
    pub extra_headers: BTreeMap<String, Secret>,
    /// `drop_params`: the deployment's own setting, else `litellm_settings.drop_params`, else false.
    pub drop_params: bool,
    pub provider_params: ProviderParams,
}

/// Provider-specific placement and credentials (LiteLLM's `litellm_params` names). Credentials are secrets.
#[derive(Debug, Clone, Default)]
pub struct ProviderParams {
    pub vertex_project: Option<String>,
    pub vertex_location: Option<String>,
    /// Service-account JSON, or the path of a file holding it.
    pub vertex_credentials: Option<Secret>,
    pub aws_access_key_id: Option<Secret>,
    pub aws_secret_access_key: Option<Secret>,
    pub aws_session_token: Option<Secret>,
    pub aws_region_name: Option<String>,
    pub azure_ad_token: Option<Secret>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
}

impl Config {
    /// Reads and validates a config file, interpolating from the process environment.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::load_str(&text, &|name: &str| std::env::var(name).ok())
    }

    /// Like [`Config::load_str`], and providers resolve against `env` too (instead of the process environment).
    pub fn load_str_shared(text: &str, env: Arc<dyn EnvLookup + Send + Sync>) -> Result<Self, ConfigError> {
        let mut config = Self::load_str(text, &*env)?;
        config.env = config.env.over(env);
        Ok(config)
    }

    pub fn load_str(text: &str, env: &dyn EnvLookup) -> Result<Self, ConfigError> {
        let mut tree: Value = serde_yaml::from_str(text)?;
        if tree.is_null() {
            tree = Value::Mapping(Default::default());
        }
        let local_env = config_env(&tree);
        let lookup = |name: &str| local_env.get(name).cloned().or_else(|| env.get(name));
        interpolate::interpolate(&mut tree, &lookup)?;

        let mut ignored = Vec::new();
        let mut on_ignored = |path: serde_ignored::Path<'_>| ignored.push(path.to_string());
        let de = serde_ignored::Deserializer::new(tree, &mut on_ignored);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::invalid(path, e.into_inner().to_string())
        })?;
        let mut config = validate(raw, &lookup)?;
        config.env = config.env.with_local(local_env);
        let mut warnings: Vec<String> = ignored.iter().map(|p| unknown_key_warning(&bracket_indices(p))).collect();
        warnings.append(&mut config.warnings);
        config.warnings = warnings;
        Ok(config)
    }

    /// The config of `tollgate --model provider/model`: one deployment named after the model, open access.
    pub fn quick(model: &str, env: &dyn EnvLookup) -> Result<Self, ConfigError> {
        let name = model.split_once('/').map_or(model, |(_, m)| m);
        let yaml = serde_yaml::to_string(&serde_yaml::Mapping::from_iter([(
            Value::from("model_list"),
            Value::Sequence(vec![Value::Mapping(serde_yaml::Mapping::from_iter([
                (Value::from("model_name"), Value::from(name)),
                (
                    Value::from("litellm_params"),
                    Value::Mapping(serde_yaml::Mapping::from_iter([(Value::from("model"), Value::from(model))])),
                ),
            ]))]),
        )]))?;
        Self::load_str(&yaml, env)
    }
}

/// `environment_variables:` as plain strings (before interpolation, as LiteLLM reads them).
fn config_env(tree: &Value) -> BTreeMap<String, String> {
    let Some(Value::Mapping(map)) = tree.get("environment_variables") else {
        return BTreeMap::new();
    };
    map.iter()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.as_str()?.to_owned(), value))
        })
        .collect()
}

fn unknown_key_warning(path: &str) -> String {
    let generic = generic_path(path);
    if NOT_YET_SUPPORTED.contains(&generic.as_str()) {
        format!("`{path}` is a LiteLLM setting tollgate does not support yet; it is ignored")
    } else {
        format!("`{path}` is not a known config key; it is ignored")
    }
}

/// serde_ignored's `model_list.3.order` -> `model_list[3].order`, the spelling errors use too.
fn bracket_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for segment in path.split('.') {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// `model_list[3].litellm_params.order` -> `model_list[].litellm_params.order`.
fn generic_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

impl Config {
    /// Settings that differ between `self` (running) and `next` but take effect only at start-up: a reload
    /// (SIGHUP) applies `model_list`, `router_settings` and prices, and warns about each of these by key.
    pub fn restart_required(&self, next: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.master_key != next.master_key {
            keys.push("general_settings.master_key");
        }
        if self.max_request_bytes != next.max_request_bytes {
            keys.push("general_settings.max_request_size_mb");
        }
        if self.shutdown_grace != next.shutdown_grace {
            keys.push("tollgate.shutdown_grace_period_seconds");
        }
        if self.request_body_timeout != next.request_body_timeout {
            keys.push("tollgate.request_body_timeout_seconds");
        }
        // Every worker's client was built from these at start-up; applying them would mean rebuilding all clients.
        if self.upstream.connect_timeout != next.upstream.connect_timeout {
            keys.push("router_settings.connect_timeout");
        }
        if !self.upstream.same_connections(&next.upstream) {
            keys.push("upstream TLS / proxy (litellm_settings.ssl_verify, SSL_CERT_FILE, HTTPS_PROXY, NO_PROXY)");
        }
        // The limiter and the invalidation subscriber are built once; declared keys are stored at start-up.
        if self.redis != next.redis {
            keys.push("Redis (router_settings.redis_*, tollgate.redis_key_prefix, tollgate.redis_timeout_ms)");
        }
        if self.declared_keys != next.declared_keys {
            keys.push("key_settings");
        }
        // The retention purge is started once, with these.
        if (self.store.log_retention, self.store.log_retention_interval)
            != (next.store.log_retention, next.store.log_retention_interval)
        {
            keys.push("general_settings.maximum_spend_logs_retention_period / _interval");
        }
        // The process log, the request log file and the callbacks' consumers are set up once.
        if self.logging != next.logging {
            keys.push(
                "litellm_settings logging (log_level, json_logs, log_to_file, success_callback, failure_callback, \
                 callbacks, callback_settings)",
            );
        }
        // The alert task and its webhooks are set up once.
        if self.alerting != next.alerting {
            keys.push("general_settings.alerting / alert_types / alert_to_webhook_url (SLACK_WEBHOOK_URL)");
        }
        keys
    }
}

fn seconds(path: &str, value: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let v = value.unwrap_or(default);
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ConfigError::invalid(path, format!("must be a positive number of seconds, got {v}")))
}

/// LiteLLM's default for `num_retries` (the OpenAI SDK's too).
const DEFAULT_NUM_RETRIES: u32 = 2;
const DEFAULT_MAX_FALLBACKS: u32 = 5;

/// LiteLLM's per-class policy keys as one value per [`ErrorClass`].
fn per_class(values: [Option<u32>; 6]) -> PerClass {
    let mut out = PerClass::default();
    for (class, value) in ErrorClass::ALL.into_iter().zip(values) {
        out.set(class, value);
    }
    out
}

fn allowed_fails_policy(p: &RawAllowedFailsPolicy) -> PerClass {
    per_class([p.bad_request, p.authentication, p.timeout, p.rate_limit, p.content_policy_violation, p.internal_server])
}

/// `retry_policy`, and a warning for each positive count of a class tollgate never retries: the caller's mistakes
/// and refusals would come back the same from any deployment (another key or provider is what fallbacks are for).
fn retry_policy(p: &RawRetryPolicy, warnings: &mut Vec<String>) -> PerClass {
    let policy = per_class([
        p.bad_request,
        p.authentication,
        p.timeout,
        p.rate_limit,
        p.content_policy_violation,
        p.internal_server,
    ]);
    for class in [ErrorClass::BadRequest, ErrorClass::Authentication, ErrorClass::ContentPolicyViolation] {
        if policy.get(class).is_some_and(|n| n > 0) {
            warnings.push(format!(
                "`router_settings.retry_policy.{}Retries` is not acted on: tollgate never retries 400, 401, 403, \
                 404, 413 or content-policy refusals (the same request would be refused again); use fallbacks",
                class.name()
            ));
        }
    }
    policy
}

fn retry_settings(
    router: &RawRouterSettings,
    litellm: &RawLitellmSettings,
    warnings: &mut Vec<String>,
) -> Result<RetrySettings, ConfigError> {
    // `[{"a": ["b"]}, {"c": ["d"]}]`, LiteLLM's list of one-key maps, as one map.
    let merge = |list: &Option<Vec<BTreeMap<String, Vec<String>>>>| -> BTreeMap<String, Vec<String>> {
        list.iter().flatten().flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone()))).collect()
    };
    let retry_after = match router.retry_after {
        None => Duration::ZERO,
        Some(v) => Duration::try_from_secs_f64(v).map_err(|_| {
            ConfigError::invalid("router_settings.retry_after", format!("must be seconds, 0 or more, got {v}"))
        })?,
    };
    Ok(RetrySettings {
        num_retries: router.num_retries.or(litellm.num_retries).unwrap_or(DEFAULT_NUM_RETRIES),
        retry_policy: retry_policy(&router.retry_policy, warnings),
        retry_after,
        fallbacks: merge(if router.fallbacks.is_some() { &router.fallbacks } else { &litellm.fallbacks }),
        default_fallbacks: router
            .default_fallbacks
            .clone()
            .or_else(|| litellm.default_fallbacks.clone())
            .unwrap_or_default(),
        context_window_fallbacks: merge(if router.context_window_fallbacks.is_some() {
            &router.context_window_fallbacks
        } else {
            &litellm.context_window_fallbacks
        }),
        content_policy_fallbacks: merge(if router.content_policy_fallbacks.is_some() {
            &router.content_policy_fallbacks
        } else {
            &litellm.content_policy_fallbacks
        }),
        max_fallbacks: router.max_fallbacks.unwrap_or(DEFAULT_MAX_FALLBACKS),
    })
}

fn failure_threshold(router: &RawRouterSettings) -> Result<(f64, u64), ConfigError> {
    let fraction = router.failure_threshold_percent.unwrap_or(DEFAULT_FAILURE_THRESHOLD);
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(ConfigError::invalid(
            "router_settings.failure_threshold_percent",
            format!("must be a fraction above 0 and at most 1 (0.5 = 50%), got {fraction}"),
        ));
    }
    let minimum = router.failure_threshold_minimum_requests.unwrap_or(DEFAULT_FAILURE_THRESHOLD_MINIMUM_REQUESTS);
    if minimum == 0 {
        return Err(ConfigError::invalid("router_settings.failure_threshold_minimum_requests", "must be at least 1"));
    }
    Ok((fraction, minimum))
}

fn health_check_interval(general: &RawGeneralSettings) -> Result<Option<Duration>, ConfigError> {
    let interval = seconds(
        "general_settings.health_check_interval",
        general.health_check_interval,
        DEFAULT_HEALTH_CHECK_INTERVAL_SECS,
    )?;
    Ok(general.background_health_checks.unwrap_or(false).then_some(interval))
}

fn routing_strategy(router: &RawRouterSettings) -> Result<RoutingStrategy, ConfigError> {
    let buffer = router.routing_strategy_args.lowest_latency_buffer.unwrap_or(0.0);
    if !(buffer.is_finite() && buffer >= 0.0) {
        return Err(ConfigError::invalid(
            "router_settings.routing_strategy_args.lowest_latency_buffer",
            format!("must be a non-negative number, got {buffer}"),
        ));
    }
    let Some(name) = router.routing_strategy.as_deref() else { return Ok(RoutingStrategy::default()) };
    RoutingStrategy::from_name(name, buffer).ok_or_else(|| {
        ConfigError::invalid(
            "router_settings.routing_strategy",
            format!("unknown strategy `{name}`; accepted: {}", RoutingStrategy::NAMES.join(", ")),
        )
    })
}

fn validate(raw: RawConfig, env: &dyn EnvLookup) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let mut retries = retry_settings(&raw.router_settings, &raw.litellm_settings, &mut warnings)?;
    let (failure_threshold, failure_threshold_minimum_requests) = failure_threshold(&raw.router_settings)?;
    let embedding = raw
        .model_list
        .iter()
        .enumerate()
        .filter(|(_, e)| e.model_info.mode.as_deref() == Some("embedding"))
        .map(|(i, e)| e.model_info.id.clone().unwrap_or_else(|| format!("{}#{i}", e.model_name)))
        .collect();
    let health_checks = HealthChecks { background_interval: health_check_interval(&raw.general_settings)?, embedding };
    let mut logging = logging::resolve(&raw.litellm_settings)?;
    logging.callbacks = callbacks::resolve(&raw.litellm_settings, raw.callback_settings.as_ref(), env, &mut warnings)?;
    let mut upstream = upstream::resolve(raw.litellm_settings.ssl_verify, env, &mut warnings)?;
    upstream.connect_timeout =
        seconds("router_settings.connect_timeout", raw.router_settings.connect_timeout, DEFAULT_CONNECT_TIMEOUT_SECS)?;
    let store = store::resolve(&raw.general_settings, raw.database.as_ref(), &raw.tollgate, env)?;
    let redis = shared::resolve(&raw.router_settings, &raw.tollgate, env)?;
    let declared_keys = declared_keys::resolve(raw.key_settings.as_deref().unwrap_or_default(), &mut warnings)?;
    let alerting = alerts::resolve(&raw.general_settings, env, &mut warnings)?;
    let defaults = TimeoutDefaults {
        timeout: seconds(
            "router_settings.timeout",
            raw.router_settings.timeout.or(raw.litellm_settings.request_timeout),
            DEFAULT_TIMEOUT_SECS,
        )?,
        stream_timeout: optional_seconds("router_settings.stream_timeout", raw.router_settings.stream_timeout)?,
        stream_idle_timeout: optional_seconds(
            "router_settings.stream_idle_timeout",
            raw.router_settings.stream_idle_timeout,
        )?,
    };
    let mut rules = RoutingRules::default();
    let strategy =
        seed::router(raw.router.as_ref(), &raw.router_settings, routing_strategy(&raw.router_settings)?, &mut rules)?;
    let groups: Vec<&str> = raw.model_list.iter().map(|e| e.model_name.as_str()).collect();
    let fallback_config = raw.fallback_config.as_deref().unwrap_or_default();
    seed::fallback_config(fallback_config, &raw.router_settings, &mut retries, &mut rules, &groups, &mut warnings)?;
    let traits = raw
        .model_list
        .iter()
        .enumerate()
        .map(|(i, e)| seed::traits(&format!("model_list[{i}]"), e))
        .collect::<Result<Vec<_>, _>>()?;
    let mb = raw.general_settings.max_request_size_mb.unwrap_or(DEFAULT_MAX_REQUEST_MB);
    if !(mb.is_finite() && mb > 0.0) {
        return Err(ConfigError::invalid(
            "general_settings.max_request_size_mb",
            format!("must be a positive number, got {mb}"),
        ));
    }
    let master_key = match raw.general_settings.master_key {
        Some(k) if k.trim().is_empty() => {
            return Err(ConfigError::invalid("general_settings.master_key", "must not be empty"))
        }
        other => other.map(Secret::new),
    };
    let drop_params = raw.litellm_settings.drop_params.unwrap_or(false);
    let orders: Vec<Option<u32>> = raw.model_list.iter().map(|e| e.litellm_params.order).collect();
    let deployments = raw
        .model_list
        .into_iter()
        .enumerate()
        .map(|(i, entry)| deployment(i, entry, &defaults, drop_params, &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    let hedge_after = hedge_after(raw.router_settings.hedge_after_ms.unwrap_or_default(), &deployments, &mut warnings)?;
    let mut seen = std::collections::HashSet::new();
    for d in &deployments {
        if !seen.insert(d.id.as_str()) {
            return Err(ConfigError::invalid(
                format!("{}.model_info.id", d.path),
                format!("duplicate deployment id `{}`", d.id),
            ));
        }
    }
    let order = deployments.iter().zip(orders).filter_map(|(d, order)| Some((d.id.clone(), order?))).collect();
    rules.traits = deployments.iter().zip(traits).map(|(d, t)| (d.id.clone(), t)).collect();
    Ok(Config {
        deployments,
        env: Env::default(),
        master_key,
        max_request_bytes: (mb * 1024.0 * 1024.0) as usize,
        router: RouterSettings {
            strategy,
            order,
            allowed_fails: raw.router_settings.allowed_fails.unwrap_or(DEFAULT_ALLOWED_FAILS),
            allowed_fails_policy: allowed_fails_policy(&raw.router_settings.allowed_fails_policy),
            failure_threshold,
            failure_threshold_minimum_requests,
            disable_cooldowns: raw.router_settings.disable_cooldowns.unwrap_or(false),
            cooldown_time: seconds(
                "router_settings.cooldown_time",
                raw.router_settings.cooldown_time,
                DEFAULT_COOLDOWN_SECS,
            )?,
            retries,
            rules,
            hedge_after,
        },
        shutdown_grace: seconds(
            "tollgate.shutdown_grace_period_seconds",
            raw.tollgate.shutdown_grace_period_seconds,
            DEFAULT_GRACE_SECS,
        )?,
        request_body_timeout: seconds(
            "tollgate.request_body_timeout_seconds",
            raw.tollgate.request_body_timeout_seconds,
            DEFAULT_REQUEST_BODY_TIMEOUT_SECS,
        )?,
        price_catalog: raw.tollgate.price_catalog,
        upstream,
        store,
        health_checks,
        logging,
        redis,
        declared_keys,
        alerting,
        warnings,
    })
}

/// `router_settings`' timeouts, for deployments without their own. `None`: follow the deployment's other limits.
struct TimeoutDefaults {
    timeout: Duration,
    stream_timeout: Option<Duration>,
    stream_idle_timeout: Option<Duration>,
}

fn optional_seconds(path: &str, value: Option<f64>) -> Result<Option<Duration>, ConfigError> {
    value.map(|v| seconds(path, Some(v), 0.0)).transpose()
}

/// `router_settings.hedge_after_ms`: positive milliseconds per group. A group no deployment serves, or served by
/// one deployment only (nothing to hedge with), is warned about, not refused.
fn hedge_after(
    raw: BTreeMap<String, u64>,
    deployments: &[DeploymentConfig],
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, Duration>, ConfigError> {
    let mut out = BTreeMap::new();
    for (group, ms) in raw {
        let path = format!("router_settings.hedge_after_ms.{group}");
        if ms == 0 {
            return Err(ConfigError::invalid(path, "must be a positive number of milliseconds, got 0"));
        }
        match deployments.iter().filter(|d| d.model_name == group).count() {
            0 => warnings.push(format!("`{path}`: no model_list entry has model_name `{group}`; nothing is hedged")),
            1 => warnings.push(format!(
                "`{path}`: model group `{group}` has one deployment, so a hedged call has nowhere else to go"
            )),
            _ => {}
        }
        out.insert(group, Duration::from_millis(ms));
    }
    Ok(out)
}

fn deployment(
    index: usize,
    entry: RawModelEntry,
    defaults: &TimeoutDefaults,
    drop_params: bool,
    warnings: &mut Vec<String>,
) -> Result<DeploymentConfig, ConfigError> {
    let path = format!("model_list[{index}]");
    let p = entry.litellm_params;
    if entry.model_name.trim().is_empty() {
        return Err(ConfigError::invalid(format!("{path}.model_name"), "must not be empty"));
    }
    if p.model.trim().is_empty() {
        return Err(ConfigError::invalid(format!("{path}.litellm_params.model"), "must not be empty"));
    }
    let own = |key: &str, value: Option<f64>| optional_seconds(&format!("{path}.litellm_params.{key}"), value);
    let timeout = own("timeout", p.timeout)?.unwrap_or(defaults.timeout);
    let stream_timeout = own("stream_timeout", p.stream_timeout)?.or(defaults.stream_timeout).unwrap_or(timeout);
    let stream_idle_timeout =
        own("stream_idle_timeout", p.stream_idle_timeout)?.or(defaults.stream_idle_timeout).unwrap_or(stream_timeout);
    if p.connect_timeout.is_some() {
        warnings.push(format!(
            "`{path}.litellm_params.connect_timeout` is not supported per deployment yet: one connect limit serves \
             every upstream (`router_settings.connect_timeout`); ignored"
        ));
    }
    for (field, price) in
        [("input_cost_per_token", p.input_cost_per_token), ("output_cost_per_token", p.output_cost_per_token)]
    {
        if price.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(ConfigError::invalid(
                format!("{path}.litellm_params.{field}"),
                "must be a non-negative number",
            ));
        }
    }
    if let Some(base) = &p.api_base {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::invalid(
                format!("{path}.litellm_params.api_base"),
                format!("must be an http:// or https:// URL, got `{base}`"),
            ));
        }
    }
    Ok(DeploymentConfig {
        id: entry.model_info.id.unwrap_or_else(|| format!("{}#{index}", entry.model_name)),
        path,
        model_name: entry.model_name,
        model: p.model,
        api_key: p.api_key.filter(|k| !k.is_empty()).map(Secret::new),
        api_base: p.api_base,
        api_version: p.api_version,
        organization: p.organization,
        timeout,
        stream_timeout,
        stream_idle_timeout,
        weight: p.weight,
        rpm: p.rpm.or(entry.rpm),
        tpm: p.tpm.or(entry.tpm),
        input_cost_per_token: p.input_cost_per_token,
        output_cost_per_token: p.output_cost_per_token,
        base_model: entry.model_info.base_model,
        mock_response: p.mock_response,
        mock_latency: p.mock_latency_ms.map(Duration::from_millis),
        extra_headers: p.extra_headers.into_iter().map(|(k, v)| (k, Secret::new(v))).collect(),
        drop_params: p.drop_params.unwrap_or(drop_params),
        provider_params: ProviderParams {
            vertex_project: p.vertex_project,
            vertex_location: p.vertex_location,
            vertex_credentials: p.vertex_credentials.map(Secret::new),
            aws_access_key_id: p.aws_access_key_id.map(Secret::new),
            aws_secret_access_key: p.aws_secret_access_key.map(Secret::new),
            aws_session_token: p.aws_session_token.map(Secret::new),
            aws_region_name: p.aws_region_name,
            azure_ad_token: p.azure_ad_token.map(Secret::new),
            tenant_id: p.tenant_id,
            client_id: p.client_id,
            client_secret: p.client_secret.map(Secret::new),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_see_environment_variables_then_the_loaders_environment() {
        let yaml = "model_list: []\nenvironment_variables: {ANTHROPIC_API_KEY: from-config}\n";
        let outer = |name: &str| (name == "ANTHROPIC_API_KEY" || name == "OTHER").then(|| format!("outer-{name}"));
        let config = Config::load_str_shared(yaml, Arc::new(outer)).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(config.env.get("ANTHROPIC_API_KEY").as_deref(), Some("from-config"));
        assert_eq!(config.env.get("OTHER").as_deref(), Some("outer-OTHER"));
        assert_eq!(config.env.get("TOLLGATE_SURELY_UNSET_VARIABLE"), None);
        assert!(!format!("{:?}", config.env).contains("from-config"), "values may be secrets");
    }

    fn env(name: &str) -> Option<String> {
        (name == "OPENAI_API_KEY").then(|| "sk-test-0123456789abcdef".to_owned())
    }

    fn load(yaml: &str) -> Result<Config, String> {
        Config::load_str(yaml, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn reload_names_each_setting_that_needs_a_restart() {
        let base = "model_list: [{model_name: m, litellm_params: {model: mock/x}}]\n";
        let running = load(base).unwrap_or_else(|e| unreachable!("{e}"));
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("router_settings: {cooldown_time: 9}\n", &[]),
            ("general_settings: {master_key: sk-new}\n", &["general_settings.master_key"]),
            (
                "general_settings: {max_request_size_mb: 1}\ntollgate: {shutdown_grace_period_seconds: 1, request_body_timeout_seconds: 2}\n",
                &["general_settings.max_request_size_mb", "tollgate.shutdown_grace_period_seconds", "tollgate.request_body_timeout_seconds"],
            ),
            ("router_settings: {connect_timeout: 1}\n", &["router_settings.connect_timeout"]),
            ("router_settings: {stream_timeout: 1, stream_idle_timeout: 2, hedge_after_ms: {a: 5}}\n", &[]),
            (
                "general_settings: {alerting: [slack], alert_to_webhook_url: {budget_alerts: 'https://h/1', cooldown_deployment: 'https://h/2'}}\n",
                &["general_settings.alerting / alert_types / alert_to_webhook_url (SLACK_WEBHOOK_URL)"],
            ),
            (
                "litellm_settings: {callbacks: [jsonl_file]}\n",
                &["litellm_settings logging (log_level, json_logs, log_to_file, success_callback, failure_callback, callbacks, callback_settings)"],
            ),
        ];
        for (extra, want) in cases {
            let next = load(&format!("{base}{extra}")).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(running.restart_required(&next), *want, "{extra}");
        }
    }

    #[test]
    fn each_timeout_comes_from_the_deployment_then_router_settings_then_the_next_limit() {
        let ms = Duration::from_millis;
        // (router_settings, litellm_params extra, expected timeout, stream_timeout, stream_idle_timeout)
        let cases: &[(&str, &str, [u64; 3])] = &[
            ("{}", "", [600_000, 600_000, 600_000]),
            ("{timeout: 30}", "", [30_000, 30_000, 30_000]),
            ("{timeout: 30}", ", timeout: 10", [10_000, 10_000, 10_000]),
            ("{timeout: 30, stream_timeout: 2}", ", timeout: 10", [10_000, 2_000, 2_000]),
            ("{stream_timeout: 2, stream_idle_timeout: 0.5}", "", [600_000, 2_000, 500]),
            ("{stream_timeout: 2, stream_idle_timeout: 0.5}", ", stream_timeout: 3", [600_000, 3_000, 500]),
            ("{stream_idle_timeout: 0.5}", ", stream_idle_timeout: 0.25", [600_000, 600_000, 250]),
            ("{}", ", stream_timeout: 4", [600_000, 4_000, 4_000]),
        ];
        for (router, params, [t, st, idle]) in cases {
            let yaml = format!(
                "model_list:\n  - {{model_name: a, litellm_params: {{model: mock/a{params}}}}}\nrouter_settings: {router}\n"
            );
            let cfg = load(&yaml).unwrap_or_else(|e| unreachable!("{e}"));
            let d = &cfg.deployments[0];
            assert_eq!([d.timeout, d.stream_timeout, d.stream_idle_timeout], [ms(*t), ms(*st), ms(*idle)], "{yaml}");
        }
        let cfg = load("model_list: []\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.upstream.connect_timeout, Duration::from_secs(5));
        let cfg =
            load("model_list: []\nrouter_settings: {connect_timeout: 0.25}\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.upstream.connect_timeout, ms(250));
    }

    #[test]
    fn a_per_deployment_connect_timeout_is_warned_about_as_not_supported_yet() {
        let cfg = load("model_list:\n  - {model_name: a, litellm_params: {model: mock/a, connect_timeout: 1}}\n")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0]
            .contains("`model_list[0].litellm_params.connect_timeout` is not supported per deployment yet"));
        assert!(cfg.warnings[0].contains("router_settings.connect_timeout"));
    }

    #[test]
    fn hedge_delays_are_positive_milliseconds_per_group() {
        let two = "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\n  - {model_name: a, litellm_params: {model: mock/b}}\n  - {model_name: b, litellm_params: {model: mock/c}}\n";
        let cfg = load(&format!("{two}router_settings: {{hedge_after_ms: {{a: 150}}}}\n"))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.router.hedge_after.get("a"), Some(&Duration::from_millis(150)));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // (hedge_after_ms, warning or error that names the path)
        let cases: &[(&str, &str)] = &[
            ("{b: 100}", "`router_settings.hedge_after_ms.b`: model group `b` has one deployment"),
            ("{c: 100}", "`router_settings.hedge_after_ms.c`: no model_list entry has model_name `c`"),
        ];
        for (hedge, want) in cases {
            let cfg = load(&format!("{two}router_settings: {{hedge_after_ms: {hedge}}}\n"))
                .unwrap_or_else(|e| unreachable!("{e}"));
            assert!(cfg.warnings.iter().any(|w| w.contains(want)), "{hedge}: {:?}", cfg.warnings);
        }
        for bad in ["{a: 0}", "{a: -5}", "{a: soon}"] {
            let err = load(&format!("{two}router_settings: {{hedge_after_ms: {bad}}}\n")).err().map(|e| e.to_string());
            assert!(err.as_deref().is_some_and(|e| e.contains("router_settings.hedge_after_ms")), "{bad}: {err:?}");
        }
    }

    #[test]
    fn loads_a_litellm_config() {
        let cfg = load(
            r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/OPENAI_API_KEY
      timeout: 30
      weight: 2
      rpm: 100
  - model_name: gpt-4o-mini
    litellm_params: {model: groq/llama-3.1-8b-instant, api_key: "${OPENAI_API_KEY}"}
    tpm: 5000
general_settings: {master_key: sk-master}
router_settings: {allowed_fails: 1, cooldown_time: 2.5}
"#,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.deployments.len(), 2);
        let d = &cfg.deployments[0];
        assert_eq!(d.id, "gpt-4o-mini#0");
        assert_eq!((d.timeout, d.stream_timeout), (Duration::from_secs(30), Duration::from_secs(30)));
        assert_eq!(d.api_key.as_ref().map(Secret::expose), Some("sk-test-0123456789abcdef"));
        assert_eq!((d.weight, d.rpm), (Some(2), Some(100)));
        assert_eq!(cfg.deployments[1].tpm, Some(5000));
        assert_eq!(cfg.deployments[1].timeout, Duration::from_secs(600));
        assert_eq!(cfg.router.cooldown_time, Duration::from_millis(2500));
        assert_eq!(cfg.max_request_bytes, 32 * 1024 * 1024);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn unknown_and_unsupported_keys_are_warned_by_path() {
        let cfg = load(
            "model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, colour: red, max_parallel_requests: 1}\nrouter_settings: {num_retries: 2, redis_host: r}\nlitellm_settings: {cache: true}\nmystery: 1\n",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let all = cfg.warnings.join("\n");
        assert!(all.contains("`model_list[0].litellm_params.colour` is not a known config key"), "{all}");
        assert!(
            all.contains(
                "`model_list[0].litellm_params.max_parallel_requests` is a LiteLLM setting tollgate does not support yet"
            ),
            "{all}"
        );
        assert!(all.contains("`litellm_settings.cache` is a LiteLLM setting"), "{all}");
        assert!(!all.contains("redis_host"), "Redis is supported: {all}");
        assert!(cfg.redis.is_some_and(|r| r.url.expose() == "redis://r:6379"));
        assert!(!all.contains("num_retries"), "retries are supported: {all}");
        assert!(all.contains("`mystery` is not a known config key"), "{all}");
    }

    #[test]
    fn errors_name_the_offending_path() {
        let cases = [
            ("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, rpm: lots}\n", "model_list[0].litellm_params.rpm"),
            ("model_list:\n  - model_name: a\n", "model_list[0]"),
            ("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, timeout: -1}\n", "model_list[0].litellm_params.timeout"),
            ("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, stream_idle_timeout: 0}\n", "model_list[0].litellm_params.stream_idle_timeout"),
            ("router_settings: {stream_timeout: -1}\n", "router_settings.stream_timeout"),
            ("router_settings: {connect_timeout: 0}\n", "router_settings.connect_timeout"),
            ("model_list:\n  - model_name: a\n    litellm_params: {model: x/a, api_key: os.environ/NOPE}\n", "NOPE"),
            ("model_list:\n  - model_name: a\n    litellm_params: {model: x/a, api_base: ftp://x}\n", "model_list[0].litellm_params.api_base"),
            ("general_settings: {max_request_size_mb: 0}\n", "general_settings.max_request_size_mb"),
            ("model_list:\n  - {model_name: a, litellm_params: {model: mock/a}, model_info: {id: x}}\n  - {model_name: b, litellm_params: {model: mock/b}, model_info: {id: x}}\n", "model_list[1].model_info.id"),
            ("model_list: 3\n", "model_list"),
        ];
        for (yaml, want) in cases {
            let err = load(yaml).err().unwrap_or_default();
            assert!(err.contains(want), "yaml {yaml:?}: error {err:?} should name {want}");
        }
    }

    #[test]
    fn routing_strategy_takes_litellms_names_and_refuses_others() {
        for name in RoutingStrategy::NAMES {
            let cfg = load(&format!("router_settings: {{routing_strategy: {name}}}\n"))
                .unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(RoutingStrategy::from_name(name, 0.0), Some(cfg.router.strategy), "{name}");
        }
        let cfg = load("router_settings: {routing_strategy: latency-based-routing, routing_strategy_args: {lowest_latency_buffer: 0.5}}\n")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.router.strategy, RoutingStrategy::LatencyBased { buffer: 0.5 });
        assert_eq!(load("model_list: []\n").map(|c| c.router.strategy).ok(), Some(RoutingStrategy::SimpleShuffle));
        let err = load("router_settings: {routing_strategy: round-robin}\n").err().unwrap_or_default();
        assert!(err.contains("router_settings.routing_strategy"), "{err}");
        assert!(err.contains("round-robin") && err.contains("least-busy, latency-based-routing"), "{err}");
        let err =
            load("router_settings: {routing_strategy_args: {lowest_latency_buffer: -1}}\n").err().unwrap_or_default();
        assert!(err.contains("lowest_latency_buffer"), "{err}");
        let cfg = load("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, order: 2}\n")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.router.order.get("a#0"), Some(&2));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn circuit_policies_and_health_checks_take_litellms_keys() {
        let cfg = load(
            "model_list:\n  - {model_name: e, litellm_params: {model: mock/e}, model_info: {mode: embedding}}\n  - {model_name: c, litellm_params: {model: mock/c}, model_info: {mode: chat}}\nrouter_settings:\n  allowed_fails_policy: {TimeoutErrorAllowedFails: 7, AuthenticationErrorAllowedFails: 0}\n  retry_policy: {RateLimitErrorRetries: 4, BadRequestErrorRetries: 1, AuthenticationErrorRetries: 0}\n  failure_threshold_percent: 0.25\n  failure_threshold_minimum_requests: 20\ngeneral_settings: {background_health_checks: true, health_check_interval: 30}\n",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let r = &cfg.router;
        assert_eq!(r.allowed_fails_policy.get(ErrorClass::Timeout), Some(7));
        assert_eq!(r.allowed_fails_policy.get(ErrorClass::Authentication), Some(0));
        assert_eq!(r.allowed_fails_policy.get(ErrorClass::RateLimit), None);
        assert_eq!(r.retries.retry_policy.get(ErrorClass::RateLimit), Some(4));
        assert_eq!((r.failure_threshold, r.failure_threshold_minimum_requests), (0.25, 20));
        assert!(!r.disable_cooldowns);
        let off = load("router_settings: {disable_cooldowns: true}\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(off.router.disable_cooldowns && off.warnings.is_empty(), "{:?}", off.warnings);
        assert_eq!(cfg.health_checks.background_interval, Some(Duration::from_secs(30)));
        assert_eq!(cfg.health_checks.embedding.iter().collect::<Vec<_>>(), ["e#0"]);
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("`router_settings.retry_policy.BadRequestErrorRetries` is not acted on"));

        let defaults = load("model_list: []\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((defaults.router.failure_threshold, defaults.router.failure_threshold_minimum_requests), (0.5, 5));
        assert!(defaults.router.allowed_fails_policy.is_empty() && defaults.router.retries.retry_policy.is_empty());
        assert_eq!(defaults.health_checks.background_interval, None, "off unless asked");
        let interval =
            load("general_settings: {background_health_checks: true}\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(interval.health_checks.background_interval, Some(Duration::from_secs(300)), "LiteLLM's default");

        for (yaml, path) in [
            ("router_settings: {failure_threshold_percent: 50}\n", "router_settings.failure_threshold_percent"),
            ("router_settings: {failure_threshold_percent: 0}\n", "router_settings.failure_threshold_percent"),
            (
                "router_settings: {failure_threshold_minimum_requests: 0}\n",
                "router_settings.failure_threshold_minimum_requests",
            ),
            ("general_settings: {health_check_interval: 0}\n", "general_settings.health_check_interval"),
            (
                "router_settings: {allowed_fails_policy: {TimeoutErrorAllowedFails: -1}}\n",
                "router_settings.allowed_fails_policy.TimeoutErrorAllowedFails",
            ),
        ] {
            let err = load(yaml).err().unwrap_or_default();
            assert!(err.contains(path), "{yaml}: {err}");
        }
        let typo =
            load("router_settings: {retry_policy: {TimeoutRetries: 1}}\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(
            typo.warnings
                .join("\n")
                .contains("`router_settings.retry_policy.TimeoutRetries` is not a known config key"),
            "{:?}",
            typo.warnings
        );
    }

    #[test]
    fn environment_variables_section_feeds_interpolation() {
        let cfg = load(
            "environment_variables: {MY_KEY: sk-from-config-000000}\nmodel_list:\n  - model_name: a\n    litellm_params: {model: openai/a, api_key: os.environ/MY_KEY}\n",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.deployments[0].api_key.as_ref().map(Secret::expose), Some("sk-from-config-000000"));
    }

    #[test]
    fn ssl_verify_is_read_from_litellm_settings() {
        let cfg = load("litellm_settings: {ssl_verify: /etc/ca.pem}\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            cfg.upstream.tls,
            TlsTrust::Bundle { path: "/etc/ca.pem".into(), source: "litellm_settings.ssl_verify" }
        );
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        let cfg = load("litellm_settings: {ssl_verify: false}\nmodel_list:\n  - model_name: a\n    litellm_params: {model: mock/a, ssl_verify: false}\n")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.upstream.tls, TlsTrust::Off { source: "litellm_settings.ssl_verify" });
        let all = cfg.warnings.join("\n");
        assert!(all.contains("NOT verified"), "{all}");
        assert!(
            all.contains(
                "`model_list[0].litellm_params.ssl_verify` is a LiteLLM setting tollgate does not support yet"
            ),
            "{all}"
        );
        let err = load("litellm_settings: {ssl_verify: [1]}\n").err().unwrap_or_default();
        assert!(err.contains("litellm_settings.ssl_verify"), "{err}");
    }

    #[test]
    fn quick_mode_builds_one_deployment() {
        let cfg = Config::quick("openai/gpt-4o-mini", &env).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.deployments.len(), 1);
        assert_eq!(cfg.deployments[0].model_name, "gpt-4o-mini");
        assert_eq!(cfg.deployments[0].model, "openai/gpt-4o-mini");
    }
}
