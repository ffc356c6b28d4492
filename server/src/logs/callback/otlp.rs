//! The `otel` callback's body: one span per request log record, as an OTLP `ExportTraceServiceRequest` in
//! protobuf (`http/protobuf`, OpenTelemetry's default) or in OTLP/JSON (`http/json`).
//!
//! A span follows OpenTelemetry's GenAI semantic conventions: named `{gen_ai.operation.name} {gen_ai.request.model}`,
//! kind CLIENT (tollgate calls a model on the caller's behalf), `gen_ai.provider.name` (and the older
//! `gen_ai.system`), request and response model, input and output tokens, finish reasons (OpenAI's names, whatever
//! the provider), `error.type` and an ERROR status for a failed request. What the conventions do not name is under
//! `tollgate.*` (request id, cost, cache tokens, attempts, fallback, caller). Never a key, a provider key or
//! credentials: the record carries none (`api_base` is stored without them).
//!
//! Only records with a span (`LogRecord::trace`: taken when spans are exported and the caller's trace is sampled)
//! become spans; the encoder skips the rest.

use std::borrow::Cow;

use serde_json::{json, Value as Json};

use crate::{
    config::{OtlpConfig, OtlpEncoding},
    hex::encode as hex,
    logs::LogRecord,
    trace_context::SpanIds,
};

const SCOPE: &str = "tollgate";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// OTLP `SpanKind`.
const SPAN_KIND_CLIENT: u64 = 3;
/// OTLP `StatusCode`: unset for answered requests, as the conventions ask; error for failed ones.
const STATUS_ERROR: u64 = 2;

#[derive(Debug, Clone, PartialEq)]
enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Strs(&'a [String]),
}

#[derive(Debug)]
struct Span<'a> {
    ids: SpanIds,
    name: String,
    start_ns: u64,
    end_ns: u64,
    attributes: Vec<(&'static str, Value<'a>)>,
    /// The ERROR status's message, for a failed request.
    error: Option<&'a str>,
}

/// The content type a body of `encoding` is sent with.
pub fn content_type(encoding: OtlpEncoding) -> &'static str {
    match encoding {
        OtlpEncoding::Protobuf => "application/x-protobuf",
        OtlpEncoding::Json => "application/json",
    }
}

/// The export request for the records that carry a span; `None` when none does (nothing to send).
pub fn encode(records: &[LogRecord], config: &OtlpConfig) -> Option<Vec<u8>> {
    let spans: Vec<Span<'_>> = records.iter().filter_map(span).collect();
    if spans.is_empty() {
        return None;
    }
    let resource = [
        ("service.name", Value::Str(Cow::Borrowed(&config.service_name))),
        ("service.version", Value::Str(Cow::Borrowed(VERSION))),
    ];
    Some(match config.encoding {
        OtlpEncoding::Protobuf => protobuf::export(&resource, &spans),
        OtlpEncoding::Json => json::export(&resource, &spans),
    })
}

/// GenAI's `gen_ai.operation.name` for a route.
fn operation(route: &str) -> Option<&'static str> {
    match route.strip_prefix("/v1").unwrap_or(route) {
        "/chat/completions" | "/messages" => Some("chat"),
        "/completions" => Some("text_completion"),
        "/embeddings" => Some("embeddings"),
        _ => None,
    }
}

/// GenAI's `gen_ai.provider.name` for a provider as LiteLLM names it (its well-known values; others as they are).
fn provider_name(provider: &str) -> &str {
    match provider {
        "bedrock" | "bedrock_converse" => "aws.bedrock",
        "azure" | "azure_ai" => "azure.ai.openai",
        "gemini" => "gcp.gemini",
        "vertex_ai" | "vertex_ai_beta" => "gcp.vertex_ai",
        "mistral" => "mistral_ai",
        "watsonx" => "ibm.watsonx.ai",
        "xai" => "x_ai",
        other => other,
    }
}

fn span(r: &LogRecord) -> Option<Span<'_>> {
    let ids = r.trace?;
    let op = operation(&r.route);
    let name = match op {
        Some(op) if !r.model_group.is_empty() => format!("{op} {}", r.model_group),
        Some(op) => op.to_owned(),
        None => format!("tollgate {}", r.route),
    };
    let mut a: Vec<(&'static str, Value<'_>)> = Vec::with_capacity(24);
    fn text(s: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(s))
    }
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    if let Some(op) = op {
        a.push(("gen_ai.operation.name", text(op)));
    }
    if let Some(provider) = r.provider.as_deref() {
        a.push(("gen_ai.provider.name", text(provider_name(provider))));
        a.push(("gen_ai.system", text(provider_name(provider))));
    }
    if !r.model_group.is_empty() {
        a.push(("gen_ai.request.model", text(&r.model_group)));
    }
    if let Some(model) = r.response_model.as_deref() {
        a.push(("gen_ai.response.model", text(model)));
    }
    if !r.finish_reasons.is_empty() {
        a.push(("gen_ai.response.finish_reasons", Value::Strs(&r.finish_reasons)));
    }
    if r.deployment.is_some() {
        a.push(("gen_ai.usage.input_tokens", int(r.prompt_tokens)));
        a.push(("gen_ai.usage.output_tokens", int(r.completion_tokens)));
    }
    if let Some(base) = r.api_base.as_deref().and_then(|b| url::Url::parse(b).ok()) {
        if let Some(host) = base.host_str() {
            a.push(("server.address", Value::Str(Cow::Owned(host.to_owned()))));
        }
        if let Some(port) = base.port_or_known_default() {
            a.push(("server.port", Value::Int(i64::from(port))));
        }
    }
    a.push(("http.route", text(&r.route)));
    a.push(("http.response.status_code", Value::Int(i64::from(r.status))));
    let failed = r.status >= 400 || r.error_class.is_some();
    if failed {
        let class = r.error_class.as_deref().map_or_else(|| Cow::Owned(r.status.to_string()), Cow::Borrowed);
        a.push(("error.type", Value::Str(class)));
    }
    a.push(("tollgate.request_id", text(&r.request_id)));
    a.push(("tollgate.stream", Value::Bool(r.streamed)));
    if let Some(cost) = r.cost_nanos {
        a.push(("tollgate.cost_usd", Value::Double(cost as f64 / 1e9)));
    }
    a.push(("tollgate.accounting", text(&r.accounting)));
    if r.cache_read_tokens > 0 {
        a.push(("tollgate.usage.cache_read_tokens", int(r.cache_read_tokens)));
    }
    if r.cache_write_tokens > 0 {
        a.push(("tollgate.usage.cache_write_tokens", int(r.cache_write_tokens)));
    }
    if r.reasoning_tokens > 0 {
        a.push(("tollgate.usage.reasoning_tokens", int(r.reasoning_tokens)));
    }
    a.push(("tollgate.attempts", Value::Int(i64::from(r.attempts))));
    let optional = [
        ("tollgate.deployment", &r.deployment),
        ("tollgate.fallback", &r.fallback),
        ("tollgate.key_alias", &r.key_alias),
        ("tollgate.team_id", &r.team_id),
        ("tollgate.user_id", &r.user_id),
        ("tollgate.end_user", &r.end_user),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            a.push((key, text(v)));
        }
    }
    if let Some(first) = r.first_byte_at_ms {
        a.push(("tollgate.time_to_first_byte_ms", Value::Int(first.saturating_sub(r.started_at_ms))));
    }
    let nanos = |ms: i64| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
    Some(Span {
        ids,
        name,
        start_ns: nanos(r.started_at_ms),
        end_ns: nanos(r.ended_at_ms.max(r.started_at_ms)),
        attributes: a,
        error: failed.then(|| r.error_message.as_deref().unwrap_or("")),
    })
}

/// OTLP/JSON: protobuf's JSON mapping with OTLP's exceptions (ids as hex, enums as numbers).
mod json {
    use super::*;

    fn value(v: &Value<'_>) -> Json {
        match v {
            Value::Str(s) => json!({ "stringValue": s }),
            // 64-bit integers are strings in protobuf's JSON mapping.
            Value::Int(n) => json!({ "intValue": n.to_string() }),
            Value::Double(d) => json!({ "doubleValue": d }),
            Value::Bool(b) => json!({ "boolValue": b }),
            Value::Strs(items) => {
                json!({ "arrayValue": { "values": items.iter().map(|s| json!({ "stringValue": s })).collect::<Vec<_>>() } })
            }
        }
    }

    fn attributes(attrs: &[(&str, Value<'_>)]) -> Json {
        attrs.iter().map(|(k, v)| json!({ "key": k, "value": value(v) })).collect()
    }

    pub(super) fn export(resource: &[(&str, Value<'_>)], spans: &[Span<'_>]) -> Vec<u8> {
        let spans: Vec<Json> = spans
            .iter()
            .map(|s| {
                let mut span = json!({
                    "traceId": hex(&s.ids.trace_id),
                    "spanId": hex(&s.ids.span_id),
                    "name": s.name,
                    "kind": SPAN_KIND_CLIENT,
                    "startTimeUnixNano": s.start_ns.to_string(),
                    "endTimeUnixNano": s.end_ns.to_string(),
                    "attributes": attributes(&s.attributes),
                    "status": match s.error {
                        Some(message) => json!({ "code": STATUS_ERROR, "message": message }),
                        None => json!({}),
                    },
                });
                if let Some(parent) = s.ids.parent_span_id {
                    span["parentSpanId"] = json!(hex(&parent));
                }
                span
            })
            .collect();
        let body = json!({
            "resourceSpans": [{
                "resource": { "attributes": attributes(resource) },
                "scopeSpans": [{ "scope": { "name": SCOPE, "version": VERSION }, "spans": spans }],
            }],
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// OTLP protobuf (opentelemetry-proto's `collector/trace/v1`, `trace/v1`, `common/v1`, `resource/v1`), written by
/// hand: a handful of messages, each field by its number.
mod protobuf {
    use super::*;
    use crate::logs::codec::varint;

    const VARINT: u64 = 0;
    const FIXED64: u64 = 1;
    const LEN: u64 = 2;

    fn tag(out: &mut Vec<u8>, field: u64, wire: u64) {
        varint(out, field << 3 | wire);
    }

    fn bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
        tag(out, field, LEN);
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }

    fn message(out: &mut Vec<u8>, field: u64, build: impl FnOnce(&mut Vec<u8>)) {
        let mut inner = Vec::new();
        build(&mut inner);
        bytes(out, field, &inner);
    }

    fn uint(out: &mut Vec<u8>, field: u64, v: u64) {
        tag(out, field, VARINT);
        varint(out, v);
    }

    fn fixed64(out: &mut Vec<u8>, field: u64, v: u64) {
        tag(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }

    /// `AnyValue`: string 1, bool 2, int 3, double 4, array 5.
    fn any_value(out: &mut Vec<u8>, v: &Value<'_>) {
        match v {
            Value::Str(s) => bytes(out, 1, s.as_bytes()),
            Value::Bool(b) => uint(out, 2, u64::from(*b)),
            // int64: two's complement as a 64-bit varint.
            Value::Int(n) => uint(out, 3, *n as u64),
            Value::Double(d) => fixed64(out, 4, d.to_bits()),
            Value::Strs(items) => message(out, 5, |array| {
                for item in items.iter() {
                    message(array, 1, |any| bytes(any, 1, item.as_bytes()));
                }
            }),
        }
    }

    /// Repeated `KeyValue` (key 1, value 2) as field `field`.
    fn attributes(out: &mut Vec<u8>, field: u64, attrs: &[(&str, Value<'_>)]) {
        for (key, value) in attrs {
            message(out, field, |kv| {
                bytes(kv, 1, key.as_bytes());
                message(kv, 2, |any| any_value(any, value));
            });
        }
    }

    /// `Span`: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8, attributes 9, status 15
    /// (`Status`: message 2, code 3).
    fn span(out: &mut Vec<u8>, s: &Span<'_>) {
        bytes(out, 1, &s.ids.trace_id);
        bytes(out, 2, &s.ids.span_id);
        if let Some(parent) = &s.ids.parent_span_id {
            bytes(out, 4, parent);
        }
        bytes(out, 5, s.name.as_bytes());
        uint(out, 6, SPAN_KIND_CLIENT);
        fixed64(out, 7, s.start_ns);
        fixed64(out, 8, s.end_ns);
        attributes(out, 9, &s.attributes);
        if let Some(error) = s.error {
            message(out, 15, |status| {
                bytes(status, 2, error.as_bytes());
                uint(status, 3, STATUS_ERROR);
            });
        }
    }

    /// `ExportTraceServiceRequest`: resource_spans 1 → `ResourceSpans`: resource 1 (`Resource`: attributes 1),
    /// scope_spans 2 → `ScopeSpans`: scope 1 (`InstrumentationScope`: name 1, version 2), spans 2.
    pub(super) fn export(resource: &[(&str, Value<'_>)], spans: &[Span<'_>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(spans.len() * 600);
        message(&mut out, 1, |rs| {
            message(rs, 1, |r| attributes(r, 1, resource));
            message(rs, 2, |ss| {
                message(ss, 1, |scope| {
                    bytes(scope, 1, SCOPE.as_bytes());
                    bytes(scope, 2, VERSION.as_bytes());
                });
                for s in spans {
                    message(ss, 2, |out| span(out, s));
                }
            });
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn config(encoding: OtlpEncoding) -> OtlpConfig {
        OtlpConfig {
            url: Secret::new("http://127.0.0.1:4318/v1/traces"),
            headers: Vec::new(),
            encoding,
            service_name: "gw".into(),
        }
    }

    fn record() -> LogRecord {
        LogRecord {
            request_id: "req-1".into(),
            started_at_ms: 1_700_000_000_000,
            first_byte_at_ms: Some(1_700_000_000_120),
            ended_at_ms: 1_700_000_000_500,
            key_alias: Some("ci".into()),
            model_group: "gpt-4o".into(),
            deployment: Some("gpt-4o#0".into()),
            provider: Some("openai".into()),
            api_base: Some("https://api.openai.com/v1".into()),
            route: "/v1/chat/completions".into(),
            streamed: true,
            status: 200,
            prompt_tokens: 12,
            completion_tokens: 34,
            cost_nanos: Some(1_500_000),
            accounting: "exact".into(),
            attempts: 1,
            response_model: Some("gpt-4o-2024-08-06".into()),
            finish_reasons: vec!["stop".into()],
            trace: Some(SpanIds { trace_id: [0x4b; 16], span_id: [0xab; 8], parent_span_id: Some([0x0f; 8]) }),
            ..LogRecord::default()
        }
    }

    fn attribute<'a>(span: &'a Json, key: &str) -> &'a Json {
        span["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == key))
            .map_or(&Json::Null, |kv| &kv["value"])
    }

    #[test]
    fn otlp_json_carries_the_genai_attributes_ids_and_times() {
        let failed = LogRecord {
            request_id: "req-2".into(),
            status: 502,
            error_class: Some("upstream_unreachable".into()),
            error_message: Some("connection refused".into()),
            provider: Some("bedrock".into()),
            finish_reasons: Vec::new(),
            response_model: None,
            trace: Some(SpanIds { trace_id: [1; 16], span_id: [2; 8], parent_span_id: None }),
            ..record()
        };
        let untraced = LogRecord { trace: None, ..record() };
        let body = encode(&[record(), failed, untraced], &config(OtlpEncoding::Json)).unwrap_or_default();
        let body: Json = serde_json::from_slice(&body).unwrap_or_default();
        let rs = &body["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0], json!({"key": "service.name", "value": {"stringValue": "gw"}}));
        let spans = rs["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default();
        assert_eq!(spans.len(), 2, "the record without a span is not exported");
        let ok = &spans[0];
        assert_eq!(ok["traceId"], "4b".repeat(16));
        assert_eq!(
            (ok["spanId"].as_str(), ok["parentSpanId"].as_str()),
            (Some("abababababababab"), Some("0f0f0f0f0f0f0f0f"))
        );
        assert_eq!((ok["name"].as_str(), ok["kind"].as_u64()), (Some("chat gpt-4o"), Some(3)));
        assert_eq!(ok["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(ok["endTimeUnixNano"], "1700000000500000000");
        // (attribute, value)
        let want = [
            ("gen_ai.operation.name", json!({"stringValue": "chat"})),
            ("gen_ai.provider.name", json!({"stringValue": "openai"})),
            ("gen_ai.request.model", json!({"stringValue": "gpt-4o"})),
            ("gen_ai.response.model", json!({"stringValue": "gpt-4o-2024-08-06"})),
            ("gen_ai.usage.input_tokens", json!({"intValue": "12"})),
            ("gen_ai.usage.output_tokens", json!({"intValue": "34"})),
            ("gen_ai.response.finish_reasons", json!({"arrayValue": {"values": [{"stringValue": "stop"}]}})),
            ("server.address", json!({"stringValue": "api.openai.com"})),
            ("server.port", json!({"intValue": "443"})),
            ("tollgate.cost_usd", json!({"doubleValue": 0.0015})),
            ("tollgate.stream", json!({"boolValue": true})),
            ("tollgate.time_to_first_byte_ms", json!({"intValue": "120"})),
            ("tollgate.key_alias", json!({"stringValue": "ci"})),
            ("error.type", Json::Null),
        ];
        for (key, value) in want {
            assert_eq!(attribute(ok, key), &value, "{key}");
        }
        assert_eq!(ok["status"], json!({}), "unset for an answered request");
        let bad = &spans[1];
        assert!(bad.get("parentSpanId").is_none(), "a trace tollgate started has no parent");
        assert_eq!(bad["status"], json!({"code": 2, "message": "connection refused"}));
        assert_eq!(attribute(bad, "error.type"), &json!({"stringValue": "upstream_unreachable"}));
        assert_eq!(attribute(bad, "gen_ai.system"), &json!({"stringValue": "aws.bedrock"}));
        assert!(encode(&[LogRecord::default()], &config(OtlpEncoding::Json)).is_none(), "nothing to send");
    }

    #[test]
    fn otlp_protobuf_varints_and_layout_follow_the_wire_format() {
        // (value, encoding): protobuf's documented examples.
        let cases: &[(u64, &[u8])] = &[(0, &[0]), (1, &[1]), (150, &[0x96, 0x01]), (300, &[0xac, 0x02])];
        for (value, want) in cases {
            let mut out = Vec::new();
            crate::logs::codec::varint(&mut out, *value);
            assert_eq!(out, *want, "{value}");
        }
        let mut max = Vec::new();
        crate::logs::codec::varint(&mut max, u64::MAX);
        assert_eq!(max.len(), 10);
        let body = encode(&[record()], &config(OtlpEncoding::Protobuf)).unwrap_or_default();
        // resource_spans (field 1, length-delimited) → resource (1) → attributes (1) → key (1) "service.name".
        assert_eq!(body[0], 0x0a);
        let s = String::from_utf8_lossy(&body);
        for text in ["service.name", "gw", "gen_ai.request.model", "gpt-4o-2024-08-06", "chat gpt-4o", "stop"] {
            assert!(s.contains(text), "{text}");
        }
        // trace_id (field 1, bytes, 16 long) opens the span.
        let trace = [&[0x0a, 16][..], &[0x4b; 16][..]].concat();
        assert!(body.windows(trace.len()).any(|w| w == trace.as_slice()));
        // start_time_unix_nano: field 7, fixed64 (tag 0x39), little endian.
        let start = [&[0x39][..], &1_700_000_000_000_000_000u64.to_le_bytes()[..]].concat();
        assert!(body.windows(start.len()).any(|w| w == start.as_slice()));
    }
}
