//! Whole (non-streamed) Messages replies, both ways: Anthropic's reply → canonical [`Reply`] ([`decode`]), and a
//! canonical reply → the exact Messages response an Anthropic caller expects ([`encode_reply`]).
//!
//! Decoding keeps the content blocks' order: `text` → text, `thinking` → reasoning with its signature, `tool_use`
//! → a tool call whose arguments are the input object's JSON text (compacted, key order kept). Server-tool and
//! `redacted_thinking` blocks have no canonical form and are skipped (an Anthropic caller on an Anthropic
//! upstream gets the raw bytes and loses nothing).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::wire::{
    compact_json, empty_object, finish_of, input_object, message_id, stop_reason_of, BlockIn, BlockOut, UsageIn,
    UsageOut,
};
use crate::llm::chat::{DecodeError, Part, Reply, ToolCall};

#[derive(Deserialize)]
struct ReplyIn<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
    usage: Option<UsageIn>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

pub(super) fn decode(body: &[u8]) -> Result<Reply, DecodeError> {
    let reply: ReplyIn<'_> = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new(format!("Anthropic reply is not a Messages response: {e}")))?;
    if reply.kind.as_deref() == Some("error") {
        let detail = reply.error.map(RawValue::get).unwrap_or("no details");
        return Err(DecodeError::new(format!("Anthropic answered with an error object: {detail}")));
    }
    let blocks = match reply.content {
        Some(raw) => BlockIn::list(raw).map_err(|e| DecodeError::new(format!("Anthropic reply content: {e}")))?,
        None => Vec::new(),
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block.kind.as_str() {
            "text" => parts.push(Part::Text(block.text.unwrap_or_default())),
            "thinking" => {
                parts.push(Part::Reasoning { text: block.thinking.unwrap_or_default(), signature: block.signature })
            }
            "tool_use" => parts.push(Part::ToolCall(ToolCall {
                id: block.id.unwrap_or_default(),
                name: block.name.unwrap_or_default(),
                arguments: compact_json(block.input.map_or("{}", RawValue::get)),
            })),
            _ => {}
        }
    }
    Ok(Reply {
        id: reply.id,
        model: reply.model,
        parts,
        finish: reply.stop_reason.as_deref().map(|r| finish_of(r, reply.stop_sequence.as_deref())),
        usage: reply.usage.map(|u| u.canonical()),
    })
}

#[derive(Serialize)]
struct ReplyOut<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockOut<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    usage: UsageOut,
}

/// The Messages response for a canonical reply. Tool-call arguments that are not a JSON object (an upstream's
/// malformed output) become `{}`, since Anthropic's `input` must be an object. Usage the upstream did not report
/// is written as zeros.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut content = Vec::with_capacity(reply.parts.len());
    for part in &reply.parts {
        match part {
            Part::Text(text) if !text.is_empty() => content.push(BlockOut::Text { text }),
            Part::Reasoning { text, signature } => {
                content.push(BlockOut::Thinking { thinking: text, signature: signature.as_deref().unwrap_or_default() })
            }
            Part::ToolCall(call) => content.push(BlockOut::ToolUse {
                id: &call.id,
                name: &call.name,
                input: input_object(&call.arguments).unwrap_or_else(|| empty_object()),
            }),
            _ => {}
        }
    }
    let (stop_reason, stop_sequence) = stop_reason_of(reply.finish.as_ref(), reply.tool_calls().next().is_some());
    let out = ReplyOut {
        id: message_id(&reply.id),
        kind: "message",
        role: "assistant",
        model: &reply.model,
        content,
        stop_reason,
        stop_sequence,
        usage: UsageOut::of(&reply.usage.unwrap_or_default()),
    };
    // Plain structs and valid raw JSON: serialising into a Vec cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::llm::{chat::Finish, Usage};

    fn reply_body(content: Value, stop_reason: Value, stop_sequence: Value) -> Vec<u8> {
        json!({"id":"msg_01X","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
            "content":content,"stop_reason":stop_reason,"stop_sequence":stop_sequence,
            "usage":{"input_tokens":21,"output_tokens":9,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,
                "cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0},"service_tier":"standard"}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn decodes_blocks_in_order_with_usage() {
        let body = br#"{"id":"msg_01X","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[
            {"type":"thinking","thinking":"Let me see.","signature":"EqQB"},
            {"type":"redacted_thinking","data":"xyz"},
            {"type":"text","text":"Checking.","citations":null},
            {"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{ "city" : "Paris", "a": [1, 2] }},
            {"type":"tool_use","id":"toolu_01B","name":"get_time","input":{}},
            {"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"q"}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":21,"output_tokens":9,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,
            "output_tokens_details":{"thinking_tokens":4}}}"#;
        let reply = decode(body).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((reply.id.as_str(), reply.model.as_str()), ("msg_01X", "claude-sonnet-4-5"));
        let call = |id: &str, name: &str, arguments: &str| {
            Part::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() })
        };
        assert_eq!(
            reply.parts,
            vec![
                Part::Reasoning { text: "Let me see.".into(), signature: Some("EqQB".into()) },
                Part::Text("Checking.".into()),
                call("toolu_01A", "get_weather", r#"{"city":"Paris","a":[1,2]}"#),
                call("toolu_01B", "get_time", "{}"),
            ]
        );
        assert_eq!(reply.finish, Some(Finish::ToolCalls));
        let usage = Usage {
            prompt_tokens: 29,
            completion_tokens: 9,
            cache_read_tokens: 5,
            cache_write_tokens: 3,
            reasoning_tokens: 4,
        };
        assert_eq!(reply.usage, Some(usage));
    }

    #[test]
    fn every_stop_reason() {
        let cases: &[(Value, Value, Option<Finish>)] = &[
            (json!("end_turn"), Value::Null, Some(Finish::Stop)),
            (json!("stop_sequence"), json!("###"), Some(Finish::StopSequence("###".into()))),
            (json!("max_tokens"), Value::Null, Some(Finish::Length)),
            (json!("tool_use"), Value::Null, Some(Finish::ToolCalls)),
            (json!("refusal"), Value::Null, Some(Finish::ContentFilter)),
            (json!("pause_turn"), Value::Null, Some(Finish::Stop)),
            (json!("model_context_window_exceeded"), Value::Null, Some(Finish::Length)),
            (Value::Null, Value::Null, None),
        ];
        for (reason, seq, want) in cases {
            let body = reply_body(json!([{"type":"text","text":"Hi"}]), reason.clone(), seq.clone());
            let got = decode(&body).map(|r| r.finish);
            assert_eq!(got, Ok(want.clone()), "{reason}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_reply() {
        let cases: &[&[u8]] = &[
            b"",
            b"{\"content\":",
            b"[]",
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ];
        for body in cases {
            assert!(decode(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        // Block types tollgate does not read may use the same field names with other types.
        let odd = br#"{"id":"m","type":"message","content":[{"type":"search_result","source":"https://x","text":{"a":1}},
            {"type":"web_fetch_tool_result","content":{"type":"web_fetch_result"},"id":5},{"type":"text","text":"ok"}],"stop_reason":"end_turn"}"#;
        assert_eq!(decode(odd).map(|r| r.parts), Ok(vec![Part::Text("ok".into())]));
        let no_usage = br#"{"id":"m","type":"message","content":[],"stop_reason":"end_turn"}"#;
        assert_eq!(decode(no_usage).map(|r| r.usage), Ok(None));
    }

    #[test]
    fn encodes_the_exact_messages_response() {
        let reply = Reply {
            id: "chatcmpl-abc".into(),
            model: "gpt-4o".into(),
            parts: vec![
                Part::Reasoning { text: "hmm".into(), signature: None },
                Part::Text("Checking.".into()),
                Part::Text(String::new()),
                Part::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    arguments: r#"{"b":1,"a":2}"#.into(),
                }),
                Part::ToolCall(ToolCall { id: "call_2".into(), name: "g".into(), arguments: String::new() }),
                Part::ToolCall(ToolCall { id: "call_3".into(), name: "h".into(), arguments: "{\"cut".into() }),
            ],
            finish: Some(Finish::Stop),
            usage: Some(Usage::from_additive(21, 5, 3, 9)),
        };
        let got = String::from_utf8(encode_reply(&reply)).unwrap_or_default();
        assert_eq!(
            got,
            concat!(
                r#"{"id":"msg_chatcmpl-abc","type":"message","role":"assistant","model":"gpt-4o","content":["#,
                r#"{"type":"thinking","thinking":"hmm","signature":""},{"type":"text","text":"Checking."},"#,
                r#"{"type":"tool_use","id":"call_1","name":"f","input":{"b":1,"a":2}},"#,
                r#"{"type":"tool_use","id":"call_2","name":"g","input":{}},"#,
                r#"{"type":"tool_use","id":"call_3","name":"h","input":{}}],"#,
                r#""stop_reason":"tool_use","stop_sequence":null,"#,
                r#""usage":{"input_tokens":21,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":9}}"#
            )
        );
        let stop = Reply {
            id: "msg_1".into(),
            finish: Some(Finish::StopSequence("END".into())),
            parts: vec![Part::Text("x".into())],
            ..Reply::default()
        };
        let v: Value = serde_json::from_slice(&encode_reply(&stop)).unwrap_or_default();
        assert_eq!(
            (v["id"].clone(), v["stop_reason"].clone(), v["stop_sequence"].clone()),
            (json!("msg_1"), json!("stop_sequence"), json!("END"))
        );
        assert_eq!(
            v["usage"],
            json!({"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0})
        );
    }

    #[test]
    fn a_reply_survives_decode_encode() {
        let body = reply_body(
            json!([{"type":"text","text":"Hi"},{"type":"tool_use","id":"toolu_1","name":"f","input":{"x":1}}]),
            json!("tool_use"),
            Value::Null,
        );
        let again = encode_reply(&decode(&body).unwrap_or_default());
        let mut want: Value = serde_json::from_slice(&body).unwrap_or_default();
        // What tollgate does not carry: the cache TTL split and the service tier.
        if let Some(usage) = want["usage"].as_object_mut() {
            usage.remove("cache_creation");
            usage.remove("service_tier");
        }
        assert_eq!(serde_json::from_slice::<Value>(&again).unwrap_or_default(), want);
    }
}
