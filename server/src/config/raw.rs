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
    /// Seconds the upstream may keep us waiting: for its response headers, and between body chunks.
    pub timeout: Option<f64>,
    /// Like `timeout`, for streaming requests (defaults to `timeout`).
    pub stream_timeout: Option<f64>,
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
    #[expect(dead_code, reason = "informational key, accepted so it is not reported as unknown")]
    pub max_input_tokens: Option<serde::de::IgnoredAny>,
    #[expect(dead_code, reason = "informational key, accepted so it is not reported as unknown")]
    pub max_output_tokens: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGeneralSettings {
    pub master_key: Option<String>,
    /// Request bodies above this many MiB get HTTP 413 (default 32).
    pub max_request_size_mb: Option<f64>,
    /// Probe every deployment in the background, every `health_check_interval` seconds, with a cheap call (a
    /// 1-token chat, or one short embedding); `GET /health` then answers from the latest results (default false:
    /// `GET /health` probes when asked). A failed probe takes the deployment out (see docs/routing.md).
    pub background_health_checks: Option<bool>,
    /// Seconds between two background probes of a deployment (default 300, as LiteLLM).
    pub health_check_interval: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRouterSettings {
    /// `simple-shuffle` (default), `least-busy`, `latency-based-routing`, `usage-based-routing` or
    /// `cost-based-routing`.
    pub routing_strategy: Option<String>,
    #[serde(default)]
    pub routing_strategy_args: RawRoutingStrategyArgs,
    /// Seconds; default upstream timeout for deployments without their own.
    pub timeout: Option<f64>,
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
}

/// LiteLLM keys tollgate parses but does not act on yet. Paths use `model_list[].` for per-entry keys.
pub const NOT_YET_SUPPORTED: &[&str] = &[
    "general_settings.database_url",
    "general_settings.alerting",
    "general_settings.store_model_in_db",
    "general_settings.disable_spend_logs",
    "router_settings.model_group_alias",
    "router_settings.model_group_retry_policy",
    "router_settings.enable_pre_call_checks",
    "router_settings.redis_host",
    "router_settings.redis_port",
    "router_settings.redis_password",
    "router_settings.redis_url",
    "litellm_settings.json_logs",
    "litellm_settings.set_verbose",
    "litellm_settings.success_callback",
    "litellm_settings.failure_callback",
    "litellm_settings.callbacks",
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
