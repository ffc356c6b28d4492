//! Cohere error responses as the caller's error (providers.md 6.6).
//!
//! v2 bodies are `{"id": "...", "message": "..."}` (v1: `{"message": "..."}`) with no machine-readable type or
//! code, so the class comes from the status. Message text decides only two things, each with a narrow prefix
//! that is tested against near misses: a context-window overflow (`too many tokens: ...` on a 400) and a safety
//! block (`blocked input: ...` / `blocked output: ...`).

use crate::providers::errors;
use actix_web::http::header::HeaderMap;
use serde::Deserialize;

use crate::{
    llm::{UpstreamError, UpstreamFailure},
    secret::Secret,
};

#[derive(Deserialize)]
struct WireError {
    message: Option<serde_json::Value>,
}

/// What the message says, when it says something the status does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Nothing,
    /// The prompt does not fit the model's context window.
    TooManyTokens,
    /// Cohere's safety filter refused the input or the output.
    Blocked,
}

fn classify(status: u16, message: &str) -> Said {
    let lower = message.trim_start().to_ascii_lowercase();
    if lower.starts_with("blocked input:") || lower.starts_with("blocked output:") {
        return Said::Blocked;
    }
    // v1 and v2 both open context overflows with `too many tokens:` ("...: total number of tokens in the prompt
    // cannot exceed 4081 - received 5000", "...: size limit exceeded by 11 tokens"). Only on a 400: a 429 about
    // tokens is a rate limit.
    if status == 400 && lower.starts_with("too many tokens:") {
        return Said::TooManyTokens;
    }
    Said::Nothing
}

pub(super) fn parse_error(
    scrubbed: &[Secret],
    deployment: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> UpstreamError {
    let parsed = serde_json::from_slice::<WireError>(body.trim_ascii()).ok().and_then(|e| match e.message? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    });
    let message = errors::message(parsed, status, body, scrubbed);
    let said = classify(status, &message);
    let status = match (status, said) {
        (_, Said::Blocked) => 400,
        // cohere-python calls 498 InvalidToken: a key Cohere does not accept.
        (498, _) => 401,
        // 499 ClientClosedRequest: Cohere gave up on the request; to the caller it timed out.
        (499, _) => 408,
        (s, _) => s,
    };
    let (kind, code) = match (status, said) {
        (_, Said::Blocked) => ("invalid_request_error", Some("content_policy_violation")),
        (_, Said::TooManyTokens) => ("invalid_request_error", Some("context_length_exceeded")),
        (401, _) => ("authentication_error", Some("invalid_api_key")),
        (402, _) => ("insufficient_quota", Some("insufficient_quota")),
        (403, _) => ("permission_error", None),
        (404, _) => ("not_found_error", None),
        (408, _) => ("timeout_error", None),
        (429, _) => ("rate_limit_error", Some("rate_limit_exceeded")),
        (s, _) if s >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    let passthrough = errors::passthrough(headers);
    UpstreamError {
        failure: UpstreamFailure::Status(status),
        deployment: deployment.to_owned(),
        message,
        kind: Some(kind.to_owned()),
        code: code.map(str::to_owned),
        param: None,
        headers: passthrough,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn parse(status: u16, body: &str) -> UpstreamError {
        parse_error(&[Secret::new("co-secret-key-0001")], "co#0", status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn status_kind_and_code_per_status() {
        let body = r#"{"id":"e1","message":"something went wrong"}"#;
        let cases: &[(u16, u16, &str, Option<&str>)] = &[
            (400, 400, "invalid_request_error", None),
            (401, 401, "authentication_error", Some("invalid_api_key")),
            (402, 402, "insufficient_quota", Some("insufficient_quota")),
            (403, 403, "permission_error", None),
            (404, 404, "not_found_error", None),
            (422, 422, "invalid_request_error", None),
            (429, 429, "rate_limit_error", Some("rate_limit_exceeded")),
            (498, 401, "authentication_error", Some("invalid_api_key")),
            (499, 408, "timeout_error", None),
            (500, 500, "server_error", None),
            (501, 501, "server_error", None),
            (503, 503, "server_error", None),
            (504, 504, "server_error", None),
        ];
        for (status, want_status, kind, code) in cases {
            let e = parse(*status, body);
            assert_eq!(e.failure, UpstreamFailure::Status(*want_status), "{status}");
            assert_eq!((e.kind.as_deref(), e.code.as_deref()), (Some(*kind), *code), "{status}");
            assert_eq!(e.message, "something went wrong");
            assert_eq!(e.deployment, "co#0");
        }
    }

    #[test]
    fn context_overflow_only_for_too_many_tokens_on_a_400() {
        let cases: &[(u16, &str, Option<&str>)] = &[
            (400, "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 5000. Try using a shorter prompt.", Some("context_length_exceeded")),
            (400, "too many tokens: size limit exceeded by 11 tokens. Try using shorter or fewer inputs.", Some("context_length_exceeded")),
            (400, "  Too Many Tokens: size limit exceeded", Some("context_length_exceeded")),
            // Near misses: not a context overflow.
            (429, "too many tokens: per-minute token rate limit exceeded", Some("rate_limit_exceeded")),
            (400, "invalid request: the prompt has too many tokens: ... (quoted from user input)", None),
            (400, "too many tokens per request in this batch", None),
            (400, "max_tokens cannot exceed 4000", None),
            (400, "invalid request: message must be at least 1 token long or tool results must be specified.", None),
            (500, "too many tokens: internal", None),
        ];
        for (status, message, code) in cases {
            let body = serde_json::json!({"id": "e", "message": message}).to_string();
            assert_eq!(parse(*status, &body).code.as_deref(), *code, "{status} {message}");
        }
    }

    #[test]
    fn safety_blocks_are_content_policy_violations() {
        let cases: &[(u16, &str, Option<(u16, &str)>)] = &[
            (400, "blocked output: please adjust your prompt and try again, as this generation may be a potential violation of our Usage Guidelines", Some((400, "content_policy_violation"))),
            (498, "blocked input: please adjust your prompt and try again, as it may be a potential violation of our Usage Guidelines", Some((400, "content_policy_violation"))),
            // Near misses.
            (400, "the request was blocked by a proxy", None),
            (400, "invalid request: blocked output is not a valid safety_mode", None),
        ];
        for (status, message, want) in cases {
            let e = parse(*status, &serde_json::json!({"message": message}).to_string());
            let got = (e.code.as_deref() == Some("content_policy_violation")).then_some(e.failure);
            assert_eq!(got, want.map(|(s, _)| UpstreamFailure::Status(s)), "{status} {message}");
        }
    }

    #[test]
    fn bodies_of_every_shape_and_secrets_scrubbed() {
        let cases = [
            (r#"{"id":"abc","message":"invalid api token"}"#, "invalid api token"),
            (
                r#"{"message":"model 'x' not found, make sure the correct model ID was used"}"#,
                "model 'x' not found, make sure the correct model ID was used",
            ),
            (r#"{"message":{"detail":"odd"}}"#, r#"{"detail":"odd"}"#),
            (r#"{"message":"bad key co-secret-key-0001"}"#, "bad key ****"),
            ("<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
            ("", "upstream returned HTTP 503"),
            (r#"{"message":null}"#, r#"{"message":null}"#),
        ];
        for (body, message) in cases {
            assert_eq!(parse(503, body).message, message, "{body}");
        }
        let long = "x".repeat(2000);
        assert_eq!(parse(500, &long).message.len(), 500);
    }

    #[test]
    fn retry_after_and_rate_limit_headers_pass_through() {
        let mut headers = HeaderMap::new();
        for (name, value) in [("retry-after", "7"), ("x-ratelimit-remaining-requests", "0"), ("x-debug-trace-id", "t")]
        {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let e = parse_error(&[], "co#0", 429, &headers, br#"{"message":"trial key rate limit"}"#);
        let mut got = e.headers.clone();
        got.sort();
        assert_eq!(
            got,
            [
                ("llm_provider-x-ratelimit-remaining-requests".to_owned(), "0".to_owned()),
                ("retry-after".to_owned(), "7".to_owned()),
            ]
        );
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));
    }
}
