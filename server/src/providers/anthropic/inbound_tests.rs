use serde_json::{json, Value};

use super::*;
use crate::{
    llm::chat::{Finish, Reply},
    providers::{anthropic::request::encode, codec::CallOptions},
};

fn decode(body: &Value) -> Result<Chat, RequestError> {
    let bytes = body.to_string();
    let req = MessagesRequest::parse(bytes.as_bytes())?;
    decode_request(&req)
}

fn text(t: &str) -> Part {
    Part::Text(t.into())
}

/// A request shaped like Claude Code's: system blocks with cache breakpoints, tools, and a history with thinking,
/// tool use and tool results.
fn claude_code_like() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": true,
        "temperature": 1,
        "metadata": {"user_id": "user_abc_account__session_123"},
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Working directory: /repo"}
        ],
        "tools": [
            {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
            {"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}}
        ],
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "List the files"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBsig"},
                {"type": "text", "text": "Running ls."},
                {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls", "timeout": 5}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.txt\nb.txt"},
                {"type": "text", "text": "Now read a.txt", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {"path": "a.txt"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true, "content": [{"type": "text", "text": "denied"}]}
            ]}
        ]
    })
}

#[test]
fn a_claude_code_request_becomes_canonical() {
    let chat = decode(&claude_code_like()).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(chat.system, ["You are Claude Code.", "Working directory: /repo"]);
    assert_eq!((chat.max_tokens, chat.temperature, chat.stream), (Some(32000), Some(1.0), true));
    assert_eq!(chat.user.as_deref(), Some("user_abc_account__session_123"));
    assert_eq!(chat.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(chat.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["Bash", "Read"]);
    assert!(chat.unmapped.is_empty(), "{:?}", chat.unmapped);
    let call = |id: &str, name: &str, arguments: &str| {
        Part::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() })
    };
    let result = |id: &str, content: &str, is_error: bool| {
        Part::ToolResult(ToolResult { call_id: id.into(), content: vec![text(content)], is_error })
    };
    assert_eq!(
        chat.messages,
        vec![
            Message { role: Role::User, parts: vec![text("List the files")] },
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Reasoning { text: "I should run ls.".into(), signature: Some("EqQBsig".into()) },
                    text("Running ls."),
                    call("toolu_01", "Bash", r#"{"command":"ls","timeout":5}"#),
                ],
            },
            Message { role: Role::Tool, parts: vec![result("toolu_01", "a.txt\nb.txt", false)] },
            Message { role: Role::User, parts: vec![text("Now read a.txt")] },
            Message { role: Role::Assistant, parts: vec![call("toolu_02", "Read", r#"{"path":"a.txt"}"#)] },
            Message { role: Role::Tool, parts: vec![result("toolu_02", "denied", true)] },
        ]
    );
}

/// Anthropic → canonical → Anthropic gives back the caller's request, less what has no canonical meaning
/// (`cache_control`), with string content written as a text block and vice versa.
#[test]
fn a_claude_code_request_round_trips() {
    let original = claude_code_like();
    let chat = decode(&original).unwrap_or_else(|e| unreachable!("{e}"));
    let options = CallOptions { upstream_model: "claude-sonnet-4-5", stream: true, drop_params: false };
    let body = encode(&chat, options).unwrap_or_else(|e| unreachable!("{e}"));
    let got: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut want = original;
    strip_cache_control(&mut want);
    want["messages"][0]["content"] = json!([{"type": "text", "text": "List the files"}]);
    // A tool result of one text block is written as the equivalent string; numbers are canonical floats.
    want["messages"][4]["content"][0]["content"] = json!("denied");
    want["temperature"] = json!(1.0);
    assert_eq!(got, want);
}

fn strip_cache_control(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("cache_control");
            map.values_mut().for_each(strip_cache_control);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_cache_control),
        _ => {}
    }
}

#[test]
fn blocks_and_parameters_map() {
    let body = json!({
        "model": "m", "max_tokens": 10, "system": "Be brief.", "top_p": 0.5, "top_k": 3,
        "stop_sequences": ["END"], "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": true},
        "thinking": {"type": "disabled"}, "service_tier": "auto",
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "before"},
                {"type": "tool_result", "tool_use_id": "t1"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
            ]},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}, {"type": "tool_use", "id": "t2", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": [
                {"type": "text", "text": "shot"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
            ]}]},
            {"role": "assistant", "content": ""}
        ]
    });
    let chat = decode(&body).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(chat.system, ["Be brief."]);
    assert_eq!((chat.top_p, chat.top_k, chat.stop.clone()), (Some(0.5), Some(3), vec!["END".to_owned()]));
    assert_eq!(
        (chat.tool_choice.clone(), chat.parallel_tool_calls),
        (Some(ToolChoice::Named("f".into())), Some(false))
    );
    assert_eq!(
        chat.response_format,
        Some(ResponseFormat::JsonSchema { name: "response".into(), schema: json!({"type": "object"}) })
    );
    assert!(chat.unmapped.is_empty(), "{:?}", chat.unmapped);
    let png = |data: &str| Part::Image(Image::Base64 { media_type: "image/png".into(), data: data.into() });
    assert_eq!(
        chat.messages,
        vec![
            Message { role: Role::User, parts: vec![text("before")] },
            Message {
                role: Role::Tool,
                parts: vec![Part::ToolResult(ToolResult { call_id: "t1".into(), content: vec![], is_error: false })],
            },
            Message {
                role: Role::User,
                parts: vec![png("iVBOR"), Part::Image(Image::Url("https://example.com/a.jpg".into()))]
            },
            Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(ToolCall { id: "t2".into(), name: "f".into(), arguments: "{}".into() })],
            },
            Message {
                role: Role::Tool,
                parts: vec![Part::ToolResult(ToolResult {
                    call_id: "t2".into(),
                    content: vec![text("shot"), png("AA")],
                    is_error: false,
                })],
            },
        ]
    );
}

#[test]
fn what_has_no_canonical_form_is_unmapped_by_name() {
    let cases: &[(Value, &[&str])] = &[
        (json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}), &[]),
        (
            json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}, {"type": "custom", "name": "f", "input_schema": {"type": "object"}}]}),
            &["web_search_20250305"],
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}]}]}),
            &["document"],
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]}),
            &["image (file source)"],
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result", "source": "s"}]}]}]}),
            &["search_result"],
        ),
        // Reasoning hints and server-side context management are dropped, never refused (see inbound.rs).
        (json!({"output_config": {"effort": "low"}, "context_management": {"edits": []}}), &[]),
        (json!({"thinking": {"type": "adaptive", "display": "omitted"}}), &[]),
        (json!({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]}), &[]),
        (json!({"output_config": {"task_budget": 5}}), &["output_config.task_budget"]),
        (json!({"mcp_servers": [], "container": "c"}), &["container", "mcp_servers"]),
    ];
    for (extra, want) in cases {
        let mut body = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let chat = decode(&body).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(chat.unmapped, *want, "{extra}");
    }
}

#[test]
fn malformed_fields_are_refused_by_name() {
    let cases: &[(Value, &str)] = &[
        (json!({"messages": [{"role": "tool", "content": "x"}]}), "messages"),
        (json!({"messages": [{"role": "user", "content": 5}]}), "messages"),
        (json!({"system": [{"type": "image", "source": {}}]}), "system"),
        (json!({"tools": [{"description": "no name"}]}), "tools"),
        (json!({"tool_choice": {"type": "tool"}}), "tool_choice"),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"stop_sequences": "END"}), "stop_sequences"),
    ];
    for (extra, param) in cases {
        let mut body = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        match decode(&body) {
            Err(RequestError::InvalidField { param: got, .. }) => assert_eq!(got, *param, "{extra}"),
            other => unreachable!("{extra}: {other:?}"),
        }
    }
}

/// A canonical reply from another dialect, as an Anthropic caller sees it.
#[test]
fn an_openai_reply_reads_as_a_messages_response() {
    let reply = Reply {
        id: "chatcmpl-1".into(),
        model: "gpt-4o".into(),
        parts: vec![text("Hi")],
        finish: Some(Finish::Length),
        usage: None,
    };
    let v: Value = serde_json::from_slice(&crate::providers::anthropic::encode_reply(&reply)).unwrap_or_default();
    assert_eq!((v["id"].as_str(), v["stop_reason"].as_str()), (Some("msg_chatcmpl-1"), Some("max_tokens")));
}

#[test]
fn system_role_messages_join_the_top_level_system_in_order() {
    // The newer API (and Claude Code) put system messages inside `messages`; the top-level `system` comes first
    // wherever its key sits in the body.
    let body = json!({"model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": [{"type": "text", "text": "b"}]}],
        "system": "a"});
    let chat = decode(&body).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(chat.system, ["a", "b"]);
    assert_eq!(chat.messages.len(), 1);
}
