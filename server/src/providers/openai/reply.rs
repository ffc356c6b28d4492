//! Whole (non-streamed) chat replies in OpenAI's `chat.completion` shape, both ways: read from an
//! OpenAI-compatible upstream into the canonical [`Reply`], and rendered from a canonical reply for a caller who
//! spoke OpenAI to another dialect. The `usage` object lives here too; the stream codec shares it.
//!
//! Reasoning follows LiteLLM's convention, since OpenAI's chat API has no field for it: `reasoning_content` (the
//! text, also DeepSeek's and xAI's name; OpenRouter and newer vLLM say `reasoning`) and `thinking_blocks` (one
//! block per reasoning part with its signature, which Anthropic needs to see again on the next turn).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llm::{
    chat::{DecodeError, Finish, Part, Reply, ToolCall},
    Usage,
};

/// OpenAI's `usage` object as OpenAI and compatible servers send it; also what the same-dialect relays read
/// (`pipeline/peek/`), so both paths count cache writes alike.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) prompt_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) completion_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub(crate) completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek reports cache hits here (older responses have no `prompt_tokens_details`).
    #[serde(default)]
    pub(crate) prompt_cache_hit_tokens: Option<u64>,
    /// LiteLLM's name for cache writes (what [`usage_json`] renders).
    #[serde(default)]
    pub(crate) cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PromptDetails {
    #[serde(default)]
    pub(crate) cached_tokens: Option<u64>,
    /// Newer OpenAI SDK types name cache writes here.
    #[serde(default)]
    pub(crate) cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CompletionDetails {
    #[serde(default)]
    pub(crate) reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Self {
        let (cached, cache_write) = match w.prompt_tokens_details {
            Some(d) => (d.cached_tokens, d.cache_write_tokens),
            None => (None, None),
        };
        Usage {
            prompt_tokens: w.prompt_tokens.unwrap_or(0),
            completion_tokens: w.completion_tokens.unwrap_or(0),
            cache_read_tokens: cached.or(w.prompt_cache_hit_tokens).unwrap_or(0),
            cache_write_tokens: cache_write.or(w.cache_creation_input_tokens).unwrap_or(0),
            reasoning_tokens: w.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        }
    }
}

/// OpenAI's `usage` object, fields in OpenAI's order. Cache writes, which OpenAI never reports, go in LiteLLM's
/// top-level `cache_creation_input_tokens`, only when there are some.
#[derive(Debug, Serialize)]
pub(super) struct UsageJson {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
    completion_tokens_details: ReasoningTokens,
    #[serde(skip_serializing_if = "is_zero")]
    cache_creation_input_tokens: u64,
}

#[derive(Debug, Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Debug, Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub(super) fn usage_json(u: &Usage) -> UsageJson {
    UsageJson {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
        prompt_tokens_details: CachedTokens { cached_tokens: u.cache_read_tokens },
        completion_tokens_details: ReasoningTokens { reasoning_tokens: u.reasoning_tokens },
        cache_creation_input_tokens: u.cache_write_tokens,
    }
}

/// What an upstream's `finish_reason` means. Compatible servers have their own words (Together's `eos`,
/// Mistral's `model_length`); unknown ones are a normal stop, as LiteLLM maps them.
pub(super) enum FinishReason {
    Finish(Finish),
    /// `error` (OpenRouter, Mistral) and DeepSeek's `insufficient_system_resource`: the generation failed, and
    /// must not look like a complete answer.
    Failed,
}

pub(super) fn finish_reason(raw: &str) -> FinishReason {
    FinishReason::Finish(match raw {
        "length" | "model_length" => Finish::Length,
        "tool_calls" | "function_call" => Finish::ToolCalls,
        "content_filter" => Finish::ContentFilter,
        "error" | "insufficient_system_resource" => return FinishReason::Failed,
        _ => Finish::Stop,
    })
}

/// A JSON field that should be a string but that some servers send otherwise: tool arguments as an object
/// (Ollama), or `null`.
pub(super) fn text_value(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A tool call id for servers that send none: unique within the reply, stable across decoders of the same reply.
pub(super) fn synthetic_call_id(reply_id: &str, index: impl std::fmt::Display) -> String {
    format!("call_{reply_id}_{index}")
}

/// The error of a 2xx body or stream chunk that carries `{"error": ...}` instead of an answer.
pub(super) fn error_text(error: &Value) -> (Option<String>, String) {
    match error {
        Value::Object(e) => {
            let kind = e.get("type").and_then(Value::as_str).map(str::to_owned);
            let message = match e.get("message") {
                Some(Value::String(m)) => m.clone(),
                _ => error.to_string(),
            };
            (kind, message)
        }
        Value::String(s) => (None, s.clone()),
        other => (None, other.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct WireToolCall {
    #[serde(default)]
    pub(super) index: Option<u32>,
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) function: Option<WireFunction>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WireFunction {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) arguments: Option<Value>,
}

/// LiteLLM's `thinking_blocks` entry; `redacted_thinking` blocks have no text and no canonical place.
#[derive(Debug, Deserialize)]
pub(super) struct WireThinkingBlock {
    #[serde(rename = "type", default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) thinking: Option<String>,
    #[serde(default)]
    pub(super) signature: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireReply {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    message: Option<WireMessage>,
    /// A `text_completion`'s text (OpenAI's legacy completions), where a chat completion has `message`.
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<Value>,
    #[serde(default)]
    reasoning_content: Option<Value>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default)]
    thinking_blocks: Option<Vec<WireThinkingBlock>>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

/// An OpenAI-compatible `chat.completion` body. Only the first choice is read: callers asking for `n > 1` are
/// refused before a request crosses dialects (`n` is unmapped).
pub fn decode_reply(body: &[u8]) -> Result<Reply, DecodeError> {
    // DeepSeek may send keep-alive blank lines before the body.
    let wire: WireReply = serde_json::from_slice(body.trim_ascii_start())
        .map_err(|e| DecodeError::new(format!("chat completion is not valid JSON: {e}")))?;
    if let Some(error) = wire.error.filter(|e| !e.is_null()) {
        let (_, message) = error_text(&error);
        return Err(DecodeError::new(format!("upstream returned an error: {message}")));
    }
    let id = wire.id.unwrap_or_default();
    let choice = wire.choices.unwrap_or_default().into_iter().find(|c| c.index.unwrap_or(0) == 0);
    let mut reply =
        Reply { model: wire.model.unwrap_or_default(), usage: wire.usage.map(Usage::from), ..Reply::default() };
    let Some(choice) = choice else {
        return Err(DecodeError::new("chat completion has no choices"));
    };
    if let Some(raw) = choice.finish_reason.as_deref() {
        match finish_reason(raw) {
            FinishReason::Finish(f) => reply.finish = Some(f),
            FinishReason::Failed => {
                return Err(DecodeError::new(format!("upstream generation failed (finish_reason `{raw}`)")))
            }
        }
    }
    if let Some(m) = choice.message {
        reply.parts = message_parts(m, &id)?;
    }
    if let Some(text) = text_value(choice.text).filter(|t| !t.is_empty()) {
        reply.parts.push(Part::Text(text));
    }
    reply.id = id;
    Ok(reply)
}

/// Reasoning first, then text, then tool calls: the order models produce them in.
fn message_parts(m: WireMessage, reply_id: &str) -> Result<Vec<Part>, DecodeError> {
    let mut parts = Vec::new();
    let blocks: Vec<Part> = m
        .thinking_blocks
        .unwrap_or_default()
        .into_iter()
        .filter(|b| b.kind.as_deref().is_none_or(|k| k == "thinking"))
        .map(|b| Part::Reasoning { text: b.thinking.unwrap_or_default(), signature: b.signature })
        .collect();
    if blocks.is_empty() {
        // `thinking_blocks` hold the same text as `reasoning_content`, with signatures: read one or the other.
        if let Some(text) = text_value(m.reasoning_content).or_else(|| text_value(m.reasoning)) {
            if !text.is_empty() {
                parts.push(Part::Reasoning { text, signature: None });
            }
        }
    } else {
        parts.extend(blocks);
    }
    let text = match m.content {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        // Some servers answer with content parts, as requests may carry them.
        Some(Value::Array(items)) => {
            Some(items.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<String>())
        }
        Some(other) => return Err(DecodeError::new(format!("message content is neither text nor parts: {other}"))),
    };
    // A refusal is the model's answer, in words; the canonical reply has no separate place for it.
    let text = text.filter(|t| !t.is_empty()).or_else(|| text_value(m.refusal).filter(|t| !t.is_empty()));
    if let Some(text) = text {
        parts.push(Part::Text(text));
    }
    for (i, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
        let function = call.function.ok_or_else(|| DecodeError::new("tool call without `function`"))?;
        parts.push(Part::ToolCall(ToolCall {
            id: call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| synthetic_call_id(reply_id, i)),
            name: function.name.unwrap_or_default(),
            arguments: text_value(function.arguments).unwrap_or_default(),
        }));
    }
    Ok(parts)
}

#[derive(Serialize)]
struct ReplyJson<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceJson<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageJson>,
}

#[derive(Serialize)]
struct ChoiceJson<'a> {
    index: u32,
    message: MessageJson<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    thinking_blocks: Vec<ThinkingBlockJson<'a>>,
}

#[derive(Serialize)]
pub(super) struct ToolCallJson<'a> {
    pub(super) id: &'a str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: FunctionJson<'a>,
}

#[derive(Serialize)]
pub(super) struct FunctionJson<'a> {
    pub(super) name: &'a str,
    pub(super) arguments: &'a str,
}

#[derive(Serialize)]
pub(super) struct ThinkingBlockJson<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) thinking: &'a str,
    pub(super) signature: &'a str,
}

/// A canonical reply as OpenAI's `chat.completion` object. A reply without a finish reason (the upstream did not
/// say) finishes as OpenAI's clients expect one to: `tool_calls` if it called tools, else `stop`.
pub fn encode_reply(reply: &Reply, created: u64) -> Vec<u8> {
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut signed = false;
    let mut tool_calls = Vec::new();
    for part in &reply.parts {
        match part {
            Part::Text(t) => text.get_or_insert_with(String::new).push_str(t),
            Part::Reasoning { text: r, signature } => {
                reasoning.get_or_insert_with(String::new).push_str(r);
                signed |= signature.is_some();
            }
            Part::ToolCall(c) => tool_calls.push(ToolCallJson {
                id: &c.id,
                kind: "function",
                function: FunctionJson { name: &c.name, arguments: &c.arguments },
            }),
            // Not produced by a reply decoder: images and tool results are request-side parts.
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    // Signatures only travel in `thinking_blocks`; without any, `reasoning_content` says everything.
    let thinking_blocks = if signed {
        reply
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Reasoning { text, signature } => Some(ThinkingBlockJson {
                    kind: "thinking",
                    thinking: text,
                    signature: signature.as_deref().unwrap_or_default(),
                }),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let finish_reason = match &reply.finish {
        Some(f) => f.openai(),
        None if tool_calls.is_empty() => "stop",
        None => "tool_calls",
    };
    let body = ReplyJson {
        id: &reply.id,
        object: "chat.completion",
        created,
        model: &reply.model,
        choices: [ChoiceJson {
            index: 0,
            message: MessageJson {
                role: "assistant",
                content: text.filter(|t| !t.is_empty()),
                tool_calls,
                reasoning_content: reasoning,
                thinking_blocks,
            },
            logprobs: (),
            finish_reason,
        }],
        usage: reply.usage.as_ref().map(usage_json),
    };
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn usage(prompt: u64, completion: u64, read: u64, write: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cache_read_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: reasoning,
        }
    }

    fn call(id: &str, name: &str, arguments: &str) -> Part {
        Part::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() })
    }

    fn decode(body: &Value) -> Reply {
        decode_reply(body.to_string().as_bytes()).unwrap_or_else(|e| unreachable!("{e}: {body}"))
    }

    #[test]
    fn decodes_each_finish_reason() {
        let cases = [
            ("stop", Some(Finish::Stop)),
            ("length", Some(Finish::Length)),
            ("tool_calls", Some(Finish::ToolCalls)),
            ("function_call", Some(Finish::ToolCalls)),
            ("content_filter", Some(Finish::ContentFilter)),
            ("eos", Some(Finish::Stop)),
            ("model_length", Some(Finish::Length)),
            ("something_new", Some(Finish::Stop)),
        ];
        for (raw, want) in cases {
            let body = json!({"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":raw}]});
            assert_eq!(decode(&body).finish, want, "{raw}");
        }
        let body = json!({"choices":[{"index":0,"message":{"content":"x"},"finish_reason":null}]});
        assert_eq!(decode(&body).finish, None);
        for raw in ["error", "insufficient_system_resource"] {
            let body = json!({"choices":[{"index":0,"message":{"content":""},"finish_reason":raw}]});
            assert!(decode_reply(body.to_string().as_bytes()).is_err(), "{raw} is a failure, not an answer");
        }
    }

    #[test]
    fn decodes_text_tool_calls_reasoning_and_usage() {
        let body = json!({
            "id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
            "choices":[{"index":0,"finish_reason":"tool_calls","logprobs":null,"message":{
                "role":"assistant","content":"Let me check.","refusal":null,"reasoning_content":"think",
                "tool_calls":[
                    {"id":"call_a","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
                    {"id":"call_b","type":"function","function":{"name":"time","arguments":""}}]}}],
            "usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,
                "prompt_tokens_details":{"cached_tokens":30,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":5}}});
        let reply = decode(&body);
        assert_eq!(
            reply,
            Reply {
                id: "chatcmpl-1".into(),
                model: "gpt-4o".into(),
                parts: vec![
                    Part::Reasoning { text: "think".into(), signature: None },
                    Part::Text("Let me check.".into()),
                    call("call_a", "weather", r#"{"city":"Paris"}"#),
                    call("call_b", "time", ""),
                ],
                finish: Some(Finish::ToolCalls),
                usage: Some(usage(50, 20, 30, 0, 5)),
            }
        );
    }

    #[test]
    fn decodes_what_compatible_servers_send() {
        let cases: Vec<(Value, Vec<Part>, Option<Usage>)> = vec![
            // Null content with tool calls, arguments as an object (Ollama), no id.
            (
                json!({"id":"r","choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}]}),
                vec![call("call_r_0", "f", r#"{"a":1}"#)],
                None,
            ),
            // OpenRouter's `reasoning`, DeepSeek's cache hits.
            (
                json!({"choices":[{"message":{"content":"hi","reasoning":"hmm"}}],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_cache_hit_tokens":4}}),
                vec![Part::Reasoning { text: "hmm".into(), signature: None }, Part::Text("hi".into())],
                Some(usage(10, 2, 4, 0, 0)),
            ),
            // LiteLLM's thinking blocks win over the joined reasoning_content; cache writes both ways.
            (
                json!({"choices":[{"message":{"content":"a","reasoning_content":"xy","thinking_blocks":[
                    {"type":"thinking","thinking":"x","signature":"s1"},{"type":"redacted_thinking","data":"zz"},
                    {"type":"thinking","thinking":"y","signature":"s2"}]}}],
                    "usage":{"prompt_tokens":9,"completion_tokens":1,"cache_creation_input_tokens":3,"prompt_tokens_details":null}}),
                vec![
                    Part::Reasoning { text: "x".into(), signature: Some("s1".into()) },
                    Part::Reasoning { text: "y".into(), signature: Some("s2".into()) },
                    Part::Text("a".into()),
                ],
                Some(usage(9, 1, 0, 3, 0)),
            ),
            (
                json!({"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}],
                    "usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":null,"cache_write_tokens":2}}}),
                vec![Part::Text("ab".into())],
                Some(usage(9, 1, 0, 2, 0)),
            ),
            (
                json!({"choices":[{"message":{"content":null,"refusal":"I can't."}}]}),
                vec![Part::Text("I can't.".into())],
                None,
            ),
            (json!({"choices":[{"message":{"content":""}}]}), vec![], None),
        ];
        for (body, parts, usage) in cases {
            let reply = decode(&body);
            assert_eq!((reply.parts, reply.usage), (parts, usage), "{body}");
        }
        // Keep-alive blank lines before the body (DeepSeek).
        assert!(decode_reply(b"\n\n{\"choices\":[{\"message\":{\"content\":\"x\"}}]}").is_ok());
    }

    #[test]
    fn refuses_bodies_that_are_not_answers() {
        let cases = [
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            r#"{"id":"x","choices":[]}"#,
            r#"{"choices":[{"message":{"content":"x"}}"#,
            r#"{"choices":[{"message":{"content":5}}]}"#,
            "",
        ];
        for body in cases {
            assert!(decode_reply(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn encodes_the_exact_chat_completion_object() {
        let reply = Reply {
            id: "msg_1".into(),
            model: "claude".into(),
            parts: vec![
                Part::Reasoning { text: "think".into(), signature: None },
                Part::Text("Hi".into()),
                call("toolu_1", "f", r#"{"a":1}"#),
            ],
            finish: Some(Finish::ToolCalls),
            usage: Some(usage(100, 20, 60, 30, 5)),
        };
        let got: Value = serde_json::from_slice(&encode_reply(&reply, 7)).unwrap_or_default();
        let want = json!({
            "id":"msg_1","object":"chat.completion","created":7,"model":"claude",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hi",
                "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}],
                "reasoning_content":"think"},
                "logprobs":null,"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,
                "prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":5},
                "cache_creation_input_tokens":30}});
        assert_eq!(got, want);
        // Field order is OpenAI's, byte for byte.
        let plain = Reply { id: "c".into(), model: "m".into(), ..Reply::default() };
        assert_eq!(
            String::from_utf8_lossy(&encode_reply(&plain, 1)),
            r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"logprobs":null,"finish_reason":"stop"}]}"#
        );
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply {
                id: "a".into(),
                model: "m".into(),
                parts: vec![Part::Text("hello".into())],
                finish: Some(Finish::Stop),
                usage: Some(usage(10, 5, 0, 0, 0)),
            },
            Reply {
                id: "b".into(),
                model: "m".into(),
                parts: vec![
                    Part::Reasoning { text: "r".into(), signature: None },
                    call("c1", "f", r#"{"x":[1,2]}"#),
                    call("c2", "g", ""),
                ],
                finish: Some(Finish::ToolCalls),
                usage: Some(usage(1000, 50, 800, 100, 40)),
            },
            Reply {
                id: "c".into(),
                model: "m".into(),
                parts: vec![
                    Part::Reasoning { text: "one".into(), signature: Some("sig1".into()) },
                    Part::Reasoning { text: "two".into(), signature: Some("sig2".into()) },
                    Part::Text("done".into()),
                ],
                finish: Some(Finish::Length),
                usage: None,
            },
            Reply {
                id: "d".into(),
                model: "m".into(),
                parts: vec![],
                finish: Some(Finish::ContentFilter),
                usage: None,
            },
        ];
        for reply in replies {
            let back = decode_reply(&encode_reply(&reply, 1)).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(back, reply);
        }
    }
}
