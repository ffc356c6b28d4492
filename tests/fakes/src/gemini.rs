//! The fake Google Gemini API and Vertex AI, at their real paths, with Google's wire format (providers.md 3):
//!
//! - `POST /v1beta/models/{model}:{method}` (and `/v1/models/...`), key in `x-goog-api-key` (or `?key=`): no key
//!   is 403 `PERMISSION_DENIED`, the key `bad-key` is 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`, as
//!   Google answers.
//! - `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`: Vertex AI, which wants
//!   `Authorization: Bearer ya29.fake-…` (a token from `/token`), else 401 `UNAUTHENTICATED`.
//! - `POST /token`: the OAuth token endpoint. `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` needs an
//!   `assertion` that is an RS256 JWT (header and claims are checked: `iss`, `scope` with cloud-platform, `aud`,
//!   `iat`, `exp` at most an hour later, a signature of at least 2048 bits; the signature itself is not
//!   verified); `grant_type=refresh_token` needs a `refresh_token`. Answers
//!   `{"access_token":"ya29.fake-<seq>","expires_in":3600,"token_type":"Bearer"}`, or 400 `invalid_grant`.
//!
//! Methods: `generateContent`, `streamGenerateContent` (`?alt=sse`: SSE with `\r\n\r\n` separators and no
//! terminator; without it, one JSON array), `batchEmbedContents`, `embedContent`, and Vertex's `predict`.
//! Request bodies are checked as strictly as Google does for the common mistakes: unknown top-level fields,
//! roles other than `user`/`model`, and JSON-Schema keys Gemini rejects in function parameters (400
//! `INVALID_ARGUMENT`, "Unknown name ...").
//!
//! The model in the path picks the behaviour:
//!
//! | model           | behaviour                                                                              |
//! |-----------------|----------------------------------------------------------------------------------------|
//! | `normal`/other  | "Hello from fake gemini" (streamed in 4 pieces), finishReason STOP                     |
//! | `thinking`      | a thought part, then the text with a `thoughtSignature`                                 |
//! | `tools`         | two functionCalls: `get_weather {"city":"Paris"}` (with a signature) and `get_time {}`  |
//! | `max-tokens`    | "Hello from", finishReason MAX_TOKENS                                                   |
//! | `safety`        | finishReason SAFETY with no content (streamed: "Hello", then the SAFETY event)          |
//! | `blocked`       | no candidates, `promptFeedback.blockReason: SAFETY`                                     |
//! | `error-<N>`     | HTTP N with a Google error body (429 adds RetryInfo `retryDelay: "7s"`)                 |
//! | `error-context` | 400 INVALID_ARGUMENT "The input token count (1048577) exceeds the maximum ..."          |
//! | `stream-error`  | streams "Hello", then an `{"error":{..UNAVAILABLE..}}` event; whole: a 503              |
//! | `cut`           | streams two text events and ends the body with no finishReason; whole: connection reset|
//! | `cut-json`      | streams one event and half of the next; whole: a 200 body cut mid-JSON                  |
//! | `echo`          | the text is the request body received                                                   |
//! | `delay-<ms>`    | waits, then `normal`; `hang`: never answers                                             |
//!
//! Usage is fixed and distinct per field: `promptTokenCount` 21 (of which `cachedContentTokenCount` 8),
//! `candidatesTokenCount` 7, `thoughtsTokenCount` 5, `totalTokenCount` 33; streamed events carry running totals
//! (`candidatesTokenCount` 2, 4, 6, 7) with the rest unchanged. `blocked` and `safety` count the prompt only.
//! Every request, `/token` included, is recorded with its path and query.

use std::time::Duration;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::{mode::Mode, openai::headers_json, record::Recorder, sse};

const PIECES: [&str; 4] = ["Hello", " from", " fake", " gemini"];
const TEXT: &str = "Hello from fake gemini";
const THOUGHT: &str = "Thinking it over.";
const SIGNATURE: &str = "ZmFrZS1zaWduYXR1cmU=";
const OVERLOADED: &str = "The model is overloaded. Please try again later.";
const HANG: Duration = Duration::from_secs(3600);
/// Top-level fields of a `generateContent` request.
const REQUEST_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
    "labels",
];
/// Keys of Gemini's `Schema`.
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "items",
    "minimum",
    "maximum",
    "default",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1beta/models/{model_action}", web::post().to(gemini))
        .route("/v1/models/{model_action}", web::post().to(gemini))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{model_action}",
            web::post().to(vertex),
        )
        .route("/token", web::post().to(token));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Normal,
    Thinking,
    Tools,
    MaxTokens,
    Safety,
    Blocked,
    Error(u16),
    ContextError,
    StreamError,
    Cut,
    CutJson,
    Echo,
    Delay(u64),
    Hang,
}

impl Behaviour {
    fn of(model: &str) -> Behaviour {
        match model {
            "thinking" => return Behaviour::Thinking,
            "max-tokens" => return Behaviour::MaxTokens,
            "safety" => return Behaviour::Safety,
            "blocked" => return Behaviour::Blocked,
            "error-context" => return Behaviour::ContextError,
            "stream-error" => return Behaviour::StreamError,
            "cut" => return Behaviour::Cut,
            "cut-json" => return Behaviour::CutJson,
            _ => {}
        }
        match Mode::from_model(model) {
            Mode::Tools => Behaviour::Tools,
            Mode::Error(status) => Behaviour::Error(status),
            Mode::Echo => Behaviour::Echo,
            Mode::Delay(ms) => Behaviour::Delay(ms),
            Mode::Hang => Behaviour::Hang,
            _ => Behaviour::Normal,
        }
    }
}

fn path_and_query(req: &HttpRequest) -> String {
    req.uri().path_and_query().map_or_else(|| req.path().to_owned(), |pq| pq.as_str().to_owned())
}

fn record(req: &HttpRequest, body: &[u8], rec: &Recorder) -> u64 {
    let parsed = serde_json::from_slice(body).unwrap_or(Value::Null);
    rec.request(&path_and_query(req), headers_json(req), parsed)
}

/// Google's error body: `{"error":{"code","message","status","details"?}}`.
fn google_error(status: u16, rpc_status: &str, message: &str, details: Option<Value>) -> HttpResponse {
    let mut error = json!({"code": status, "message": message, "status": rpc_status});
    if let Some(d) = details {
        error["details"] = d;
    }
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST)).json(json!({"error": error}))
}

fn invalid(message: &str) -> HttpResponse {
    google_error(400, "INVALID_ARGUMENT", message, None)
}

/// What `error-<status>` answers.
fn error_mode(status: u16, model: &str) -> HttpResponse {
    match status {
        400 => invalid("Request contains an invalid argument."),
        401 => google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", None),
        403 => google_error(403, "PERMISSION_DENIED", "The caller does not have permission", None),
        404 => google_error(
            404,
            "NOT_FOUND",
            &format!("models/{model} is not found for API version v1beta, or is not supported for generateContent."),
            None,
        ),
        429 => google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            Some(json!([
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                 "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}])),
        ),
        500 => google_error(500, "INTERNAL", "An internal error has occurred. Please retry or report.", None),
        503 => google_error(503, "UNAVAILABLE", OVERLOADED, None),
        504 => google_error(504, "DEADLINE_EXCEEDED", "The request timed out. Please try again.", None),
        other => google_error(other, "UNKNOWN", "fake upstream error", None),
    }
}

async fn gemini(req: HttpRequest, path: web::Path<String>, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let seq = record(&req, &body, &rec);
    let query_key = req.query_string().split('&').find_map(|kv| kv.strip_prefix("key=")).map(str::to_owned);
    let key = req.headers().get("x-goog-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned).or(query_key);
    match key.as_deref() {
        None | Some("") => {
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                None,
            )
        }
        Some("bad-key") => {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                Some(json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])),
            )
        }
        Some(_) => {}
    }
    serve(&req, &path, &body, seq, false).await
}

async fn vertex(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    rec: web::Data<Recorder>,
) -> HttpResponse {
    let seq = record(&req, &body, &rec);
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !auth.starts_with("Bearer ya29.fake-") {
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            None,
        );
    }
    serve(&req, &path.2, &body, seq, true).await
}

/// One `{model}:{method}` call, once authenticated.
async fn serve(req: &HttpRequest, model_action: &str, body: &[u8], seq: u64, vertex: bool) -> HttpResponse {
    let Some((model, method)) = model_action.split_once(':') else {
        return google_error(404, "NOT_FOUND", "Requested entity was not found.", None);
    };
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return invalid("Invalid JSON payload received. Unexpected token.");
    };
    let behaviour = Behaviour::of(model);
    match behaviour {
        Behaviour::Hang => {
            actix_rt::time::sleep(HANG).await;
            return HttpResponse::GatewayTimeout().finish();
        }
        Behaviour::Delay(ms) => actix_rt::time::sleep(Duration::from_millis(ms)).await,
        Behaviour::Error(status) => return error_mode(status, model),
        Behaviour::ContextError => {
            return invalid("The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).")
        }
        _ => {}
    }
    match method {
        "generateContent" | "streamGenerateContent" => {
            if let Err(problem) = check_request(&parsed) {
                return invalid(&problem);
            }
            let id = format!("fake-gemini-{seq}");
            let echoed = String::from_utf8_lossy(body);
            let reply = Reply { behaviour, id: &id, model, echoed: &echoed };
            if method == "generateContent" {
                reply.whole()
            } else if req.query_string().split('&').any(|kv| kv == "alt=sse") {
                reply.sse()
            } else {
                // Without `alt=sse` Google streams one JSON array of the same events.
                let events: Vec<String> = reply.events().iter().map(Value::to_string).collect();
                HttpResponse::Ok().content_type("application/json").body(format!("[{}]", events.join(",\r\n")))
            }
        }
        "batchEmbedContents" if !vertex => {
            let requests = parsed["requests"].as_array().cloned().unwrap_or_default();
            if requests.is_empty() {
                return invalid("* BatchEmbedContentsRequest.requests: at least one request is required");
            }
            let embeddings: Vec<Value> = requests
                .iter()
                .map(|r| json!({"values": values(&text_of(&r["content"]), r["outputDimensionality"].as_u64())}))
                .collect();
            HttpResponse::Ok().json(json!({"embeddings": embeddings}))
        }
        "embedContent" => {
            let dims = parsed["outputDimensionality"].as_u64();
            HttpResponse::Ok().json(json!({"embedding": {"values": values(&text_of(&parsed["content"]), dims)}}))
        }
        "predict" if vertex => {
            let instances = parsed["instances"].as_array().cloned().unwrap_or_default();
            let dims = parsed["parameters"]["outputDimensionality"].as_u64();
            let predictions: Vec<Value> = instances
                .iter()
                .map(|i| {
                    let text = i["content"].as_str().unwrap_or_default();
                    let tokens = text.split_whitespace().count().max(1);
                    json!({"embeddings": {"values": values(text, dims), "statistics": {"token_count": tokens, "truncated": false}}})
                })
                .collect();
            HttpResponse::Ok().json(json!({"predictions": predictions}))
        }
        _ => google_error(404, "NOT_FOUND", &format!("Method {method} is not found for model {model}."), None),
    }
}

/// The strictness of Google's request parsing that catches encoder mistakes.
fn check_request(body: &Value) -> Result<(), String> {
    let Some(obj) = body.as_object() else {
        return Err("Invalid JSON payload received. Expected an object.".into());
    };
    if let Some(unknown) = obj.keys().find(|k| !REQUEST_FIELDS.contains(&k.as_str())) {
        return Err(format!("Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."));
    }
    let contents = obj.get("contents").and_then(Value::as_array).filter(|c| !c.is_empty());
    let Some(contents) = contents else {
        return Err("* GenerateContentRequest.contents: contents is not specified".into());
    };
    for (i, content) in contents.iter().enumerate() {
        match content["role"].as_str() {
            Some("user" | "model") | None => {}
            Some(_) => return Err("Please use a valid role: user, model.".into()),
        }
        if content["parts"].as_array().is_none_or(Vec::is_empty) {
            return Err(format!("* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."));
        }
    }
    for (t, tool) in obj.get("tools").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for (f, decl) in tool["functionDeclarations"].as_array().into_iter().flatten().enumerate() {
            if let Some(params) = decl.get("parameters") {
                check_schema(params, &format!("tools[{t}].function_declarations[{f}].parameters"))?;
            }
        }
    }
    if let Some(schema) = obj.get("generationConfig").and_then(|g| g.get("responseSchema")) {
        check_schema(schema, "generation_config.response_schema")?;
    }
    Ok(())
}

fn check_schema(schema: &Value, at: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else { return Ok(()) };
    if let Some(unknown) = obj.keys().find(|k| !SCHEMA_FIELDS.contains(&k.as_str())) {
        return Err(format!("Invalid JSON payload received. Unknown name \"{unknown}\" at '{at}': Cannot find field."));
    }
    if obj.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("object"))
        && obj.get("properties").and_then(Value::as_object).is_some_and(Map::is_empty)
    {
        return Err(format!("* GenerateContentRequest.{at}.properties: should be non-empty for OBJECT type"));
    }
    for (name, prop) in obj.get("properties").and_then(Value::as_object).into_iter().flatten() {
        check_schema(prop, &format!("{at}.properties[{name}].value"))?;
    }
    if let Some(items) = obj.get("items") {
        check_schema(items, &format!("{at}.items"))?;
    }
    for (i, member) in obj.get("anyOf").and_then(Value::as_array).into_iter().flatten().enumerate() {
        check_schema(member, &format!("{at}.any_of[{i}]"))?;
    }
    Ok(())
}

fn text_of(content: &Value) -> String {
    content["parts"].as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()).collect()
}

/// The embedding of `text`, shortened to `dims` values when asked.
fn values(text: &str, dims: Option<u64>) -> Vec<f64> {
    let all = crate::openai::embed(text);
    let n = dims.map_or(all.len(), |d| (d as usize).min(all.len()));
    all[..n].to_vec()
}

/// `usageMetadata` with `candidates` output tokens so far (thoughts and cache fixed).
fn usage(candidates: u64) -> Value {
    json!({"promptTokenCount": 21, "candidatesTokenCount": candidates, "thoughtsTokenCount": 5,
           "cachedContentTokenCount": 8, "totalTokenCount": 21 + candidates + 5,
           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 21}]})
}

fn prompt_only_usage() -> Value {
    json!({"promptTokenCount": 21, "cachedContentTokenCount": 8, "totalTokenCount": 21})
}

struct Reply<'a> {
    behaviour: Behaviour,
    id: &'a str,
    model: &'a str,
    echoed: &'a str,
}

impl Reply<'_> {
    fn response(&self, parts: Option<Value>, finish: Option<&str>, usage: Value) -> Value {
        let mut candidate = Map::new();
        if let Some(parts) = parts {
            candidate.insert("content".into(), json!({"parts": parts, "role": "model"}));
        }
        if let Some(f) = finish {
            candidate.insert("finishReason".into(), f.into());
            if f == "SAFETY" {
                candidate.insert(
                    "safetyRatings".into(),
                    json!([{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": true}]),
                );
            }
        }
        candidate.insert("index".into(), 0.into());
        json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": self.model, "responseId": self.id})
    }

    fn blocked(&self) -> Value {
        json!({"promptFeedback": {"blockReason": "SAFETY",
                  "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
               "usageMetadata": prompt_only_usage(), "modelVersion": self.model, "responseId": self.id})
    }

    fn tool_parts() -> [Value; 2] {
        [
            json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE}),
            json!({"functionCall": {"name": "get_time", "args": {}}}),
        ]
    }

    fn whole(&self) -> HttpResponse {
        let text = |t: &str| json!([{"text": t}]);
        let body = match self.behaviour {
            Behaviour::Thinking => self.response(
                Some(json!([{"text": THOUGHT, "thought": true}, {"text": TEXT, "thoughtSignature": SIGNATURE}])),
                Some("STOP"),
                usage(7),
            ),
            Behaviour::Tools => self.response(Some(Value::from(Self::tool_parts().to_vec())), Some("STOP"), usage(7)),
            Behaviour::MaxTokens => self.response(Some(text("Hello from")), Some("MAX_TOKENS"), usage(7)),
            Behaviour::Safety => self.response(None, Some("SAFETY"), prompt_only_usage()),
            Behaviour::Blocked => self.blocked(),
            Behaviour::StreamError => return error_mode(503, self.model),
            Behaviour::Echo => self.response(Some(text(self.echoed)), Some("STOP"), usage(7)),
            Behaviour::Cut => {
                let start = format!("{{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": \"{}", PIECES[0]);
                return HttpResponse::Ok()
                    .content_type("application/json")
                    .body(sse::broken_after(vec![Bytes::from(start)]));
            }
            Behaviour::CutJson => {
                let whole = self.response(Some(text(TEXT)), Some("STOP"), usage(7)).to_string();
                let half = whole[..whole.len() / 2].to_owned();
                return HttpResponse::Ok().content_type("application/json").body(half);
            }
            _ => self.response(Some(text(TEXT)), Some("STOP"), usage(7)),
        };
        HttpResponse::Ok().json(body)
    }

    /// The stream's events (`cut` and `cut-json` also have a broken tail, see [`Reply::sse`]).
    fn events(&self) -> Vec<Value> {
        let text = |t: &str| Some(json!([{"text": t}]));
        let pieces = |finish: Option<&str>| -> Vec<Value> {
            PIECES
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let last = i + 1 == PIECES.len();
                    let seen = if last { 7 } else { 2 * (i as u64 + 1) };
                    self.response(text(p), if last { finish } else { None }, usage(seen))
                })
                .collect()
        };
        match self.behaviour {
            Behaviour::Thinking => {
                let mut events = vec![self.response(Some(json!([{"text": THOUGHT, "thought": true}])), None, usage(0))];
                events.push(self.response(
                    Some(json!([{"text": TEXT, "thoughtSignature": SIGNATURE}])),
                    Some("STOP"),
                    usage(7),
                ));
                events
            }
            Behaviour::Tools => {
                let [first, second] = Self::tool_parts();
                vec![
                    self.response(Some(json!([first])), None, usage(4)),
                    self.response(Some(json!([second])), Some("STOP"), usage(7)),
                ]
            }
            Behaviour::MaxTokens => vec![
                self.response(text("Hello"), None, usage(2)),
                self.response(text(" from"), Some("MAX_TOKENS"), usage(7)),
            ],
            Behaviour::Safety => {
                vec![self.response(text("Hello"), None, usage(2)), self.response(None, Some("SAFETY"), usage(2))]
            }
            Behaviour::Blocked => vec![self.blocked()],
            Behaviour::StreamError => vec![
                self.response(text("Hello"), None, usage(2)),
                json!({"error": {"code": 503, "message": OVERLOADED, "status": "UNAVAILABLE"}}),
            ],
            Behaviour::Echo => vec![self.response(text(self.echoed), Some("STOP"), usage(7))],
            Behaviour::Cut => pieces(None).into_iter().take(2).collect(),
            Behaviour::CutJson => pieces(None).into_iter().take(1).collect(),
            _ => pieces(Some("STOP")),
        }
    }

    fn sse(&self) -> HttpResponse {
        let mut events: Vec<Bytes> = self.events().iter().map(|e| Bytes::from(format!("data: {e}\r\n\r\n"))).collect();
        if self.behaviour == Behaviour::CutJson {
            let next = self.response(Some(json!([{"text": PIECES[1]}])), None, usage(4)).to_string();
            events.push(Bytes::from(format!("data: {}", &next[..next.len() / 2])));
        }
        sse::sse(events)
    }
}

/// `POST /token`: the OAuth 2.0 token endpoint.
async fn token(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let form = parse_form(&body);
    let recorded = Value::Object(form.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
    let seq = rec.request(&path_and_query(&req), headers_json(&req), recorded);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let checked = match field("grant_type") {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => check_assertion(field("assertion").unwrap_or_default()),
        Some("refresh_token") if field("refresh_token").is_some_and(|t| !t.is_empty()) => Ok(()),
        Some("refresh_token") => Err("Missing required parameter: refresh_token".to_owned()),
        other => Err(format!("Invalid grant_type: {}", other.unwrap_or_default())),
    };
    match checked {
        Ok(()) => HttpResponse::Ok()
            .json(json!({"access_token": format!("ya29.fake-{seq}"), "expires_in": 3600, "token_type": "Bearer"})),
        Err(description) => {
            HttpResponse::BadRequest().json(json!({"error": "invalid_grant", "error_description": description}))
        }
    }
}

/// An RS256 JWT assertion as Google's token endpoint reads it (all but the signature check).
fn check_assertion(jwt: &str) -> Result<(), String> {
    let segment = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| "Invalid JWT: not base64url".to_owned());
    let json = |s: &str| -> Result<Value, String> {
        serde_json::from_slice(&segment(s)?).map_err(|_| "Invalid JWT: a segment is not JSON".to_owned())
    };
    let [header, claims, signature] = jwt.split('.').collect::<Vec<_>>()[..] else {
        return Err("Invalid JWT: not three segments".into());
    };
    let (header, claims, signature) = (json(header)?, json(claims)?, segment(signature)?);
    if header["alg"] != "RS256" {
        return Err("Invalid JWT: alg must be RS256".into());
    }
    if !claims["iss"].as_str().is_some_and(|i| i.contains('@')) {
        return Err("Invalid JWT: iss must be a service account email".into());
    }
    if !claims["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|s| s == "https://www.googleapis.com/auth/cloud-platform"))
    {
        return Err("Invalid JWT: scope must include cloud-platform".into());
    }
    if !claims["aud"].as_str().is_some_and(|a| a.ends_with("/token")) {
        return Err("Invalid JWT: aud must be the token URI".into());
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("Invalid JWT: iat and exp must be numbers".into());
    };
    if exp <= iat || exp - iat > 3600 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes)".into());
    }
    if signature.len() < 256 {
        return Err("Invalid JWT Signature.".into());
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` pairs.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = match bytes.get(i..i + 3) {
                Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| hi * 16 + lo),
                _ => None,
            };
            match (escaped, bytes[i]) {
                (Some(b), _) => {
                    out.push(b);
                    i += 3;
                }
                (None, b'+') => {
                    out.push(b' ');
                    i += 1;
                }
                (None, b) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_by_model_name() {
        let cases = [
            ("normal", Behaviour::Normal),
            ("gemini-2.5-flash", Behaviour::Normal),
            ("tools", Behaviour::Tools),
            ("thinking", Behaviour::Thinking),
            ("max-tokens", Behaviour::MaxTokens),
            ("safety", Behaviour::Safety),
            ("blocked", Behaviour::Blocked),
            ("error-429", Behaviour::Error(429)),
            ("error-context", Behaviour::ContextError),
            ("stream-error", Behaviour::StreamError),
            ("cut", Behaviour::Cut),
            ("cut-json", Behaviour::CutJson),
            ("echo", Behaviour::Echo),
            ("delay-5", Behaviour::Delay(5)),
            ("hang", Behaviour::Hang),
        ];
        for (model, want) in cases {
            assert_eq!(Behaviour::of(model), want, "{model}");
        }
    }

    #[test]
    fn forms_decode() {
        let got = parse_form(b"grant_type=urn%3Aietf%3Aparams&x=a+b&y=%zz&empty=&lone");
        let want = [("grant_type", "urn:ietf:params"), ("x", "a b"), ("y", "%zz"), ("empty", ""), ("lone", "")];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(got, want);
        assert_eq!(parse_form(b"a=%4"), vec![("a".to_owned(), "%4".to_owned())]);
    }

    #[test]
    fn pieces_make_the_text() {
        assert_eq!(PIECES.concat(), TEXT);
    }
}
