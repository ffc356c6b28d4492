//! The Converse response (providers.md 5.4): content blocks, stop reason and usage, shared with the stream
//! decoder (`stopReason` and `usage` have the same shapes in `messageStop` and `metadata`).
//!
//! Usage: Bedrock's `inputTokens` excludes cache reads and writes (`cacheReadInputTokens`,
//! `cacheWriteInputTokens`), as Anthropic's does, so the counts are additive and become canonical through
//! [`Usage::from_additive`]; `totalTokens` is the sum of all four and is not needed. Bedrock reports no separate
//! reasoning count.

use serde::Deserialize;
use serde_json::Value;

use crate::llm::{
    chat::{DecodeError, Finish, Part, Reply, ToolCall},
    Usage,
};

#[derive(Deserialize)]
struct Response {
    output: Option<Output>,
    #[serde(rename = "stopReason")]
    stop_reason: Option<String>,
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct Output {
    message: Option<OutputMessage>,
}

#[derive(Deserialize)]
struct OutputMessage {
    #[serde(default)]
    content: Vec<Value>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

impl TokenUsage {
    pub(super) fn canonical(self) -> Usage {
        Usage::from_additive(
            self.input_tokens,
            self.cache_read_input_tokens,
            self.cache_write_input_tokens,
            self.output_tokens,
        )
    }
}

pub(super) fn decode(body: &[u8], id: String, model: &str) -> Result<Reply, DecodeError> {
    let response: Response =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("Bedrock Converse response: {e}")))?;
    let content = response.output.and_then(|o| o.message).map(|m| m.content).unwrap_or_default();
    let mut parts = Vec::with_capacity(content.len());
    for block in content {
        if let Some(part) = part_of(block)? {
            parts.push(part);
        }
    }
    Ok(Reply {
        id,
        model: model.to_owned(),
        parts,
        finish: response.stop_reason.as_deref().map(finish),
        usage: response.usage.map(TokenUsage::canonical),
    })
}

/// One output content block; `None` for kinds with no canonical part (redacted reasoning, citations, ...).
fn part_of(block: Value) -> Result<Option<Part>, DecodeError> {
    let Value::Object(mut block) = block else {
        return Err(DecodeError::new("Bedrock content block is not an object"));
    };
    if let Some(text) = block.remove("text") {
        let Value::String(text) = text else { return Err(DecodeError::new("Bedrock text block is not a string")) };
        return Ok(Some(Part::Text(text)));
    }
    if let Some(tool) = block.remove("toolUse") {
        let str_field = |name: &str| tool.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(id), Some(name)) = (str_field("toolUseId"), str_field("name")) else {
            return Err(DecodeError::new("Bedrock toolUse block without toolUseId or name"));
        };
        let arguments = match tool.get("input") {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(input) => input.to_string(),
        };
        return Ok(Some(Part::ToolCall(ToolCall { id, name, arguments })));
    }
    if let Some(reasoning) = block.get("reasoningContent").and_then(|r| r.get("reasoningText")) {
        let text = reasoning.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
        let signature = reasoning.get("signature").and_then(Value::as_str).map(str::to_owned);
        return Ok(Some(Part::Reasoning { text, signature }));
    }
    Ok(None)
}

/// `stopReason` in OpenAI's vocabulary (providers.md 9.1). Values newer than this list read as `stop`, as
/// LiteLLM does.
pub(super) fn finish(stop_reason: &str) -> Finish {
    match stop_reason {
        "tool_use" => Finish::ToolCalls,
        "max_tokens" | "model_context_window_exceeded" => Finish::Length,
        "guardrail_intervened" | "content_filtered" => Finish::ContentFilter,
        // end_turn, stop_sequence, malformed_model_output, malformed_tool_use, and anything new.
        _ => Finish::Stop,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reply(body: Value) -> Result<Reply, DecodeError> {
        decode(body.to_string().as_bytes(), "chatcmpl-x".into(), "m")
    }

    #[test]
    fn text_tools_reasoning_and_usage() {
        let body = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "Hmm.", "signature": "c2ln"}}},
                {"reasoningContent": {"redactedContent": "cmVk"}},
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 11, "outputTokens": 7, "totalTokens": 26, "cacheReadInputTokens": 5, "cacheWriteInputTokens": 3},
            "metrics": {"latencyMs": 812}
        });
        let r = reply(body).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((r.id.as_str(), r.model.as_str()), ("chatcmpl-x", "m"));
        assert_eq!(
            r.parts,
            vec![
                Part::Reasoning { text: "Hmm.".into(), signature: Some("c2ln".into()) },
                Part::Text("Checking.".into()),
                Part::ToolCall(ToolCall {
                    id: "tooluse_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into()
                }),
                Part::ToolCall(ToolCall { id: "tooluse_2".into(), name: "get_time".into(), arguments: "{}".into() }),
            ]
        );
        assert_eq!(r.finish, Some(Finish::ToolCalls));
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: 19,
                completion_tokens: 7,
                cache_read_tokens: 5,
                cache_write_tokens: 3,
                reasoning_tokens: 0
            })
        );
    }

    #[test]
    fn every_stop_reason() {
        let cases = [
            ("end_turn", Finish::Stop),
            ("stop_sequence", Finish::Stop),
            ("tool_use", Finish::ToolCalls),
            ("max_tokens", Finish::Length),
            ("model_context_window_exceeded", Finish::Length),
            ("guardrail_intervened", Finish::ContentFilter),
            ("content_filtered", Finish::ContentFilter),
            ("malformed_model_output", Finish::Stop),
            ("malformed_tool_use", Finish::Stop),
            ("something_new", Finish::Stop),
        ];
        for (reason, want) in cases {
            let body = json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": reason, "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}});
            let r = reply(body).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(r.finish, Some(want), "{reason}");
            assert_eq!(r.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((1, 1)));
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let cases = [
            "",
            "not json",
            r#"{"output":{"message":{"content":[{"text":5}]}}}"#,
            r#"{"output":{"message":{"content":[{"toolUse":{"name":"f"}}]}}}"#,
            r#"{"output":{"message":{"content":["x"]}}}"#,
            r#"{"usage":{"inputTokens":-1}}"#,
        ];
        for body in cases {
            assert!(decode(body.as_bytes(), String::new(), "m").is_err(), "{body}");
        }
        // A body without output or usage is empty, not an error: the caller sees no usage (an accounting gap).
        let r = decode(b"{}", String::new(), "m").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((r.parts.len(), r.finish, r.usage), (0, None, None));
    }
}
