//! LiteLLM's `config.yaml` schema as written by users: every field optional, no defaults applied.
//!
//! Unknown keys are not rejected here; `load` reports each by path (see `mod.rs`). Keys that LiteLLM defines but
//! tollgate does not act on yet are deliberately absent from these structs and listed in `NOT_YET_SUPPORTED`, so
//! the start-up warning says "not supported yet" instead of "unknown".

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub model_list: Vec<RawModelEntry>,
    #[serde(default)]
    pub general_settings: RawGeneralSettings,
    #[serde(default)]
    pub router_settings: RawRouterSettings,
    #[serde(default)]
    pub litellm_settings: RawLitellmSettings,
    /// LiteLLM sets these in the process environment; tollgate uses them only for `${VAR}` interpolation.
    /// Read from the YAML tree before typed parsing (see `config_env`); declared so it is a known key.
    #[serde(default)]
    #[expect(dead_code, reason = "declared only so the key is known, the value is read from the YAML tree")]
    pub environment_variables: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub tollgate: RawTollgateSettings,
    /// The seed's spelling of the store: `{type: postgresql | sqlite, connection_string}`.
    pub database: Option<RawDatabase>,
    /// The seed article's routing section (tollgate extension, mapped onto `router_settings`; see
    /// `config/seed.rs` and docs/routing.md). Conflicts with `router_settings.routing_strategy`.
    pub router: Option<RawSeedRouter>,
    /// The seed article's fallback chains with per-group retries (tollgate extension, mapped onto
    /// `router_settings.fallbacks` plus a per-group retry count and fixed delay).
    pub fallback_config: Option<Vec<RawFallbackConfig>>,
    /// The seed's keys declared in the config, with rate limits (and budgets, not enforced yet): see
    /// `config/declared_keys.rs`.
    pub key_settings: Option<Vec<super::declared_keys::RawKeySetting>>,
    /// LiteLLM's per-callback settings, by callback name (`config/callbacks.rs`).
    pub callback_settings: Option<BTreeMap<String, RawCallbackSettings>>,
}

/// One `callback_settings.<name>` entry: LiteLLM's `generic_api` keys, and tollgate's `jsonl_file` sink.
#[derive(Debug, Default, Deserialize)]
pub struct RawCallbackSettings {
    /// `generic_api` (also `webhook`) or `jsonl_file`; implied by the built-in names.
    pub callback_type: Option<String>,
    /// The webhook's URL (LiteLLM's `endpoint`; `url` is accepted too). Default `GENERIC_LOGGER_ENDPOINT`.
    pub endpoint: Option<String>,
    pub url: Option<String>,
    /// Headers sent with every POST, over those of `GENERIC_LOGGER_HEADERS`. Values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Records per POST (default 512, as LiteLLM).
    pub batch_size: Option<usize>,
    /// Seconds a partial batch may wait before it is sent (default 5, as LiteLLM).
    pub flush_interval: Option<f64>,
    /// `llm_api_success`, `llm_api_failure`: which records the callback gets (default both).
    pub event_types: Option<Vec<String>>,
    /// LiteLLM's `json_array` (the default) is the only format tollgate sends.
    pub log_format: Option<String>,
    /// The `jsonl_file` sink's file (default `tollgate-callbacks.jsonl`).
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawDatabase {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub connection_string: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawModelEntry {
    pub model_name: String,
    pub litellm_params: RawLitellmParams,
    #[serde(default)]
    pub model_info: RawModelInfo,
    /// LiteLLM also accepts `rpm` / `tpm` beside `litellm_params`.
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RawLitellmParams {
    /// `provider/model`, e.g. `openai/gpt-4o-mini`; a bare name means OpenAI.
    pub model: String,
    pub api_key: Option<String>,
    pub api_base: Option<String>,
    pub api_version: Option<String>,
    /// Seconds a non-streaming call may take in all: connecting, the response headers and the whole body
    /// (LiteLLM: "maximum time for the complete response"). Default `router_settings.timeout`.
    pub timeout: Option<f64>,
    /// Seconds a streaming call may take to its first event, counted from the start of the call (LiteLLM: "maximum
    /// time to wait for the first chunk"). Default `router_settings.stream_timeout`, else this deployment's
    /// `timeout`.
    pub stream_timeout: Option<f64>,
    /// tollgate extension: seconds a stream may pause between two chunks once its first event arrived. Default
    /// `router_settings.stream_idle_timeout`, else this deployment's `stream_timeout`.
    pub stream_idle_timeout: Option<f64>,
    /// Not supported per deployment yet (one limit serves every upstream: `router_settings.connect_timeout`);
    /// declared so that setting it warns by path instead of being called unknown.
    pub connect_timeout: Option<f64>,
    pub weight: Option<u32>,
    /// Priority tier: deployments of the lowest order serve while any of them is available.
    pub order: Option<u32>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    /// Sent upstream as `OpenAI-Organization`.
    pub organization: Option<String>,
    /// Fixed content for `mock/` deployments (LiteLLM's `mock_response`).
    pub mock_response: Option<String>,
    /// tollgate extension for `mock/` deployments: delay before the first byte.
    pub mock_latency_ms: Option<u64>,
    /// Extra headers sent upstream with every request.
    #[serde(default)]
    pub extra_headers: BTreeMap<String, String>,
    /// Drop parameters the provider cannot take instead of refusing the request (overrides the global setting).
    pub drop_params: Option<bool>,
    // Provider credentials and placement beyond `api_key`/`api_base`, by LiteLLM's names.
    pub vertex_project: Option<String>,
    pub vertex_location: Option<String>,
    /// Service-account JSON, or the path of a file holding it.
    pub vertex_credentials: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_session_token: Option<String>,
    pub aws_region_name: Option<String>,
    /// Azure Entra ID: a fixed token, or a client-credentials app.
    pub azure_ad_token: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Free-form in LiteLLM (passed through); tollgate reads the seed's routing keys from it and accepts any other.
    pub metadata: Option<RawMetadata>,
}

/// `litellm_params.metadata`: LiteLLM passes it through untouched; these keys feed the seed's routing rules.
#[derive(Debug, Default, Deserialize)]
pub struct RawMetadata {
    /// $ per 1K tokens, one blended price for prompt and completion: ranks deployments for `cost-based` routing
    /// (over the catalog price) and compares with `router.cost_threshold`.
    pub cost: Option<f64>,
    /// Expected latency in milliseconds: the prior of `latency` routing until measured samples exist.
    pub latency: Option<f64>,
    /// The context window in tokens (`model_info.max_input_tokens` wins when both are given).
    pub max_tokens: Option<u64>,
    /// `vision`, `function-calling`, `long-context` steer routing; others (`code`, ...) are informational.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Any other key: accepted silently, as LiteLLM does.
    #[serde(flatten)]
    #[expect(dead_code, reason = "free-form metadata is accepted and not acted on")]
    pub other: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawModelInfo {
    /// Stable deployment id shown in headers and logs; defaults to `<model_name>#<index>`.
    pub id: Option<String>,
    /// The catalog entry to price this deployment by, when its model name is not in the catalog.
    pub base_model: Option<String>,
    /// What the deployment serves, LiteLLM's `chat` (default), `completion`, `embedding`, ...: health checks probe
    /// an `embedding` deployment with one short embedding instead of a 1-token chat.
    pub mode: Option<String>,
    // Informational keys LiteLLM shows in `/model/info`; accepted, not acted on.
    #[expect(dead_code, reason = "informational key, accepted so it is not reported as unknown")]
    pub description: Option<serde::de::IgnoredAny>,
    #[expect(dead_code, reason = "informational key, accepted so it is not reported as unknown")]
    pub max_tokens: Option<serde::de::IgnoredAny>,
    /// The context window in tokens: the deployment serves prompts up to this size when pre-call checks are on
    /// (`router_settings.enable_pre_call_checks` or a `router:` section). Else `metadata.max_tokens`, else the catalog.
    pub max_input_tokens: Option<u64>,
    /// LiteLLM's capability flags: images need `supports_vision`, tools `supports_function_calling` under
    /// `router.type: capability-based`.
    pub supports_vision: Option<bool>,
    pub supports_function_calling: Option<bool>,
    #[expect(dead_code, reason = "informational key, accepted so it is not reported as unknown")]
    pub max_output_tokens: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGeneralSettings {
    pub master_key: Option<String>,
    /// Request bodies above this many MiB get HTTP 413 (default 32).
    pub max_request_size_mb: Option<f64>,
    /// The store: `postgres://...` or `sqlite://...` (default: `sqlite://tollgate.db?mode=rwc`).
    pub database_url: Option<String>,
    /// Seconds a replica may honour a cached virtual key changed elsewhere (default 60).
    pub user_api_key_cache_ttl: Option<f64>,
    /// Probe every deployment in the background, every `health_check_interval` seconds, with a cheap call (a
    /// 1-token chat, or one short embedding); `GET /health` then answers from the latest results (default false:
    /// `GET /health` probes when asked). A failed probe takes the deployment out (see docs/routing.md).
    pub background_health_checks: Option<bool>,
    /// Seconds between two background probes of a deployment (default 300, as LiteLLM).
    pub health_check_interval: Option<f64>,
    /// LiteLLM's switch: no request log rows in the store (metrics and the seed's log file still see every request).
    pub disable_spend_logs: Option<bool>,
    /// The answer's bound a budget reservation assumes when a request sets no `max_tokens` (default 4096; never
    /// more than the model's catalog maximum output).
    pub budget_default_max_tokens: Option<u64>,
    /// LiteLLM's: request log rows older than this (`"30d"`, `"12h"`, `"1s"`) are deleted in the background;
    /// the daily rollups are kept. Default: kept forever.
    pub maximum_spend_logs_retention_period: Option<String>,
    /// How often the retention purge runs (default `"1d"`; the first run is at start-up).
    pub maximum_spend_logs_retention_interval: Option<String>,
    /// Alert channels: `slack` (config/alerts.rs).
    pub alerting: Option<Vec<String>>,
    /// Which alerts are sent (`budget_alerts`, `cooldown_deployment`; default: both).
    pub alert_types: Option<Vec<String>>,
    /// A Slack webhook per alert type, over `SLACK_WEBHOOK_URL`.
    pub alert_to_webhook_url: Option<BTreeMap<String, String>>,
    /// LiteLLM's slow-request threshold (seconds): accepted and reported as not supported yet.
    pub alerting_threshold: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRouterSettings {
    /// `simple-shuffle` (default), `least-busy`, `latency-based-routing`, `usage-based-routing` or
    /// `cost-based-routing`.
    pub routing_strategy: Option<String>,
    #[serde(default)]
    pub routing_strategy_args: RawRoutingStrategyArgs,
    /// Seconds; default `timeout` (whole non-streaming call) for deployments without their own (default
    /// `litellm_settings.request_timeout`, else 600).
    pub timeout: Option<f64>,
    /// Seconds; default `stream_timeout` (time to a stream's first event) for deployments without their own
    /// (default: the deployment's `timeout`).
    pub stream_timeout: Option<f64>,
    /// tollgate extension. Seconds; default `stream_idle_timeout` (pause between stream chunks) for deployments
    /// without their own (default: the deployment's `stream_timeout`).
    pub stream_idle_timeout: Option<f64>,
    /// tollgate extension. Seconds to establish an upstream connection (DNS, TCP, proxy tunnel; the TLS handshake
    /// gets as long again). One value for every deployment, read at start-up (default 5).
    pub connect_timeout: Option<f64>,
    /// tollgate extension: `{<model group>: <ms>}`. When a call of the group has not produced its first byte (the
    /// response; for a stream its first event) after this many milliseconds, the same request also goes to another
    /// deployment of the group; the first to answer serves, the other is cancelled.
    pub hedge_after_ms: Option<BTreeMap<String, u64>>,
    /// Failures (429, 5xx, timeouts, connection errors) per minute a deployment may have before it cools down.
    pub allowed_fails: Option<u32>,
    /// `allowed_fails` per error class (`BadRequestErrorAllowedFails`, `AuthenticationErrorAllowedFails`,
    /// `TimeoutErrorAllowedFails`, `RateLimitErrorAllowedFails`, `ContentPolicyViolationErrorAllowedFails`,
    /// `InternalServerErrorAllowedFails`): a class named here counts its own failures against its own number, and
    /// bad requests, auth errors and content-policy refusals count against the deployment only when named here.
    #[serde(default)]
    pub allowed_fails_policy: RawAllowedFailsPolicy,
    /// tollgate extension (LiteLLM's constant `DEFAULT_FAILURE_THRESHOLD_PERCENT`): a deployment whose failures
    /// this minute are more than this fraction of its calls (0.5 = 50%, the default) cools down, once it has had
    /// `failure_threshold_minimum_requests` calls; never the only deployment of its group.
    pub failure_threshold_percent: Option<f64>,
    /// tollgate extension (LiteLLM's constant `DEFAULT_FAILURE_THRESHOLD_MINIMUM_REQUESTS`): calls this minute
    /// before the failure rate counts (default 5).
    pub failure_threshold_minimum_requests: Option<u64>,
    /// Seconds a deployment sits out after too many failures.
    pub cooldown_time: Option<f64>,
    /// No deployment is ever taken out, whatever its failures (default false).
    pub disable_cooldowns: Option<bool>,
    /// Retries of a failed call within a request, each preferring a deployment not yet tried.
    pub num_retries: Option<u32>,
    /// Seconds to wait at least before a retry.
    pub retry_after: Option<f64>,
    /// `num_retries` per error class (`TimeoutErrorRetries`, `RateLimitErrorRetries`, `InternalServerErrorRetries`;
    /// `BadRequestErrorRetries`, `AuthenticationErrorRetries`, `ContentPolicyViolationErrorRetries` are accepted but
    /// tollgate never retries those: a positive value is warned about).
    #[serde(default)]
    pub retry_policy: RawRetryPolicy,
    /// `[{"model-a": ["model-b", ...]}, ...]`: groups to try, in order, when a group's deployments all failed.
    pub fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// Groups to try for any model without fallbacks of its own.
    pub default_fallbacks: Option<Vec<String>>,
    /// Like `fallbacks`, for prompts too long for the model's context window.
    pub context_window_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// Like `fallbacks`, for requests the provider's content policy refused.
    pub content_policy_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// At most this many fallback groups per request.
    pub max_fallbacks: Option<u32>,
    /// Redis shared by replicas (rate limits, key invalidations): `redis://[:password@]host:port[/db]`.
    pub redis_url: Option<String>,
    /// Redis by parts, when no `redis_url` is given.
    pub redis_host: Option<String>,
    /// A number or a string (LiteLLM reads it from the environment as a string).
    pub redis_port: Option<serde_yaml::Value>,
    pub redis_password: Option<String>,
    /// Before calling, keep only the deployments whose context window fits the prompt (counted with an OpenAI
    /// tokenizer, see docs/routing.md); none fits → `context_window_fallbacks`, else 400 `context_length_exceeded`.
    pub enable_pre_call_checks: Option<bool>,
}

/// LiteLLM's `AllowedFailsPolicy`: failures per minute allowed per error class.
#[derive(Debug, Default, Deserialize)]
pub struct RawAllowedFailsPolicy {
    #[serde(rename = "BadRequestErrorAllowedFails")]
    pub bad_request: Option<u32>,
    #[serde(rename = "AuthenticationErrorAllowedFails")]
    pub authentication: Option<u32>,
    #[serde(rename = "TimeoutErrorAllowedFails")]
    pub timeout: Option<u32>,
    #[serde(rename = "RateLimitErrorAllowedFails")]
    pub rate_limit: Option<u32>,
    #[serde(rename = "ContentPolicyViolationErrorAllowedFails")]
    pub content_policy_violation: Option<u32>,
    #[serde(rename = "InternalServerErrorAllowedFails")]
    pub internal_server: Option<u32>,
}

/// LiteLLM's `RetryPolicy`: retries per error class, instead of `num_retries`.
#[derive(Debug, Default, Deserialize)]
pub struct RawRetryPolicy {
    #[serde(rename = "BadRequestErrorRetries")]
    pub bad_request: Option<u32>,
    #[serde(rename = "AuthenticationErrorRetries")]
    pub authentication: Option<u32>,
    #[serde(rename = "TimeoutErrorRetries")]
    pub timeout: Option<u32>,
    #[serde(rename = "RateLimitErrorRetries")]
    pub rate_limit: Option<u32>,
    #[serde(rename = "ContentPolicyViolationErrorRetries")]
    pub content_policy_violation: Option<u32>,
    #[serde(rename = "InternalServerErrorRetries")]
    pub internal_server: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRoutingStrategyArgs {
    /// `latency-based-routing`: deployments within this fraction of the fastest share the load (default 0).
    pub lowest_latency_buffer: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLitellmSettings {
    /// Seconds; LiteLLM's global default upstream timeout.
    pub request_timeout: Option<f64>,
    /// Upstream certificate checks: `true` (default), `false` (off, insecure), or the path of a PEM CA bundle
    /// that replaces the built-in roots. The `SSL_VERIFY` environment variable overrides it, as in LiteLLM.
    pub ssl_verify: Option<RawSslVerify>,
    /// Drop parameters a provider cannot take instead of refusing the request with a 400 naming them.
    pub drop_params: Option<bool>,
    // LiteLLM also reads these here; `router_settings` wins where both are set.
    pub num_retries: Option<u32>,
    pub fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    pub default_fallbacks: Option<Vec<String>>,
    pub context_window_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    pub content_policy_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// The process log level: `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` (`RUST_LOG` wins when set).
    pub log_level: Option<String>,
    /// Process logs as JSON lines (as `--json-logs`).
    pub json_logs: Option<bool>,
    /// The seed's request log file: one JSON line per request (timestamp, model, tokens, latency, cost).
    pub log_to_file: Option<bool>,
    /// Where `log_to_file` writes (default `tollgate-requests.jsonl`); rotated by size.
    pub log_file_path: Option<String>,
    /// Whether the file's lines carry `completion_tokens` (default true).
    pub log_completion_tokens: Option<bool>,
    /// Callbacks that get successful requests' records (status < 400): `webhook` / `generic_api`, `jsonl_file`, or
    /// a `callback_settings` name.
    pub success_callback: Option<Vec<String>>,
    /// Callbacks that get failed requests' records (status >= 400).
    pub failure_callback: Option<Vec<String>>,
    /// Callbacks that get every record.
    pub callbacks: Option<Vec<String>>,
}

/// `ssl_verify` as LiteLLM accepts it: a boolean, or a string that is `"true"`/`"false"` (as interpolation from
/// the environment produces) or a CA bundle path.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSslVerify {
    Bool(bool),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
pub struct RawTollgateSettings {
    /// Seconds SIGTERM waits for in-flight requests and streams before exiting (default 30).
    pub shutdown_grace_period_seconds: Option<f64>,
    /// A newer price catalog in LiteLLM's `model_prices_and_context_window.json` format.
    pub price_catalog: Option<String>,
    /// Seconds a caller has to deliver a request body once its headers arrived (default 60).
    pub request_body_timeout_seconds: Option<f64>,
    /// The request log's journal directory: every record is appended there before the store gets it (default:
    /// beside a SQLite store's file, `<file>.log-journal`, else `tollgate-log-journal` in the working directory).
    pub log_journal_dir: Option<String>,
    /// Prefix of every Redis key and channel tollgate uses (default `tollgate:`).
    pub redis_key_prefix: Option<String>,
    /// Milliseconds a request waits for Redis before falling back to local limits (default 100).
    pub redis_timeout_ms: Option<u64>,
}

/// The seed article's `router:` section (tollgate extension; docs/routing.md says what each key maps to).
#[derive(Debug, Default, Deserialize)]
pub struct RawSeedRouter {
    /// `latency`, `cost-based`, `capability-based` or `weighted_round_robin`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `cost_optimized`: cost-based routing when no `type` is given; with `cost_threshold`, deployments above it
    /// serve only when none at or below it is available.
    pub routing_strategy: Option<String>,
    /// $ per 1K tokens (compared with `metadata.cost`, else the catalog's average of prompt and completion price).
    pub cost_threshold: Option<f64>,
    /// Tokens: longer prompts go to deployments listing `long-context` (when any is available).
    pub context_threshold: Option<u64>,
    /// Model name → share: model names whose deployments serve the same model (`litellm_params.model`) also
    /// serve it under that model's own name, split by these shares.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

/// One entry of the seed's `fallback_config:` list.
#[derive(Debug, Deserialize)]
pub struct RawFallbackConfig {
    pub model_name: String,
    /// Groups to try in order once `model_name` is exhausted (its `router_settings.fallbacks` entry).
    #[serde(default)]
    pub fallback_to: Vec<String>,
    /// Retries of `model_name` after its first call (instead of `num_retries`).
    pub retry_attempts: Option<u32>,
    /// Seconds between those retries: a fixed delay, not a backoff.
    pub retry_delay: Option<f64>,
}

/// LiteLLM keys tollgate parses but does not act on yet. Paths use `model_list[].` for per-entry keys.
pub const NOT_YET_SUPPORTED: &[&str] = &[
    "general_settings.store_model_in_db",
    "router_settings.model_group_alias",
    "router_settings.model_group_retry_policy",
    "litellm_settings.set_verbose",
    "litellm_settings.cache",
    "litellm_settings.cache_params",
    "litellm_settings.max_budget",
    "litellm_settings.budget_duration",
    "litellm_settings.ssl_certificate",
    "litellm_settings.ssl_security_level",
    "litellm_settings.ssl_ecdh_curve",
    "model_list[].litellm_params.max_parallel_requests",
    "model_list[].litellm_params.max_retries",
    // One TLS set-up serves every deployment (the global `litellm_settings.ssl_verify`); per-deployment trust
    // would need one awc client per distinct setting in every worker.
    "model_list[].litellm_params.ssl_verify",
];
