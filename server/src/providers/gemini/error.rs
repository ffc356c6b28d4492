//! Google's error responses (`{"error":{"code","message","status","details"}}`, google.rpc.Status) as the
//! caller's error: the status the caller should see, an OpenAI-style `type`, and a `code`.
//!
//! Classification reads the structured `status` and `details[].reason` first; message text is consulted only for
//! the context-window case, which Google gives no code of its own, with a pattern narrow enough to be tested
//! against near misses (quota messages that name input tokens).

use crate::providers::errors;
use actix_web::http::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    llm::{UpstreamError, UpstreamFailure},
    secret::Secret,
};

/// The `error` member of a Google error body (its numeric `code` repeats the HTTP status and is not read).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct GoogleError {
    pub message: Option<String>,
    pub status: Option<String>,
    #[serde(default)]
    pub details: Vec<Value>,
}

impl GoogleError {
    /// `details[].reason` of the `google.rpc.ErrorInfo` entry (`API_KEY_INVALID`, ...).
    fn reason(&self) -> Option<&str> {
        self.details.iter().find_map(|d| d.get("reason")?.as_str())
    }

    /// `details[].retryDelay` of the `google.rpc.RetryInfo` entry, in whole seconds rounded up (`"17s"`,
    /// `"0.5s"`).
    fn retry_delay_secs(&self) -> Option<u64> {
        let delay = self.details.iter().find_map(|d| d.get("retryDelay")?.as_str())?;
        let secs: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| secs.ceil() as u64)
    }
}

/// The body's error: `{"error":{..}}`, or the same inside a one-element array (what the stream endpoint sends
/// without `alt=sse`).
fn google_error(body: &[u8]) -> Option<GoogleError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        One { error: GoogleError },
        Many(Vec<Body>),
    }
    let mut body = serde_json::from_slice::<Body>(body.trim_ascii_start()).ok()?;
    loop {
        match body {
            Body::One { error } => return Some(error),
            Body::Many(list) => body = list.into_iter().next()?,
        }
    }
}

/// Whether an `INVALID_ARGUMENT` message says the prompt is longer than the model's context window. Gemini:
/// "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."; Vertex: "... the
/// input token count is 40000 but model only supports up to 32768 ...". Quota messages that name an input-token
/// metric come as `RESOURCE_EXHAUSTED` and never reach this test.
fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("input token count")
        && (m.contains("exceeds the maximum number of tokens") || m.contains("but model only supports up to"))
}

/// The status the caller sees, its OpenAI-style type and code.
fn classify(http: u16, e: &GoogleError, message: &str) -> (u16, Option<&'static str>, Option<String>) {
    // Google answers a bad key with 400 INVALID_ARGUMENT; the caller should see what it is, a 401.
    if e.reason() == Some("API_KEY_INVALID") {
        return (401, Some("authentication_error"), Some("invalid_api_key".into()));
    }
    let Some(status) = e.status.as_deref() else {
        return (http, None, None);
    };
    let kind = match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => "invalid_request_error",
        "UNAUTHENTICATED" => "authentication_error",
        "PERMISSION_DENIED" => "permission_error",
        "NOT_FOUND" => "not_found_error",
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        "DEADLINE_EXCEEDED" => "timeout_error",
        "INTERNAL" | "UNAVAILABLE" | "UNKNOWN" | "DATA_LOSS" => "server_error",
        _ => return (http, None, Some(status.to_owned())),
    };
    let code = match status {
        "INVALID_ARGUMENT" if is_context_overflow(message) => "context_length_exceeded".to_owned(),
        "RESOURCE_EXHAUSTED" => "rate_limit_exceeded".to_owned(),
        other => other.to_owned(),
    };
    (http, Some(kind), Some(code))
}

/// An error response as the caller's error, with `scrubbed` values (the key, header values, the current token)
/// masked in the message.
pub(super) fn parse(
    deployment: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    scrubbed: &[Secret],
) -> UpstreamError {
    let error = google_error(body);
    let message = errors::message(error.as_ref().and_then(|e| e.message.clone()), status, body, scrubbed);
    let (seen, kind, code) = match &error {
        Some(e) => classify(status, e, &message),
        None => (status, None, None),
    };
    let mut passthrough = errors::passthrough(headers);
    // Google states its back-off in the body (RetryInfo), not in a header; the caller reads `retry-after`.
    if !passthrough.iter().any(|(n, _)| n == "retry-after") {
        if let Some(secs) = error.as_ref().and_then(GoogleError::retry_delay_secs) {
            passthrough.push(("retry-after".to_owned(), secs.to_string()));
        }
    }
    UpstreamError {
        failure: UpstreamFailure::Status(seen),
        deployment: deployment.to_owned(),
        message,
        kind: kind.map(str::to_owned),
        code,
        param: None,
        headers: passthrough,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn body(code: u16, status: &str, message: &str, details: &str) -> String {
        format!(r#"{{"error":{{"code":{code},"message":"{message}","status":"{status}","details":[{details}]}}}}"#)
    }

    #[test]
    fn statuses_map_to_the_callers_status_type_and_code() {
        let key = r#"{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}"#;
        let retry = r#"{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"16.2s"}"#;
        // HTTP, Google status, details; then what the caller sees: status, type, code, retry-after ("" = none).
        let cases = [
            (400, "INVALID_ARGUMENT", "", 400, "invalid_request_error", "INVALID_ARGUMENT", ""),
            (400, "INVALID_ARGUMENT", key, 401, "authentication_error", "invalid_api_key", ""),
            (400, "FAILED_PRECONDITION", "", 400, "invalid_request_error", "FAILED_PRECONDITION", ""),
            (401, "UNAUTHENTICATED", "", 401, "authentication_error", "UNAUTHENTICATED", ""),
            (403, "PERMISSION_DENIED", "", 403, "permission_error", "PERMISSION_DENIED", ""),
            (404, "NOT_FOUND", "", 404, "not_found_error", "NOT_FOUND", ""),
            (429, "RESOURCE_EXHAUSTED", retry, 429, "rate_limit_error", "rate_limit_exceeded", "17"),
            (500, "INTERNAL", "", 500, "server_error", "INTERNAL", ""),
            (503, "UNAVAILABLE", "", 503, "server_error", "UNAVAILABLE", ""),
            (504, "DEADLINE_EXCEEDED", "", 504, "timeout_error", "DEADLINE_EXCEEDED", ""),
            (409, "ABORTED", "", 409, "", "ABORTED", ""),
        ];
        let some = |s: &'static str| (!s.is_empty()).then_some(s);
        for (http, status, details, want_status, kind, code, retry_after) in cases {
            let text = body(http, status, "upstream words", details);
            let e = parse("d#0", http, &HeaderMap::new(), text.as_bytes(), &[]);
            let got_retry = e.headers.iter().find(|(n, _)| n == "retry-after").map(|(_, v)| v.as_str());
            assert_eq!(
                (e.failure, e.kind.as_deref(), e.code.as_deref(), got_retry, e.message.as_str()),
                (UpstreamFailure::Status(want_status), some(kind), some(code), some(retry_after), "upstream words"),
                "{text}"
            );
        }
    }

    #[test]
    fn context_overflow_is_recognised_narrowly() {
        let cases = [
            ("INVALID_ARGUMENT", "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).", true),
            ("INVALID_ARGUMENT", "Unable to submit request because the input token count is 40000 but model only supports up to 32768. Reduce the input token count and try again.", true),
            // Near misses: a quota on an input-token metric, an output limit, a bad max_output_tokens value.
            ("RESOURCE_EXHAUSTED", "Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_input_token_count, limit: 250000. The input token count exceeds the maximum number of tokens per minute", false),
            ("INVALID_ARGUMENT", "The output token count exceeds the maximum number of tokens allowed (8192).", false),
            ("INVALID_ARGUMENT", "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), \"lots\"", false),
            ("INVALID_ARGUMENT", "input token count", false),
        ];
        for (status, message, overflow) in cases {
            let e = parse("d", 400, &HeaderMap::new(), body(400, status, message, "").as_bytes(), &[]);
            assert_eq!(e.code.as_deref() == Some("context_length_exceeded"), overflow, "{message}");
        }
    }

    #[test]
    fn odd_bodies_secrets_and_headers() {
        let secrets = [Secret::new("AIzaSyFAKE-key-0123456789")];
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("retry-after"), HeaderValue::from_static("3"));
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                r#"[{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}]"#,
                "overloaded",
                Some("server_error"),
            ),
            (
                r#"{"error":{"code":400,"message":"API key AIzaSyFAKE-key-0123456789 is bad","status":"INVALID_ARGUMENT"}}"#,
                "API key **** is bad",
                Some("invalid_request_error"),
            ),
            ("<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>", None),
            ("", "upstream returned HTTP 502", None),
            (
                r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"retryDelay":"30s"}]}}"#,
                r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"retryDelay":"30s"}]}}"#,
                Some("rate_limit_error"),
            ),
        ];
        for (text, message, kind) in cases {
            let e = parse("d", 502, &headers, text.as_bytes(), &secrets);
            assert_eq!((e.message.as_str(), e.kind.as_deref()), (*message, *kind), "{text}");
            // The header the upstream sent wins over the body's RetryInfo.
            assert_eq!(e.headers, vec![("retry-after".to_owned(), "3".to_owned())], "{text}");
        }
    }
}
