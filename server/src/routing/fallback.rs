//! Retries and fallbacks: what to do after a call failed, decided from the failure's class (never its message) and
//! the config's plan. Pure functions: the time to wait comes out, the request path sleeps it.

use std::time::Duration;

use crate::{
    config::RetrySettings,
    error::ApiError,
    llm::{ErrorClass, UpstreamFailure},
};

/// Why a request moves on to another model group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackKind {
    /// The group's deployments failed (5xx, 429, timeouts, unreachable) or none was available.
    General,
    /// The prompt is longer than the model's context window.
    ContextWindow,
    /// The provider's content policy refused the request.
    ContentPolicy,
}

/// What a failed call leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Another call in the same group may succeed (the deployment is unwell, or busy).
    Retry,
    /// No deployment of this group can serve it; another group might.
    Fallback(FallbackKind),
    /// The request itself is at fault: no other call would go differently.
    Stop,
}

/// The upstream statuses that are the request's fault: never retried (401 and 403 are the deployment's key, which
/// another call of the same deployment would present again; another deployment is tried by fallback only).
const CALLER_FAULTS: [u16; 6] = [400, 401, 403, 404, 413, 422];

pub fn recovery(error: &ApiError) -> Recovery {
    match error {
        ApiError::Upstream(u) => match (u.code.as_deref(), u.failure) {
            (Some("context_length_exceeded"), _) => Recovery::Fallback(FallbackKind::ContextWindow),
            (Some("content_policy_violation"), _) => Recovery::Fallback(FallbackKind::ContentPolicy),
            // Not ready yet (its token is being fetched): another deployment may be.
            (Some("deployment_not_ready"), _) => Recovery::Retry,
            (_, UpstreamFailure::Status(s)) if CALLER_FAULTS.contains(&s) => Recovery::Stop,
            (_, failure) if failure.counts_against_deployment() => Recovery::Retry,
            _ => Recovery::Stop,
        },
        ApiError::NoHealthyDeployment { .. } => Recovery::Fallback(FallbackKind::General),
        ApiError::ContextWindowExceeded { .. } => Recovery::Fallback(FallbackKind::ContextWindow),
        ApiError::Request(_)
        | ApiError::Unsupported(_)
        | ApiError::BadBody(_)
        | ApiError::BodyTimeout { .. }
        | ApiError::PayloadTooLarge { .. }
        | ApiError::Unauthorized
        | ApiError::ModelNotFound(_)
        | ApiError::RouteNotFound(_)
        | ApiError::ReloadFailed(_)
        | ApiError::Access(_)
        | ApiError::RateLimited(_)
        | ApiError::BudgetExceeded { .. }
        | ApiError::Exhausted { .. } => Recovery::Stop,
    }
}

/// How many retries within the group a request gets when a call failed with `error`: `retry_policy`'s number for
/// the error's class when the config sets one (LiteLLM's `RetryPolicy`), else `num_retries`. Only failures
/// [`recovery`] calls [`Recovery::Retry`] are retried at all, whatever the policy says.
pub fn retries_for(settings: &RetrySettings, error: &ApiError) -> u32 {
    let class = match error {
        ApiError::Upstream(u) => ErrorClass::of(u.failure, u.code.as_deref()),
        _ => None,
    };
    class.and_then(|c| settings.retry_policy.get(c)).unwrap_or(settings.num_retries)
}

/// The groups to try after `model`'s failed for `kind`, in order, at most `max_fallbacks`: the request's own
/// `fallbacks` when it sent some, else the config's for `kind` (context-window and content-policy lists first, then
/// the general ones), else `default_fallbacks`.
pub fn fallback_groups<'a>(
    settings: &'a RetrySettings,
    model: &str,
    kind: FallbackKind,
    requested: Option<&'a [String]>,
) -> Vec<&'a str> {
    let general = || settings.fallbacks.get(model).map(Vec::as_slice).unwrap_or(&settings.default_fallbacks);
    let specific = match kind {
        FallbackKind::General => None,
        FallbackKind::ContextWindow => settings.context_window_fallbacks.get(model),
        FallbackKind::ContentPolicy => settings.content_policy_fallbacks.get(model),
    };
    let mut out: Vec<&str> = Vec::new();
    let candidates = match requested {
        Some(list) => list.iter().chain([].iter()),
        None => specific.map(Vec::as_slice).unwrap_or(&[]).iter().chain(general().iter()),
    };
    for group in candidates {
        if group != model && !out.contains(&group.as_str()) {
            out.push(group);
        }
    }
    out.truncate(settings.max_fallbacks as usize);
    out
}

/// The longest a retry of the same deployment may wait (its backoff, or the upstream's `retry-after`): beyond it,
/// the request moves on (another group), or the caller gets the error with the upstream's `retry-after` to back
/// off itself, rather than a connection held silent.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
const BACKOFF_BASE: Duration = Duration::from_millis(250);

/// How long to wait before retry number `retry` (from 1). A retry on a deployment not yet tried waits only the
/// configured minimum; one on a deployment already tried backs off exponentially (with `jitter` in `[0, 1)`
/// adding up to half again) and honours the upstream's `retry-after`. `None`: do not retry, the wait would be
/// longer than [`MAX_RETRY_WAIT`].
pub fn retry_delay(
    minimum: Duration,
    retry: u32,
    same_deployment: bool,
    upstream_retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    if !same_deployment {
        return Some(minimum);
    }
    let backoff = BACKOFF_BASE.saturating_mul(1 << retry.saturating_sub(1).min(10));
    let backoff = backoff.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 2.0);
    let wait = backoff.max(minimum).max(upstream_retry_after.unwrap_or_default());
    (wait <= MAX_RETRY_WAIT).then_some(wait)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::llm::UpstreamError;

    fn upstream(failure: UpstreamFailure, code: Option<&str>) -> ApiError {
        ApiError::Upstream(Box::new(UpstreamError {
            failure,
            deployment: "d".into(),
            message: "m".into(),
            kind: None,
            code: code.map(str::to_owned),
            param: None,
            headers: Vec::new(),
        }))
    }

    #[test]
    fn recovery_follows_the_failure_class() {
        use FallbackKind::*;
        use UpstreamFailure::*;
        let cases = [
            (upstream(Status(500), None), Recovery::Retry),
            (upstream(Status(503), Some("overloaded")), Recovery::Retry),
            (upstream(Status(429), Some("rate_limit_exceeded")), Recovery::Retry),
            (upstream(Status(408), None), Recovery::Retry),
            (upstream(Timeout, None), Recovery::Retry),
            (upstream(Unreachable, None), Recovery::Retry),
            (upstream(ErrorInBody, None), Recovery::Retry),
            (upstream(Malformed, None), Recovery::Retry),
            (upstream(Status(503), Some("deployment_not_ready")), Recovery::Retry),
            (upstream(Status(400), None), Recovery::Stop),
            (upstream(Status(401), Some("invalid_api_key")), Recovery::Stop),
            (upstream(Status(403), None), Recovery::Stop),
            (upstream(Status(404), None), Recovery::Stop),
            (upstream(Status(413), None), Recovery::Stop),
            (upstream(Status(409), None), Recovery::Stop),
            (upstream(Status(400), Some("context_length_exceeded")), Recovery::Fallback(ContextWindow)),
            (upstream(Status(400), Some("content_policy_violation")), Recovery::Fallback(ContentPolicy)),
            (ApiError::NoHealthyDeployment { model: "m".into(), retry_after_secs: 1 }, Recovery::Fallback(General)),
            (ApiError::ModelNotFound("m".into()), Recovery::Stop),
            (ApiError::Unauthorized, Recovery::Stop),
        ];
        for (error, want) in cases {
            assert_eq!(recovery(&error), want, "{error:?}");
        }
    }

    fn settings() -> RetrySettings {
        let map = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect())).collect()
        };
        RetrySettings {
            num_retries: 2,
            retry_policy: crate::llm::PerClass::default(),
            retry_after: Duration::ZERO,
            fallbacks: map(&[("a", &["b", "c", "a"])]),
            default_fallbacks: vec!["d".into()],
            context_window_fallbacks: map(&[("a", &["long"])]),
            content_policy_fallbacks: map(&[("a", &["lenient", "b"])]),
            max_fallbacks: 5,
        }
    }

    #[test]
    fn fallback_groups_by_kind_request_and_limit() {
        use FallbackKind::*;
        let s = settings();
        let requested = vec!["x".to_owned(), "y".to_owned()];
        let cases: &[(&str, FallbackKind, Option<&[String]>, &[&str])] = &[
            ("a", General, None, &["b", "c"]),
            ("a", ContextWindow, None, &["long", "b", "c"]),
            ("a", ContentPolicy, None, &["lenient", "b", "c"]),
            ("z", General, None, &["d"]),
            ("z", ContextWindow, None, &["d"]),
            ("a", General, Some(&requested), &["x", "y"]),
        ];
        for (model, kind, req, want) in cases {
            assert_eq!(fallback_groups(&s, model, *kind, *req), *want, "{model} {kind:?}");
        }
        let limited = RetrySettings { max_fallbacks: 1, ..settings() };
        assert_eq!(fallback_groups(&limited, "a", General, None), ["b"]);
    }

    #[test]
    fn retry_policy_replaces_num_retries_for_its_class() {
        use UpstreamFailure::*;
        let mut s = settings();
        s.retry_policy.set(ErrorClass::Timeout, Some(5));
        s.retry_policy.set(ErrorClass::RateLimit, Some(0));
        let cases = [
            (upstream(Timeout, None), 5),
            (upstream(Status(408), None), 5),
            (upstream(Status(429), Some("rate_limit_exceeded")), 0),
            (upstream(Status(500), None), 2),
            (upstream(Unreachable, None), 2),
            (ApiError::NoHealthyDeployment { model: "m".into(), retry_after_secs: 1 }, 2),
        ];
        for (error, want) in cases {
            assert_eq!(retries_for(&s, &error), want, "{error:?}");
        }
    }

    #[test]
    fn retries_back_off_only_on_a_deployment_already_tried() {
        let ms = Duration::from_millis;
        let cases = [
            (ms(0), 1, false, None, 0.0, Some(ms(0))),
            (ms(300), 1, false, Some(ms(9000)), 0.0, Some(ms(300))),
            (ms(0), 1, true, None, 0.0, Some(ms(250))),
            (ms(0), 2, true, None, 0.0, Some(ms(500))),
            // 250 ms × 2² × (1 + 0.999 / 2)
            (ms(0), 3, true, None, 0.999, Some(ms(1499))),
            (ms(0), 1, true, Some(ms(2000)), 0.0, Some(ms(2000))),
            (ms(0), 1, true, Some(Duration::from_secs(30)), 0.0, None),
            (ms(700), 1, true, None, 0.0, Some(ms(700))),
        ];
        for (minimum, retry, same, upstream, jitter, want) in cases {
            let got = retry_delay(minimum, retry, same, upstream, jitter);
            assert_eq!(
                got.map(|d| d.as_millis()),
                want.map(|d| d.as_millis()),
                "{minimum:?} {retry} {same} {upstream:?}"
            );
        }
    }
}
