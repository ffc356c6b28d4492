//! Why an upstream call failed. Retry, cooldown and accounting decisions read these classes, never message
//! strings.

/// Why an upstream call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The upstream answered with an error status.
    Status(u16),
    /// A limit expired before the response started: connecting, the headers, a stream's first event, a whole
    /// answer's first byte.
    Timeout,
    /// Could not connect, or the connection broke (or the body ended) before the response started.
    Unreachable,
    /// A 2xx response whose body, or one of whose stream events, was an error object.
    ErrorInBody,
    /// A 2xx response whose body the provider's dialect could not read (not the JSON it documents).
    Malformed,
}

impl UpstreamFailure {
    /// Failures that say the deployment itself is unwell (counts toward its cooldown), as opposed to a bad request.
    pub fn counts_against_deployment(self) -> bool {
        match self {
            Self::Status(s) => s == 408 || s == 429 || s >= 500,
            Self::Timeout | Self::Unreachable | Self::ErrorInBody | Self::Malformed => true,
        }
    }
}

/// An upstream failure as the caller will see it. `message` never contains the deployment's secrets.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub failure: UpstreamFailure,
    pub deployment: String,
    pub message: String,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
    /// `retry-after`, `retry-after-ms` and the provider's rate-limit headers (already renamed
    /// `llm_provider-x-ratelimit-*`), passed through to the caller.
    pub headers: Vec<(String, String)>,
}

impl UpstreamError {
    /// The upstream's `retry-after` (seconds) or `retry-after-ms`, whichever it sent.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let header = |name: &str| self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim());
        let secs = header("retry-after-ms")
            .and_then(|v| v.parse::<f64>().ok())
            .map(|ms| ms / 1000.0)
            .or_else(|| header("retry-after").and_then(|v| v.parse::<f64>().ok()))?;
        std::time::Duration::try_from_secs_f64(secs).ok()
    }
}

/// LiteLLM's exception classes, as `router_settings.allowed_fails_policy` and `retry_policy` name them
/// (`<Class>AllowedFails`, `<Class>Retries`). A failure outside them (a 404, a 409) has no class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 400, 413, 422, and a prompt over the context window (LiteLLM's `ContextWindowExceededError` is a
    /// `BadRequestError`).
    BadRequest,
    /// 401 and 403: the deployment's credentials.
    Authentication,
    /// No answer in time, or 408.
    Timeout,
    /// 429.
    RateLimit,
    /// The provider's content policy refused the request.
    ContentPolicyViolation,
    /// 5xx, an unreachable upstream, a broken or unreadable answer, an error object in a 2xx.
    InternalServer,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 6] = [
        Self::BadRequest,
        Self::Authentication,
        Self::Timeout,
        Self::RateLimit,
        Self::ContentPolicyViolation,
        Self::InternalServer,
    ];

    /// The class of a failure, by its kind and the error `code` the dialect read from the answer.
    pub fn of(failure: UpstreamFailure, code: Option<&str>) -> Option<Self> {
        if code == Some("content_policy_violation") {
            return Some(Self::ContentPolicyViolation);
        }
        Some(match failure {
            UpstreamFailure::Status(401 | 403) => Self::Authentication,
            UpstreamFailure::Status(408) | UpstreamFailure::Timeout => Self::Timeout,
            UpstreamFailure::Status(429) => Self::RateLimit,
            UpstreamFailure::Status(400 | 413 | 422) => Self::BadRequest,
            UpstreamFailure::Status(s) if s >= 500 => Self::InternalServer,
            UpstreamFailure::Status(_) => return None,
            UpstreamFailure::Unreachable | UpstreamFailure::ErrorInBody | UpstreamFailure::Malformed => {
                Self::InternalServer
            }
        })
    }

    /// LiteLLM's exception name: the prefix of the policy keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequestError",
            Self::Authentication => "AuthenticationError",
            Self::Timeout => "TimeoutError",
            Self::RateLimit => "RateLimitError",
            Self::ContentPolicyViolation => "ContentPolicyViolationError",
            Self::InternalServer => "InternalServerError",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One number per [`ErrorClass`], each `None` where the config did not set it: `allowed_fails_policy` and
/// `retry_policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerClass([Option<u32>; ErrorClass::ALL.len()]);

impl PerClass {
    pub fn get(&self, class: ErrorClass) -> Option<u32> {
        self.0[class.index()]
    }

    pub fn set(&mut self, class: ErrorClass, value: Option<u32>) {
        self.0[class.index()] = value;
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_litellms_exceptions() {
        use ErrorClass as C;
        use UpstreamFailure::*;
        let cases = [
            (Status(400), None, Some(C::BadRequest)),
            (Status(400), Some("context_length_exceeded"), Some(C::BadRequest)),
            (Status(400), Some("content_policy_violation"), Some(C::ContentPolicyViolation)),
            (Status(413), None, Some(C::BadRequest)),
            (Status(422), None, Some(C::BadRequest)),
            (Status(401), Some("invalid_api_key"), Some(C::Authentication)),
            (Status(403), None, Some(C::Authentication)),
            (Status(404), None, None),
            (Status(409), None, None),
            (Status(408), None, Some(C::Timeout)),
            (Timeout, None, Some(C::Timeout)),
            (Status(429), Some("rate_limit_exceeded"), Some(C::RateLimit)),
            (Status(500), None, Some(C::InternalServer)),
            (Status(503), Some("overloaded"), Some(C::InternalServer)),
            (Unreachable, None, Some(C::InternalServer)),
            (ErrorInBody, None, Some(C::InternalServer)),
            (Malformed, None, Some(C::InternalServer)),
        ];
        for (failure, code, want) in cases {
            assert_eq!(ErrorClass::of(failure, code), want, "{failure:?} {code:?}");
        }
    }

    #[test]
    fn per_class_values_are_independent() {
        let mut p = PerClass::default();
        assert!(p.is_empty());
        p.set(ErrorClass::Timeout, Some(4));
        assert_eq!((p.get(ErrorClass::Timeout), p.get(ErrorClass::RateLimit)), (Some(4), None));
        assert!(!p.is_empty());
    }
}
