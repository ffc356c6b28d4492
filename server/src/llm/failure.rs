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
