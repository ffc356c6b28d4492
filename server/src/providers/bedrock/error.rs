//! Bedrock error responses (providers.md 5.7): `{"message": ".."}` (some services `{"Message": ..}`) with the
//! error's type in the `x-amzn-errortype` header (`ThrottlingException:http://internal.amazon.com/...`; the part
//! before `:` counts), or a `__type` field where the header is missing.
//!
//! The type decides the class (status, `kind`, `code`); the HTTP status only when there is no type. Message text
//! is read for one thing only: a `ValidationException` whose message says the input is longer than the model's
//! context window (a few narrow phrases, tested negatively too) gets `code: context_length_exceeded`, which
//! context-window fallbacks look for.

use crate::providers::errors;
use actix_web::http::header::HeaderMap;
use serde::Deserialize;

use crate::{
    llm::{UpstreamError, UpstreamFailure},
    secret::Secret,
};

/// Phrases Bedrock and its models use for an input over the context window, lower-cased.
const CONTEXT_WINDOW_PHRASES: &[&str] = &["input is too long", "too many input tokens", "prompt is too long"];

#[derive(Deserialize)]
struct Body {
    #[serde(alias = "Message")]
    message: Option<String>,
    #[serde(rename = "__type")]
    kind: Option<String>,
}

/// The caller's status, `error.type` and `error.code` for an AWS error type.
fn classify(aws_type: &str, status: u16, message: &str) -> (u16, &'static str, Option<&'static str>) {
    match aws_type {
        "ThrottlingException" => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        // A quota, not a momentary throttle; still a 429 so clients back off.
        "ServiceQuotaExceededException" => (429, "rate_limit_error", Some("insufficient_quota")),
        "ValidationException" if is_context_window(message) => {
            (400, "invalid_request_error", Some("context_length_exceeded"))
        }
        "ValidationException" => (400, "invalid_request_error", None),
        "AccessDeniedException" => (403, "permission_error", None),
        "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException" => {
            (403, "authentication_error", Some("invalid_credentials"))
        }
        "ResourceNotFoundException" => (404, "not_found_error", Some("model_not_found")),
        "ModelNotReadyException" | "ServiceUnavailableException" => (503, "service_unavailable", None),
        "ModelTimeoutException" => (408, "timeout_error", None),
        // The model failed (Bedrock's 424): a bad gateway from the caller's side.
        "ModelErrorException" | "ModelStreamErrorException" => (502, "server_error", None),
        "InternalServerException" | "InternalFailure" => (500, "server_error", None),
        _ => (status, by_status(status), None),
    }
}

fn by_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

fn is_context_window(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    CONTEXT_WINDOW_PHRASES.iter().any(|p| lower.contains(p))
}

pub(super) fn parse(
    deployment: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    scrubbed: &[Secret],
) -> UpstreamError {
    let parsed: Option<Body> = serde_json::from_slice(body.trim_ascii_start()).ok();
    let header_type = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or_default().trim().to_owned());
    // `__type` may be namespaced (`com.amazon.coral.service#ThrottlingException`).
    let body_type =
        parsed.as_ref().and_then(|b| b.kind.as_deref()).map(|t| t.rsplit('#').next().unwrap_or(t).to_owned());
    let aws_type = header_type.filter(|t| !t.is_empty()).or(body_type).unwrap_or_default();
    let message = errors::message(parsed.and_then(|b| b.message), status, body, scrubbed);
    let (status, kind, code) = classify(&aws_type, status, &message);
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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.insert(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        map
    }

    fn parsed(status: u16, error_type: Option<&'static str>, body: &str) -> UpstreamError {
        let h = match error_type {
            Some(t) => headers(&[("x-amzn-errortype", t)]),
            None => HeaderMap::new(),
        };
        parse("bedrock#0", status, &h, body.as_bytes(), &[Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")])
    }

    #[test]
    fn error_types_decide_status_kind_and_code() {
        let t = |s: &'static str| Some(s);
        let cases: &[(u16, Option<&'static str>, &str, u16, &str, Option<&str>)] = &[
            (
                429,
                t("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
                "Too many requests, please wait before trying again.",
                429,
                "rate_limit_error",
                Some("rate_limit_exceeded"),
            ),
            (
                400,
                t("ServiceQuotaExceededException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
                "quota",
                429,
                "rate_limit_error",
                Some("insufficient_quota"),
            ),
            (
                400,
                t("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
                "Malformed input request: #: extraneous key [foo] is not permitted",
                400,
                "invalid_request_error",
                None,
            ),
            (
                400,
                t("ValidationException"),
                "Input is too long for requested model.",
                400,
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
            (
                400,
                t("ValidationException"),
                "The model returned the following errors: too many input tokens",
                400,
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
            (
                400,
                t("ValidationException"),
                "prompt is too long: 210000 tokens > 200000 maximum",
                400,
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
            (
                403,
                t("AccessDeniedException"),
                "You don't have access to the model with the specified model ID.",
                403,
                "permission_error",
                None,
            ),
            (
                403,
                t("UnrecognizedClientException"),
                "The security token included in the request is invalid.",
                403,
                "authentication_error",
                Some("invalid_credentials"),
            ),
            (
                403,
                t("InvalidSignatureException"),
                "The request signature we calculated does not match the signature you provided.",
                403,
                "authentication_error",
                Some("invalid_credentials"),
            ),
            (
                404,
                t("ResourceNotFoundException"),
                "Could not resolve the foundation model from the provided model identifier.",
                404,
                "not_found_error",
                Some("model_not_found"),
            ),
            (429, t("ModelNotReadyException"), "Model is not ready", 503, "service_unavailable", None),
            (
                503,
                t("ServiceUnavailableException"),
                "Bedrock is unable to process your request.",
                503,
                "service_unavailable",
                None,
            ),
            (408, t("ModelTimeoutException"), "Model has timed out", 408, "timeout_error", None),
            (424, t("ModelErrorException"), "The model failed", 502, "server_error", None),
            (500, t("InternalServerException"), "Internal error", 500, "server_error", None),
            // No type header: `__type` in the body, else the status.
            (
                429,
                None,
                r#"{"__type":"com.amazon.coral.service#ThrottlingException","message":"slow"}"#,
                429,
                "rate_limit_error",
                Some("rate_limit_exceeded"),
            ),
            (502, None, "<html>Bad Gateway</html>", 502, "server_error", None),
            (418, t("SomethingNewException"), "teapot", 418, "invalid_request_error", None),
        ];
        for (status, error_type, message, want_status, kind, code) in cases {
            let body = if message.starts_with('{') || message.starts_with('<') {
                message.to_string()
            } else {
                serde_json::json!({ "message": message }).to_string()
            };
            let e = parsed(*status, *error_type, &body);
            assert_eq!(e.failure, UpstreamFailure::Status(*want_status), "{error_type:?} {message}");
            assert_eq!((e.kind.as_deref(), e.code.as_deref()), (Some(*kind), *code), "{error_type:?} {message}");
        }
    }

    #[test]
    fn context_window_patterns_are_narrow() {
        // Validation errors that mention length or tokens but are not about the context window.
        for message in [
            "The maximum tokens you requested exceeds the model limit of 4096.",
            "Input is too short",
            "Too many tools were provided.",
            "max_tokens: 300000 > 64000, which is the maximum allowed number of output tokens",
            "The text field in the ContentBlock object is blank.",
        ] {
            let e = parsed(400, Some("ValidationException"), &serde_json::json!({ "message": message }).to_string());
            assert_eq!(e.code, None, "{message}");
        }
        // The phrase outside a ValidationException is not read at all.
        let e = parsed(500, Some("InternalServerException"), r#"{"message":"Input is too long"}"#);
        assert_eq!(e.code, None);
    }

    #[test]
    fn messages_are_kept_scrubbed_and_backoff_headers_pass() {
        let e = parsed(
            403,
            Some("InvalidSignatureException"),
            r#"{"Message":"bad secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY here"}"#,
        );
        assert_eq!(e.message, "bad secret **** here");
        assert_eq!(parsed(503, None, "").message, "upstream returned HTTP 503");
        let h =
            headers(&[("x-amzn-errortype", "ThrottlingException"), ("retry-after", "3"), ("x-amzn-requestid", "r")]);
        let e = parse("d", 429, &h, br#"{"message":"slow"}"#, &[]);
        assert_eq!(e.headers, vec![("retry-after".to_owned(), "3".to_owned())]);
        assert_eq!((e.message.as_str(), e.deployment.as_str()), ("slow", "d"));
    }
}
