//! `agent`: a scripted two-turn tool loop for driving real agent clients (Claude Code) through tollgate.
//!
//! | request                                              | answer                                              |
//! |------------------------------------------------------|-----------------------------------------------------|
//! | offers a `Read` tool, no tool result yet             | a `Read` tool call for the first `/…` path in the last user text |
//! | carries a tool result                                | `The secret word is <W>.`, W = the first `ZEBRA-…` word in the result |
//! | anything else (a client's side requests)             | `ok`                                                |
//!
//! Streams and whole answers alike, in OpenAI's wire format, with usage (10 prompt, 5 completion tokens).

use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::{
    sse::{self, Chunks},
    wire::{Completion, Function, Message, ToolCall, Usage},
};

const TOOL_CALL_ID: &str = "call_agent_read";

pub(crate) fn reply(model: &str, request: &Value, id: &str) -> Option<HttpResponse> {
    if model != "agent" {
        return None;
    }
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let offers_read = request["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == "Read" || t["name"] == "Read"));
    let result = messages.iter().rev().find(|m| m["role"] == "tool").map(text_of);
    let usage = Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
    let stream = request["stream"].as_bool() == Some(true);
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let answer = match (&result, offers_read) {
        (Some(result), _) => Answer::Text(format!(
            "The secret word is {}.",
            result
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .find(|w| w.starts_with("ZEBRA-"))
                .unwrap_or("missing")
        )),
        (None, true) => {
            let user = messages.iter().rev().find(|m| m["role"] == "user").map(text_of).unwrap_or_default();
            let path = user.split_whitespace().find(|w| w.starts_with('/')).unwrap_or("/nonexistent");
            let path = path.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            Answer::Read(json!({"file_path": path}).to_string())
        }
        (None, false) => Answer::Text("ok".to_owned()),
    };
    let model = model.to_owned();
    Some(match (answer, stream) {
        (Answer::Text(text), false) => {
            let message = Message { role: "assistant", content: Some(&text), refusal: None, tool_calls: None };
            HttpResponse::Ok().json(Completion::new(id, &model, message, "stop", usage))
        }
        (Answer::Read(args), false) => {
            let call = ToolCall {
                index: None,
                id: Some(TOOL_CALL_ID),
                kind: Some("function"),
                function: Function { name: Some("Read"), arguments: &args },
            };
            let message = Message { role: "assistant", content: None, refusal: None, tool_calls: Some([call]) };
            HttpResponse::Ok().json(Completion::new(id, &model, message, "tool_calls", usage))
        }
        (Answer::Text(text), true) => {
            let chunks = Chunks::new(id.to_owned(), model, include_usage);
            let mut events = vec![chunks.role(Some("")), chunks.content(&text), chunks.finish("stop")];
            events.extend(chunks.tail(usage));
            sse::sse(events)
        }
        (Answer::Read(args), true) => {
            let chunks = Chunks::new(id.to_owned(), model, include_usage);
            let header = ToolCall {
                index: Some(0),
                id: Some(TOOL_CALL_ID),
                kind: Some("function"),
                function: Function { name: Some("Read"), arguments: "" },
            };
            let body =
                ToolCall { index: Some(0), id: None, kind: None, function: Function { name: None, arguments: &args } };
            let mut events =
                vec![chunks.role(None), chunks.tool_call(header), chunks.tool_call(body), chunks.finish("tool_calls")];
            events.extend(chunks.tail(usage));
            sse::sse(events)
        }
    })
}

enum Answer {
    Text(String),
    /// Arguments (JSON text) of a `Read` call.
    Read(String),
}

/// A message's text: its string content, or its text parts joined.
fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}
