//! OpenTelemetry (issue 16): with `callbacks: [otel]`, every request becomes one span exported over OTLP/HTTP to a
//! collector (a test server here, reading OTLP/JSON), with the GenAI semantic conventions' attributes. The span
//! joins the caller's trace (`traceparent`) as a child of the caller's span, and the upstream call names the
//! span as its parent; a trace the caller did not sample is propagated but not exported. The protobuf encoding is
//! checked by the Python SDK tests with OpenTelemetry's own message classes (tests/sdk/test_otel.py).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tollgate_fakes::FakeUpstream;
use tollgate_tests::{chat_body, fake_model, post_with, serve, sse_data, Gateway, MASTER_KEY};

/// A collector: keeps the spans of every OTLP/JSON export it is sent, and each export's content type.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Value>>>,
    content_types: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
}

type Shared = web::Data<(Arc<Mutex<Vec<Value>>>, Arc<Mutex<Vec<String>>>)>;

async fn export(req: HttpRequest, body: web::Bytes, state: Shared) -> HttpResponse {
    if req.path() != "/v1/traces" {
        return HttpResponse::NotFound().finish();
    }
    let Ok(export) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().body("not OTLP/JSON");
    };
    let kind = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    state.1.lock().expect("lock").push(kind);
    let mut spans = state.0.lock().expect("lock");
    for rs in export["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for span in ss["spans"].as_array().into_iter().flatten() {
                let mut span = span.clone();
                span["resource"] = rs["resource"].clone();
                spans.push(span);
            }
        }
    }
    HttpResponse::Ok().json(json!({}))
}

impl Collector {
    fn start() -> Collector {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let content_types = Arc::new(Mutex::new(Vec::new()));
        let state = web::Data::new((spans.clone(), content_types.clone()));
        let (port, handle) = serve(move |cfg| {
            cfg.app_data(state.clone()).default_service(web::to(export));
        });
        Collector { url: format!("http://127.0.0.1:{port}"), spans, content_types, handle }
    }

    /// The span of the request `id` (its `tollgate.request_id`).
    fn span(&self, id: &str) -> Option<Value> {
        self.spans
            .lock()
            .expect("lock")
            .iter()
            .find(|s| attribute(s, "tollgate.request_id") == json!({"stringValue": id}))
            .cloned()
    }

    async fn wait_for(&self, ids: &[&str]) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<Value> = ids.iter().filter_map(|id| self.span(id)).collect();
            if found.len() == ids.len() || Instant::now() > deadline {
                return found;
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn attribute(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(Value::Null, |kv| kv["value"].clone())
}

fn text(s: &str) -> Value {
    json!({ "stringValue": s })
}

fn int(n: u64) -> Value {
    json!({ "intValue": n.to_string() })
}

/// The `traceparent` the fake upstream received with the call of request `id`.
fn upstream_traceparent(fake: &FakeUpstream, id: &str) -> Option<String> {
    fake.requests()
        .iter()
        .find(|r| r["headers"]["x-request-id"] == id)
        .and_then(|r| r["headers"]["traceparent"].as_str().map(str::to_owned))
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[actix_rt::test]
async fn each_request_is_one_span_that_joins_the_callers_trace_and_parents_the_upstream_call() {
    let collector = Collector::start();
    let fake = FakeUpstream::start();
    let models = [
        fake_model("chat", "normal", &fake, ""),
        fake_model("broken", "error-500", &fake, "      num_retries: 0\n"),
        format!(
            "  - model_name: claude\n    litellm_params:\n      model: anthropic/normal\n      api_base: {}\n      api_key: sk-fake-upstream-key-123456\n",
            fake.url
        ),
    ]
    .concat();
    let yaml = format!(
        "model_list:\n{models}general_settings: {{master_key: {MASTER_KEY}}}\nlitellm_settings: {{callbacks: [otel]}}\ncallback_settings: {{otel: {{flush_interval: 0.2, batch_size: 10}}}}\n"
    );
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_SERVICE_NAME", "gateway-under-test"),
    ];
    let gw = Gateway::start_with_env(&yaml, &env);
    let auth = format!("Bearer {MASTER_KEY}");
    let sampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let unsampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-00");
    let send = |model: &'static str, extra: Value, parent: Option<String>| {
        let (url, auth) = (gw.url.clone(), auth.clone());
        async move {
            let mut headers = vec![("Authorization", auth.as_str())];
            if let Some(p) = &parent {
                headers.push(("traceparent", p.as_str()));
                headers.push(("tracestate", "congo=t61rcWkgMzE"));
            }
            post_with(&url, "/v1/chat/completions", &headers, chat_body(model, extra)).await
        }
    };

    let plain = send("chat", json!({}), Some(sampled.clone())).await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    let streamed = send("chat", json!({"stream": true, "stream_options": {"include_usage": true}}), None).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text);
    let translated = send("claude", json!({}), Some(sampled.clone())).await;
    assert_eq!(translated.status, 200, "{}", translated.text);
    let failed = send("broken", json!({}), Some(sampled.clone())).await;
    assert_eq!(failed.status, 500, "{}", failed.text);
    let quiet = send("chat", json!({}), Some(unsampled)).await;
    assert_eq!(quiet.status, 200, "{}", quiet.text);
    let id = |r: &tollgate_tests::Reply| r.header("x-tollgate-request-id").unwrap_or_default().to_owned();
    let ids = [id(&plain), id(&streamed), id(&translated), id(&failed), id(&quiet)];

    let spans = collector.wait_for(&[&ids[0], &ids[1], &ids[2], &ids[3]]).await;
    assert_eq!(spans.len(), 4, "spans: {:#?}", collector.spans.lock().expect("lock"));
    let (plain_span, stream_span, claude_span, failed_span) = (&spans[0], &spans[1], &spans[2], &spans[3]);

    // The caller's trace, tollgate's span under the caller's, the upstream call under tollgate's.
    assert_eq!(
        (plain_span["traceId"].as_str(), plain_span["parentSpanId"].as_str()),
        (Some(CALLER_TRACE), Some(CALLER_SPAN))
    );
    let span_id = plain_span["spanId"].as_str().unwrap_or_default();
    assert!(span_id.len() == 16 && span_id != CALLER_SPAN, "{span_id}");
    assert_eq!(upstream_traceparent(&fake, &ids[0]), Some(format!("00-{CALLER_TRACE}-{span_id}-01")));
    assert_eq!((plain_span["name"].as_str(), plain_span["kind"].as_u64()), (Some("chat chat"), Some(3)));
    assert_eq!(plain_span["resource"]["attributes"][0]["value"], text("gateway-under-test"));
    let answer: Value = serde_json::from_str(&plain.text).unwrap_or_default();
    let want = [
        ("gen_ai.operation.name", text("chat")),
        ("gen_ai.provider.name", text("openai")),
        ("gen_ai.request.model", text("chat")),
        ("gen_ai.response.model", text(answer["model"].as_str().unwrap_or("?"))),
        ("gen_ai.usage.input_tokens", int(answer["usage"]["prompt_tokens"].as_u64().unwrap_or(u64::MAX))),
        ("gen_ai.usage.output_tokens", int(answer["usage"]["completion_tokens"].as_u64().unwrap_or(u64::MAX))),
        (
            "gen_ai.response.finish_reasons",
            json!({"arrayValue": {"values": [text(answer["choices"][0]["finish_reason"].as_str().unwrap_or("?"))]}}),
        ),
        ("server.address", text("127.0.0.1")),
        ("http.response.status_code", int(200)),
        ("tollgate.stream", json!({"boolValue": false})),
    ];
    for (key, value) in &want {
        assert_eq!(&attribute(plain_span, key), value, "{key}");
    }
    let start: u64 = plain_span["startTimeUnixNano"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    let end: u64 = plain_span["endTimeUnixNano"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    assert!(start > 1_600_000_000_000_000_000 && end >= start, "{start} {end}");
    assert_eq!(plain_span["status"], json!({}));

    // A caller without a trace: tollgate's span is a root, and the upstream call is its child.
    assert!(stream_span.get("parentSpanId").is_none(), "{stream_span}");
    let (trace, span) = (stream_span["traceId"].as_str().unwrap_or("?"), stream_span["spanId"].as_str().unwrap_or("?"));
    assert_eq!(upstream_traceparent(&fake, &ids[1]), Some(format!("00-{trace}-{span}-01")));
    let usage = sse_data(&streamed.text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["usage"].is_object())
        .map(|c| c["usage"].clone())
        .unwrap_or_default();
    assert_eq!(
        attribute(stream_span, "gen_ai.usage.output_tokens"),
        int(usage["completion_tokens"].as_u64().unwrap_or(u64::MAX))
    );
    assert_eq!(attribute(stream_span, "tollgate.stream"), json!({"boolValue": true}));
    assert_eq!(
        attribute(stream_span, "gen_ai.response.finish_reasons"),
        json!({"arrayValue": {"values": [text("stop")]}})
    );

    // Across dialects: the provider and the model Anthropic answered with.
    let claude: Value = serde_json::from_str(&translated.text).unwrap_or_default();
    assert_eq!(attribute(claude_span, "gen_ai.provider.name"), text("anthropic"));
    assert_eq!(attribute(claude_span, "gen_ai.response.model"), text(claude["model"].as_str().unwrap_or("?")));
    assert_eq!(
        attribute(claude_span, "gen_ai.usage.input_tokens"),
        int(claude["usage"]["prompt_tokens"].as_u64().unwrap_or(u64::MAX))
    );
    let claude_parent = upstream_traceparent(&fake, &ids[2]).unwrap_or_default();
    assert_eq!(claude_parent, format!("00-{CALLER_TRACE}-{}-01", claude_span["spanId"].as_str().unwrap_or("?")));

    // A failed request: an ERROR status with the message the caller got, and its class.
    assert_eq!(failed_span["status"]["code"], 2, "{failed_span}");
    let message = serde_json::from_str::<Value>(&failed.text).unwrap_or_default()["error"]["message"].clone();
    assert_eq!(failed_span["status"]["message"], message);
    assert!(
        attribute(failed_span, "error.type")["stringValue"].as_str().is_some_and(|t| !t.is_empty()),
        "{failed_span}"
    );
    assert_eq!(attribute(failed_span, "http.response.status_code"), int(500));

    // Not sampled by the caller: propagated with the caller's flags through tollgate's span, never exported.
    let quiet_parent = upstream_traceparent(&fake, &ids[4]).unwrap_or_default();
    assert!(
        quiet_parent.starts_with(&format!("00-{CALLER_TRACE}-")) && quiet_parent.ends_with("-00"),
        "{quiet_parent}"
    );
    assert!(!quiet_parent.contains(CALLER_SPAN), "{quiet_parent}");
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert!(collector.span(&ids[4]).is_none(), "an unsampled trace was exported");
    assert_eq!(collector.spans.lock().expect("lock").len(), 4, "one span per sampled request, each once");
    assert!(collector.content_types.lock().expect("lock").iter().all(|c| c == "application/json"));
    let tracestates: Vec<String> =
        fake.requests().iter().filter_map(|r| r["headers"]["tracestate"].as_str().map(str::to_owned)).collect();
    assert!(tracestates.iter().all(|t| t == "congo=t61rcWkgMzE") && tracestates.len() >= 3, "{tracestates:?}");
}

/// Without an `otel` callback nothing changes: the caller's `traceparent` goes upstream as it came (tested in
/// proxy.rs), and a caller without one sends none upstream.
#[actix_rt::test]
async fn without_the_otel_callback_no_trace_is_started() {
    let fake = FakeUpstream::start();
    let gw = Gateway::with_models(&fake_model("chat", "normal", &fake, ""));
    let auth = format!("Bearer {MASTER_KEY}");
    let r =
        post_with(&gw.url, "/v1/chat/completions", &[("Authorization", auth.as_str())], chat_body("chat", json!({})))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(upstream_traceparent(&fake, r.header("x-tollgate-request-id").unwrap_or_default()), None);
}
