//! What a callback receives for one record: an object shaped like LiteLLM's `StandardLoggingPayload` (the fields
//! tollgate has, by LiteLLM's names), plus a `tollgate` object with the rest of the record. `id` is tollgate's
//! request id (`x-tollgate-request-id`): delivery is at least once across crashes, so receivers dedupe by it.
//!
//! Never in a payload: a virtual key (only its SHA-256 hash), a provider key, or a URL's credentials (`api_base` is
//! stored without them).

use serde_json::{json, Value};

use crate::logs::LogRecord;

/// LiteLLM's `call_type` for a route.
fn call_type(route: &str) -> &str {
    match route {
        "/v1/chat/completions" | "/chat/completions" => "acompletion",
        "/v1/messages" => "anthropic_messages",
        "/v1/embeddings" | "/embeddings" => "aembedding",
        "/v1/completions" | "/completions" => "atext_completion",
        other => other,
    }
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

pub fn payload(r: &LogRecord) -> Value {
    let failed = r.status >= 400;
    json!({
        "id": r.request_id,
        "trace_id": r.request_id,
        "call_type": call_type(&r.route),
        "stream": r.streamed,
        "status": if failed { "failure" } else { "success" },
        "response_cost": r.cost_nanos.unwrap_or(0) as f64 / 1e9,
        "custom_llm_provider": r.provider,
        "total_tokens": r.prompt_tokens + r.completion_tokens,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "startTime": seconds(r.started_at_ms),
        "endTime": seconds(r.ended_at_ms),
        "completionStartTime": seconds(r.first_byte_at_ms.unwrap_or(r.ended_at_ms)),
        "response_time": seconds(r.ended_at_ms - r.started_at_ms),
        "model": r.model_group,
        "model_id": r.deployment,
        "model_group": r.model_group,
        "api_base": r.api_base.as_deref().unwrap_or(""),
        "metadata": {
            "user_api_key_hash": r.key_hash,
            "user_api_key_alias": r.key_alias,
            "user_api_key_team_id": r.team_id,
            "user_api_key_user_id": r.user_id,
            "user_api_key_end_user_id": r.end_user,
            "requester_ip_address": r.client_ip,
        },
        "request_tags": r.tags,
        "end_user": r.end_user,
        "requester_ip_address": r.client_ip,
        "error_str": if failed { r.error_message.as_deref() } else { None },
        "error_information": if failed {
            json!({"error_code": r.status.to_string(), "error_class": r.error_class, "error_message": r.error_message})
        } else {
            Value::Null
        },
        "tollgate": {
            "request_id": r.request_id,
            "route": r.route,
            "status_code": r.status,
            "cost_nanos": r.cost_nanos,
            "accounting": r.accounting,
            "cache_read_tokens": r.cache_read_tokens,
            "cache_write_tokens": r.cache_write_tokens,
            "reasoning_tokens": r.reasoning_tokens,
            "attempts": r.attempts,
            "fallback": r.fallback,
            "started_at_ms": r.started_at_ms,
            "first_byte_at_ms": r.first_byte_at_ms,
            "ended_at_ms": r.ended_at_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_payload_uses_litellms_names_and_never_the_key() {
        let r = LogRecord {
            request_id: "req-1".into(),
            started_at_ms: 1_000,
            first_byte_at_ms: Some(1_250),
            ended_at_ms: 2_000,
            key_hash: Some("ab12".into()),
            key_alias: Some("ci".into()),
            team_id: Some("t1".into()),
            model_group: "gpt".into(),
            deployment: Some("gpt#0".into()),
            provider: Some("openai".into()),
            route: "/v1/chat/completions".into(),
            status: 200,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_nanos: Some(1_500),
            accounting: "exact".into(),
            ..LogRecord::default()
        };
        let p = payload(&r);
        assert_eq!(p["id"], "req-1");
        assert_eq!(p["status"], "success");
        assert_eq!(p["call_type"], "acompletion");
        assert_eq!((p["prompt_tokens"].as_u64(), p["total_tokens"].as_u64()), (Some(10), Some(15)));
        assert_eq!(p["response_cost"].as_f64(), Some(1.5e-6));
        assert_eq!((p["startTime"].as_f64(), p["completionStartTime"].as_f64()), (Some(1.0), Some(1.25)));
        assert_eq!(p["metadata"]["user_api_key_hash"], "ab12");
        assert_eq!(p["metadata"]["user_api_key_team_id"], "t1");
        assert!(p["error_information"].is_null());
        let failed = payload(&LogRecord { status: 502, error_class: Some("upstream".into()), ..r });
        assert_eq!(failed["status"], "failure");
        assert_eq!(failed["error_information"]["error_code"], "502");
    }
}
