//! Request log callbacks, LiteLLM's way: `litellm_settings.success_callback` (records of requests answered with a
//! status below 400), `failure_callback` (400 and above) and `callbacks` (both) name sinks; `callback_settings.<name>`
//! configures each. Three kinds exist: a webhook (`webhook`, LiteLLM's `generic_api`/`generic`, or any name whose
//! settings say `callback_type: generic_api`), which POSTs batches of records as a JSON array; a JSON-lines file
//! (`jsonl_file`, or `callback_type: jsonl_file`); and OpenTelemetry (`otel`, as LiteLLM names it), which exports
//! one span per request over OTLP/HTTP, configured by the OpenTelemetry environment variables ([`otlp`]).
//!
//! Contract: a webhook without an endpoint, or a setting out of range, is an error naming its path; a callback name
//! tollgate does not deliver to (`langfuse`, `datadog`, ...) is a start-up warning "not supported yet: <name>",
//! never a failure and never silence.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use super::{
    raw::{RawCallbackSettings, RawLitellmSettings},
    ConfigError, EnvLookup,
};
use crate::secret::Secret;

/// LiteLLM's `DEFAULT_BATCH_SIZE` and `DEFAULT_FLUSH_INTERVAL_SECONDS`.
const DEFAULT_BATCH_SIZE: usize = 512;
const DEFAULT_FLUSH_INTERVAL_SECS: f64 = 5.0;
/// The largest batch accepted: a batch is held in memory and sent as one body.
const MAX_BATCH_SIZE: usize = 10_000;
const DEFAULT_JSONL_PATH: &str = "tollgate-callbacks.jsonl";

/// One configured sink and which records it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackConfig {
    /// The name as listed (`webhook`, `jsonl_file`, a `callback_settings` name): names its cursor file and its
    /// metrics' `callback` label.
    pub name: String,
    pub sink: CallbackSink,
    /// Gets records of requests answered with a status below 400.
    pub success: bool,
    /// Gets records of requests answered with 400 or above.
    pub failure: bool,
    /// Records per POST (or per file write).
    pub batch_size: usize,
    /// How long a partial batch may wait for more records.
    pub flush_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallbackSink {
    Webhook {
        /// A secret: URLs can carry tokens.
        url: Secret,
        /// The environment's headers, then the config's over them.
        headers: Vec<(String, Secret)>,
    },
    JsonlFile {
        path: PathBuf,
    },
    Otlp(OtlpConfig),
}

/// Where and how the `otel` callback exports spans.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// The traces endpoint (`.../v1/traces`). A secret: URLs can carry tokens.
    pub url: Secret,
    pub headers: Vec<(String, Secret)>,
    pub encoding: OtlpEncoding,
    /// The resource's `service.name`.
    pub service_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `http/protobuf`, the OpenTelemetry default.
    Protobuf,
    /// `http/json`.
    Json,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Webhook,
    JsonlFile,
    Otlp,
}

impl CallbackConfig {
    /// Whether a record with this HTTP status goes to this sink.
    pub fn wants(&self, status: u16) -> bool {
        if status < 400 {
            self.success
        } else {
            self.failure
        }
    }
}

/// The sink a listed name means: its `callback_type`, else the built-in name; `None`: not one tollgate has.
fn kind_of(name: &str, settings: Option<&RawCallbackSettings>) -> Option<Kind> {
    match settings.and_then(|s| s.callback_type.as_deref()).unwrap_or(name) {
        "webhook" | "generic" | "generic_api" => Some(Kind::Webhook),
        "jsonl_file" => Some(Kind::JsonlFile),
        "otel" | "opentelemetry" | "otlp" => Some(Kind::Otlp),
        _ => None,
    }
}

/// LiteLLM's `GENERIC_LOGGER_HEADERS` format: `key1=value1,key2=value2` (also OpenTelemetry's
/// `OTEL_EXPORTER_OTLP_HEADERS`, whose values are then percent-decoded).
fn env_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|item| item.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

pub(super) fn resolve(
    litellm: &RawLitellmSettings,
    settings: Option<&BTreeMap<String, RawCallbackSettings>>,
    env: &dyn EnvLookup,
    warnings: &mut Vec<String>,
) -> Result<Vec<CallbackConfig>, ConfigError> {
    let empty = BTreeMap::new();
    let settings = settings.unwrap_or(&empty);
    // (name, success, failure), in the order first listed.
    let mut listed: Vec<(String, bool, bool)> = Vec::new();
    let lists = [
        ("success_callback", &litellm.success_callback, true, false),
        ("failure_callback", &litellm.failure_callback, false, true),
        ("callbacks", &litellm.callbacks, true, true),
    ];
    for (key, names, success, failure) in lists {
        for name in names.iter().flatten() {
            let name = name.trim();
            if kind_of(name, settings.get(name)).is_none() {
                warnings.push(format!(
                    "`litellm_settings.{key}`: not supported yet: {name} (ignored; tollgate delivers to `webhook` / \
                     `generic_api`, `jsonl_file` and `otel`)"
                ));
                continue;
            }
            match listed.iter_mut().find(|(n, _, _)| n == name) {
                Some(entry) => {
                    entry.1 |= success;
                    entry.2 |= failure;
                }
                None => listed.push((name.to_owned(), success, failure)),
            }
        }
    }
    for name in settings.keys() {
        if !listed.iter().any(|(n, _, _)| n == name) {
            warnings.push(format!(
                "`callback_settings.{name}` is not named by a supported callback in litellm_settings.success_callback, \
                 failure_callback or callbacks; it is ignored"
            ));
        }
    }
    let default = RawCallbackSettings::default();
    listed
        .into_iter()
        .map(|(name, success, failure)| {
            let raw = settings.get(&name).unwrap_or(&default);
            callback(name, raw, success, failure, env)
        })
        .collect()
}

fn callback(
    name: String,
    raw: &RawCallbackSettings,
    mut success: bool,
    mut failure: bool,
    env: &dyn EnvLookup,
) -> Result<CallbackConfig, ConfigError> {
    let path = |key: &str| format!("callback_settings.{name}.{key}");
    if let Some(types) = &raw.event_types {
        let mut wanted = (false, false);
        for t in types {
            match t.as_str() {
                "llm_api_success" => wanted.0 = true,
                "llm_api_failure" => wanted.1 = true,
                other => {
                    return Err(ConfigError::invalid(
                        path("event_types"),
                        format!("`{other}` is not an event type: llm_api_success or llm_api_failure"),
                    ))
                }
            }
        }
        success &= wanted.0;
        failure &= wanted.1;
    }
    if let Some(format) = raw.log_format.as_deref().filter(|f| *f != "json_array") {
        return Err(ConfigError::invalid(
            path("log_format"),
            format!("`{format}` is not supported yet: tollgate sends json_array"),
        ));
    }
    let batch_size = raw.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
        return Err(ConfigError::invalid(
            path("batch_size"),
            format!("must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"),
        ));
    }
    let interval = raw.flush_interval.unwrap_or(DEFAULT_FLUSH_INTERVAL_SECS);
    let flush_interval = Duration::try_from_secs_f64(interval)
        .map_err(|_| ConfigError::invalid(path("flush_interval"), format!("must be seconds, got {interval}")))?;
    let sink = match kind_of(&name, Some(raw)) {
        Some(Kind::Webhook) => webhook(&name, raw, env)?,
        Some(Kind::JsonlFile) => {
            CallbackSink::JsonlFile { path: PathBuf::from(raw.path.as_deref().unwrap_or(DEFAULT_JSONL_PATH)) }
        }
        Some(Kind::Otlp) => CallbackSink::Otlp(otlp::resolve(&name, raw, env)?),
        None => return Err(ConfigError::invalid(path("callback_type"), "not a callback type tollgate has")),
    };
    Ok(CallbackConfig { name, sink, success, failure, batch_size, flush_interval })
}

fn webhook(name: &str, raw: &RawCallbackSettings, env: &dyn EnvLookup) -> Result<CallbackSink, ConfigError> {
    let (key, url) = match configured_endpoint(name, raw) {
        Some(configured) => configured,
        None => match env.get("GENERIC_LOGGER_ENDPOINT") {
            Some(url) => ("GENERIC_LOGGER_ENDPOINT".to_owned(), url),
            None => {
                return Err(ConfigError::invalid(
                    format!("callback_settings.{name}.endpoint"),
                    "the webhook has no endpoint: set it (or `url`), or the GENERIC_LOGGER_ENDPOINT variable",
                ))
            }
        },
    };
    let url = checked_url(key, &url)?;
    let mut headers: Vec<(String, String)> =
        env.get("GENERIC_LOGGER_HEADERS").map(|h| env_headers(&h)).unwrap_or_default();
    config_headers_over(&mut headers, raw);
    Ok(CallbackSink::Webhook { url, headers: checked_headers(name, headers)? })
}

/// The endpoint `callback_settings.<name>` sets (`endpoint`, else `url`), with the key that set it.
fn configured_endpoint(name: &str, raw: &RawCallbackSettings) -> Option<(String, String)> {
    match (&raw.endpoint, &raw.url) {
        (Some(url), _) => Some((format!("callback_settings.{name}.endpoint"), url.clone())),
        (None, Some(url)) => Some((format!("callback_settings.{name}.url"), url.clone())),
        (None, None) => None,
    }
}

/// `url` as a callback's endpoint: http or https with a host; else an error naming `key`.
fn checked_url(key: String, url: &str) -> Result<Secret, ConfigError> {
    match url::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Secret::new(url.trim())),
        _ => Err(ConfigError::invalid(key, "must be an http:// or https:// URL")),
    }
}

/// `callback_settings.<name>.headers` over the environment's `headers` (names compared without case).
fn config_headers_over(headers: &mut Vec<(String, String)>, raw: &RawCallbackSettings) {
    for (k, v) in &raw.headers {
        headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
}

/// Headers a callback sends, each a valid name and value (values are secrets).
fn checked_headers(name: &str, headers: Vec<(String, String)>) -> Result<Vec<(String, Secret)>, ConfigError> {
    for (k, v) in &headers {
        let valid = awc::http::header::HeaderName::from_bytes(k.as_bytes()).is_ok()
            && awc::http::header::HeaderValue::from_str(v).is_ok();
        if !valid {
            return Err(ConfigError::invalid(
                format!("callback_settings.{name}.headers"),
                format!("`{k}` is not a valid header name, or its value is not a valid header value"),
            ));
        }
    }
    Ok(headers.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
}

/// The `otel` callback's settings: OpenTelemetry's exporter variables, LiteLLM's, and `callback_settings.otel`.
mod otlp {
    use super::*;

    /// OpenTelemetry's default OTLP/HTTP traces endpoint.
    const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

    pub(super) fn resolve(
        name: &str,
        raw: &RawCallbackSettings,
        env: &dyn EnvLookup,
    ) -> Result<OtlpConfig, ConfigError> {
        let first = |vars: &[&'static str]| vars.iter().find_map(|v| env.get(v).map(|value| (*v, value)));
        // LiteLLM's OTEL_EXPORTER names the exporter; only OTLP over HTTP is sent.
        if let Some(exporter) =
            env.get("OTEL_EXPORTER").filter(|e| !matches!(e.as_str(), "otlp_http" | "otlp" | "http"))
        {
            return Err(ConfigError::invalid(
                "OTEL_EXPORTER",
                format!("`{exporter}` is not supported yet: tollgate exports spans over OTLP/HTTP (otlp_http)"),
            ));
        }
        let encoding = match first(&["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
            None => OtlpEncoding::Protobuf,
            Some((_, p)) if p == "http/protobuf" => OtlpEncoding::Protobuf,
            Some((_, p)) if p == "http/json" => OtlpEncoding::Json,
            Some((var, p)) => {
                return Err(ConfigError::invalid(
                    var,
                    format!("`{p}` is not supported yet: tollgate sends http/protobuf or http/json"),
                ))
            }
        };
        let (key, url) = match configured_endpoint(name, raw) {
            Some(configured) => configured,
            None => {
                match first(&["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_ENDPOINT"]) {
                    // The generic endpoint is a base to which the signal's path is added (OTLP exporter spec).
                    Some(("OTEL_EXPORTER_OTLP_ENDPOINT", base)) => (
                        "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                        format!("{}/v1/traces", base.trim().trim_end_matches('/')),
                    ),
                    Some((var, url)) => (var.to_owned(), url),
                    None => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".to_owned(), DEFAULT_ENDPOINT.to_owned()),
                }
            }
        };
        let url = checked_url(key, &url)?;
        let mut headers: Vec<(String, String)> =
            match first(&["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_HEADERS"]) {
                Some((_, text)) => env_headers(&text)
                    .into_iter()
                    .map(|(k, v)| (k, percent_encoding::percent_decode_str(&v).decode_utf8_lossy().into_owned()))
                    .collect(),
                None => Vec::new(),
            };
        config_headers_over(&mut headers, raw);
        let service_name =
            env.get("OTEL_SERVICE_NAME").filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "tollgate".to_owned());
        Ok(OtlpConfig { url, headers: checked_headers(name, headers)?, encoding, service_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<(Vec<CallbackConfig>, Vec<String>), String> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let config = super::super::Config::load_str(yaml, &lookup).map_err(|e| e.to_string())?;
        Ok((config.logging.callbacks, config.warnings))
    }

    #[test]
    fn callback_lists_route_success_and_failure_and_unknown_names_warn() {
        let yaml = "litellm_settings:\n  success_callback: [webhook, langfuse]\n  failure_callback: [webhook, errors]\n  callbacks: [jsonl_file, datadog]\ncallback_settings:\n  webhook: {url: 'http://127.0.0.1:9/in', headers: {Authorization: Bearer x}, batch_size: 10, flush_interval: 0.5}\n  errors: {callback_type: generic_api, endpoint: 'https://logs.example/errors'}\n  jsonl_file: {path: /tmp/cb.jsonl}\n";
        let (callbacks, warnings) = load(yaml, &[("GENERIC_LOGGER_HEADERS", "X-Team=a, Authorization=old")])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let names: Vec<(&str, bool, bool)> =
            callbacks.iter().map(|c| (c.name.as_str(), c.success, c.failure)).collect();
        assert_eq!(names, [("webhook", true, true), ("errors", false, true), ("jsonl_file", true, true)]);
        let CallbackSink::Webhook { url, headers } = &callbacks[0].sink else { unreachable!("a webhook") };
        assert_eq!(url.expose(), "http://127.0.0.1:9/in");
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(headers, [("X-Team", "a"), ("Authorization", "Bearer x")], "the config's header wins");
        assert_eq!((callbacks[0].batch_size, callbacks[0].flush_interval), (10, Duration::from_millis(500)));
        assert_eq!(callbacks[2].sink, CallbackSink::JsonlFile { path: "/tmp/cb.jsonl".into() });
        assert!(!callbacks[1].wants(200) && callbacks[1].wants(500) && callbacks[0].wants(404));
        let all = warnings.join("\n");
        assert!(all.contains("not supported yet: langfuse"), "{all}");
        assert!(all.contains("not supported yet: datadog"), "{all}");
        assert_eq!(warnings.len(), 2, "{all}");
    }

    #[test]
    fn callback_webhook_takes_litellms_environment_and_refuses_a_missing_endpoint() {
        let yaml = "litellm_settings: {success_callback: [generic_api]}\n";
        let (callbacks, _) = load(yaml, &[("GENERIC_LOGGER_ENDPOINT", "https://hooks.example/x")])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let CallbackSink::Webhook { url, .. } = &callbacks[0].sink else { unreachable!("a webhook") };
        assert_eq!(url.expose(), "https://hooks.example/x");
        assert_eq!((callbacks[0].batch_size, callbacks[0].flush_interval), (512, Duration::from_secs(5)));
        let missing = load(yaml, &[]).err().unwrap_or_default();
        assert!(
            missing.contains("callback_settings.generic_api.endpoint") && missing.contains("GENERIC_LOGGER_ENDPOINT"),
            "{missing}"
        );
        let bad =
            load("litellm_settings: {callbacks: [webhook]}\ncallback_settings: {webhook: {url: 'ftp://x'}}\n", &[]);
        assert!(bad.err().unwrap_or_default().contains("callback_settings.webhook.url"));
        let zero = load(
            "litellm_settings: {callbacks: [webhook]}\ncallback_settings: {webhook: {url: 'http://a', batch_size: 0}}\n",
            &[],
        );
        assert!(zero.err().unwrap_or_default().contains("batch_size"));
    }

    #[test]
    fn callback_otel_reads_opentelemetrys_and_litellms_variables() {
        let yaml = "litellm_settings: {callbacks: [otel]}\n";
        let otlp = |env: &[(&str, &str)]| match load(yaml, env) {
            Ok((callbacks, _)) => match &callbacks[0].sink {
                CallbackSink::Otlp(o) => Ok(o.clone()),
                other => Err(format!("{other:?}")),
            },
            Err(e) => Err(e),
        };
        // (environment, endpoint, encoding, headers)
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Pairs, &str, OtlpEncoding, Pairs)] = &[
            (&[], "http://localhost:4318/v1/traces", OtlpEncoding::Protobuf, &[]),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")],
                "http://collector:4318/v1/traces",
                OtlpEncoding::Protobuf,
                &[],
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://b/traces"),
                ],
                "https://b/traces",
                OtlpEncoding::Protobuf,
                &[],
            ),
            (
                &[
                    ("OTEL_ENDPOINT", "http://c:4318/v1/traces"),
                    ("OTEL_EXPORTER", "otlp_http"),
                    ("OTEL_HEADERS", "x-honeycomb-team=k%3D1"),
                ],
                "http://c:4318/v1/traces",
                OtlpEncoding::Protobuf,
                &[("x-honeycomb-team", "k=1")],
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret,x=y")],
                "http://localhost:4318/v1/traces",
                OtlpEncoding::Json,
                &[("api-key", "secret"), ("x", "y")],
            ),
        ];
        for (env, url, encoding, headers) in cases {
            let o = otlp(env).unwrap_or_else(|e| unreachable!("{env:?}: {e}"));
            assert_eq!((o.url.expose(), o.encoding), (*url, *encoding), "{env:?}");
            let got: Vec<(&str, &str)> = o.headers.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
            assert_eq!(got, *headers, "{env:?}");
            assert_eq!(o.service_name, "tollgate");
        }
        let refused: &[(&[(&str, &str)], &str)] = &[
            (&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], "OTEL_EXPORTER_OTLP_PROTOCOL"),
            (&[("OTEL_EXPORTER", "console")], "OTEL_EXPORTER"),
            (&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ];
        for (env, named) in refused {
            let error = otlp(env).err().unwrap_or_default();
            assert!(error.contains(named), "{env:?}: {error}");
        }
        let named = load(
            "litellm_settings: {success_callback: [otel]}\ncallback_settings: {otel: {endpoint: 'http://x:1/v1/traces', headers: {a: b}}}\n",
            &[("OTEL_SERVICE_NAME", "gateway-eu"), ("OTEL_EXPORTER_OTLP_HEADERS", "a=env")],
        );
        let (callbacks, _) = named.unwrap_or_else(|e| unreachable!("{e}"));
        let CallbackSink::Otlp(o) = &callbacks[0].sink else { unreachable!("otel") };
        assert_eq!((o.url.expose(), o.service_name.as_str()), ("http://x:1/v1/traces", "gateway-eu"));
        assert_eq!(o.headers.iter().map(|(k, v)| (k.as_str(), v.expose())).collect::<Vec<_>>(), [("a", "b")]);
        assert!((callbacks[0].success, callbacks[0].failure) == (true, false));
    }

    #[test]
    fn callback_event_types_narrow_a_callback_and_unused_settings_warn() {
        let yaml = "litellm_settings: {callbacks: [webhook]}\ncallback_settings:\n  webhook: {url: 'http://a', event_types: [llm_api_failure]}\n  spare: {url: 'http://b'}\n";
        let (callbacks, warnings) = load(yaml, &[]).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((callbacks[0].success, callbacks[0].failure), (false, true));
        assert!(warnings.iter().any(|w| w.contains("callback_settings.spare")), "{warnings:?}");
    }
}
