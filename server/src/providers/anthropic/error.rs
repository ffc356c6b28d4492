//! Errors both ways: an Anthropic error response → the caller's [`UpstreamError`] ([`parse`]), and tollgate's own
//! errors in Anthropic's envelope for Anthropic callers ([`error_body`], [`error_type`]).
//!
//! Classification reads Anthropic's structured `error.type` first and the status second. Message text decides one
//! thing only: a 400 whose message starts with Anthropic's fixed phrase "prompt is too long" is
//! `context_length_exceeded` (the code context-window fallbacks look for).

use crate::providers::errors;
use actix_web::http::header::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::{
    llm::{UpstreamError, UpstreamFailure},
    secret::Secret,
};

/// Anthropic's "overloaded": shown as 503, which callers and tollgate's cooldown both know as retryable.
const OVERLOADED: u16 = 529;
/// Anthropic's phrase for a prompt over the context window ("prompt is too long: 250000 tokens > 200000
/// maximum"), matched at the start of the message only.
const CONTEXT_PHRASE: &str = "prompt is too long";

#[derive(Deserialize)]
struct Envelope {
    error: Option<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    error_code: Option<String>,
}

pub(super) fn parse(
    deployment: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    scrubbed: &[Secret],
) -> UpstreamError {
    let detail = serde_json::from_slice::<Envelope>(body.trim_ascii_start()).ok().and_then(|e| e.error);
    let (kind, message, error_code) = match detail {
        Some(d) => (d.kind, d.message, d.details.and_then(|d| d.error_code)),
        None => (None, None, None),
    };
    let message = errors::message(message, status, body, scrubbed);
    let kind = kind.unwrap_or_else(|| error_type(status).to_owned());
    let code = if status == OVERLOADED || kind == "overloaded_error" {
        Some("overloaded".to_owned())
    } else if status == 400 && starts_with_ignore_case(message.trim_start(), CONTEXT_PHRASE) {
        Some("context_length_exceeded".to_owned())
    } else {
        error_code
    };
    let passthrough = errors::passthrough(headers);
    UpstreamError {
        failure: UpstreamFailure::Status(if status == OVERLOADED { 503 } else { status }),
        deployment: deployment.to_owned(),
        message,
        // OpenAI's name for a 500 is `server_error`; Anthropic's other types are already OpenAI-like.
        kind: Some(if kind == "api_error" { "server_error".to_owned() } else { kind }),
        code,
        param: None,
        headers: passthrough,
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Anthropic's `error.type` for a status tollgate answers an Anthropic caller with.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        409 => "conflict_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        // Anthropic uses `invalid_request_error` for the other 4xx.
        s if (400..500).contains(&s) => "invalid_request_error",
        _ => "api_error",
    }
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetailOut<'a>,
}

#[derive(Serialize)]
struct ErrorDetailOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// `{"type":"error","error":{"type","message"}}`: Anthropic's error envelope, for errors tollgate answers an
/// Anthropic caller with (the status is the response's).
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    typed_error_body(error_type(status), message)
}

/// The envelope with an explicit `error.type`: the `error` event of a stream uses it too.
pub(super) fn typed_error_body(kind: &str, message: &str) -> Vec<u8> {
    let out = ErrorOut { kind: "error", error: ErrorDetailOut { kind, message } };
    // Two strings in a fixed struct: serialising into a Vec cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn err(kind: &str, message: &str) -> String {
        format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}},"request_id":"req_011"}}"#)
    }

    #[test]
    fn maps_status_type_and_code() {
        type Case<'a> = (u16, String, u16, &'a str, Option<&'a str>, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (400, err("invalid_request_error", "max_tokens: Field required"), 400, "invalid_request_error", None, "max_tokens: Field required"),
            (
                400,
                err("invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"),
                400,
                "invalid_request_error",
                Some("context_length_exceeded"),
                "prompt is too long: 250000 tokens > 200000 maximum",
            ),
            // Only the fixed phrase at the start counts: an echoed prompt that mentions it is no context error.
            (
                400,
                err("invalid_request_error", "messages.0: the prompt is too long to quote"),
                400,
                "invalid_request_error",
                None,
                "messages.0: the prompt is too long to quote",
            ),
            (500, err("api_error", "prompt is too long"), 500, "server_error", None, "prompt is too long"),
            (401, err("authentication_error", "invalid x-api-key"), 401, "authentication_error", None, "invalid x-api-key"),
            (403, err("permission_error", "no"), 403, "permission_error", None, "no"),
            (404, err("not_found_error", "model: x"), 404, "not_found_error", None, "model: x"),
            (413, err("request_too_large", "too big"), 413, "request_too_large", None, "too big"),
            (429, err("rate_limit_error", "slow down"), 429, "rate_limit_error", None, "slow down"),
            (500, err("api_error", "Internal server error"), 500, "server_error", None, "Internal server error"),
            (529, err("overloaded_error", "Overloaded"), 503, "overloaded_error", Some("overloaded"), "Overloaded"),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"image too big","details":{"error_code":"image_dimensions_too_large"}}}"#.into(),
                400,
                "invalid_request_error",
                Some("image_dimensions_too_large"),
                "image too big",
            ),
            (502, "<html>Bad Gateway</html>".into(), 502, "server_error", None, "<html>Bad Gateway</html>"),
            (529, String::new(), 503, "overloaded_error", Some("overloaded"), "upstream returned HTTP 529"),
            (504, String::new(), 504, "timeout_error", None, "upstream returned HTTP 504"),
        ];
        for (status, body, shown, kind, code, message) in cases {
            let e = parse("d#0", status, &HeaderMap::new(), body.as_bytes(), &[]);
            assert_eq!(e.failure, UpstreamFailure::Status(shown), "{body}");
            assert_eq!(
                (e.kind.as_deref(), e.code.as_deref(), e.message.as_str()),
                (Some(kind), code, message),
                "{body}"
            );
        }
        assert!(UpstreamFailure::Status(503).counts_against_deployment());
    }

    #[test]
    fn keeps_retry_after_and_renames_rate_limit_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("retry-after", "7"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2026-01-01T00:00:00Z"),
            ("request-id", "req_1"),
            ("x-should-retry", "true"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let e = parse("d#0", 429, &headers, err("rate_limit_error", "slow").as_bytes(), &[]);
        let mut got = e.headers.clone();
        got.sort();
        let want = [
            ("llm_provider-anthropic-ratelimit-requests-remaining", "0"),
            ("llm_provider-anthropic-ratelimit-tokens-reset", "2026-01-01T00:00:00Z"),
            ("retry-after", "7"),
        ];
        assert_eq!(got, want.map(|(n, v)| (n.to_owned(), v.to_owned())));
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));
    }

    #[test]
    fn error_envelopes_for_anthropic_callers() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
            (504, "timeout_error"),
            (418, "invalid_request_error"),
            (409, "conflict_error"),
            (402, "billing_error"),
        ];
        for (status, kind) in cases {
            assert_eq!(error_type(status), kind, "{status}");
        }
        assert_eq!(
            String::from_utf8_lossy(&error_body(429, "Too \"many\"")),
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Too \"many\""}}"#
        );
    }
}
