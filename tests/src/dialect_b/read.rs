//! Reading what a caller got, whole or streamed alike: an OpenAI chat reply as its [`answer`], an Anthropic one as
//! its [`message`], the error that ends a broken stream, embedding vectors in either encoding.

use serde_json::{json, Value};

use crate::{sse_data, sse_events, Reply};

/// The JSON chunks of an OpenAI stream (`[DONE]` left out).
pub fn chunks(r: &Reply) -> Vec<Value> {
    sse_data(&r.text)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or(Value::Null))
        .collect()
}

fn is_stream(r: &Reply) -> bool {
    r.header("content-type").is_some_and(|t| t.starts_with("text/event-stream"))
}

/// What an OpenAI chat reply says, whole or streamed alike: `{"content", "tool_calls": [[name, arguments]],
/// "finish_reason"}`, with the content deltas and the argument fragments of a stream joined. A whole reply's
/// `null` content reads as `""`.
pub fn answer(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    if !is_stream(r) {
        let choice = &r.json["choices"][0];
        let calls = choice["message"]["tool_calls"].as_array().cloned().unwrap_or_default();
        let calls: Vec<Value> =
            calls.iter().map(|c| json!([c["function"]["name"], c["function"]["arguments"]])).collect();
        let content = choice["message"]["content"].as_str().unwrap_or_default();
        return json!({"content": content, "tool_calls": calls, "finish_reason": choice["finish_reason"]});
    }
    let mut content = String::new();
    let mut calls: Vec<(String, String)> = Vec::new();
    let mut finish = Value::Null;
    for chunk in chunks(r) {
        let choice = &chunk["choices"][0];
        content.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().and_then(|i| usize::try_from(i).ok()).unwrap_or(usize::MAX);
            if index == calls.len() {
                calls.push(Default::default());
            }
            let Some((name, args)) = calls.get_mut(index) else { panic!("tool call {index} out of order: {}", r.text) };
            name.push_str(call["function"]["name"].as_str().unwrap_or_default());
            args.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
        if !choice["finish_reason"].is_null() {
            finish = choice["finish_reason"].clone();
        }
    }
    json!({"content": content, "tool_calls": calls, "finish_reason": finish})
}

/// The usage objects of an OpenAI stream's chunks (at most one is expected), or of a whole reply.
pub fn usages(r: &Reply) -> Vec<Value> {
    if !is_stream(r) {
        return vec![r.json["usage"].clone()];
    }
    chunks(r).into_iter().filter_map(|c| c.get("usage").filter(|u| !u.is_null()).cloned()).collect()
}

/// What an Anthropic Messages reply says, whole or streamed alike: `{"content": [blocks], "stop_reason",
/// "usage"}`, a stream's blocks assembled from their deltas. Tool ids are left out (Gemini's are made per reply);
/// each must be present.
pub fn message(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    let mut content: Vec<Value>;
    let (stop_reason, usage);
    if is_stream(r) {
        content = Vec::new();
        let mut partial: Vec<String> = Vec::new();
        let mut delta = Value::Null;
        for (name, data) in sse_events(&r.text) {
            match name.as_str() {
                "content_block_start" => {
                    content.push(data["content_block"].clone());
                    partial.push(String::new());
                }
                "content_block_delta" => {
                    let (Some(block), Some(json)) = (content.last_mut(), partial.last_mut()) else { continue };
                    // Text and thinking deltas append to their block's field; a signature replaces it.
                    let appended = match data["delta"]["type"].as_str() {
                        Some("text_delta") => Some(("text", "text")),
                        Some("thinking_delta") => Some(("thinking", "thinking")),
                        _ => None,
                    };
                    if let Some((field, key)) = appended {
                        let joined = format!(
                            "{}{}",
                            block[field].as_str().unwrap_or_default(),
                            data["delta"][key].as_str().unwrap_or_default()
                        );
                        block[field] = json!(joined);
                        continue;
                    }
                    match data["delta"]["type"].as_str() {
                        Some("signature_delta") => block["signature"] = data["delta"]["signature"].clone(),
                        Some("input_json_delta") => {
                            json.push_str(data["delta"]["partial_json"].as_str().unwrap_or_default())
                        }
                        _ => {}
                    }
                }
                "message_delta" => delta = data,
                _ => {}
            }
        }
        for (block, json) in content.iter_mut().zip(partial) {
            if !json.is_empty() {
                block["input"] = serde_json::from_str(&json).unwrap_or(Value::Null);
            }
        }
        (stop_reason, usage) = (delta["delta"]["stop_reason"].clone(), delta["usage"].clone());
    } else {
        content = r.json["content"].as_array().cloned().unwrap_or_default();
        (stop_reason, usage) = (r.json["stop_reason"].clone(), r.json["usage"].clone());
    }
    for block in content.iter_mut().filter(|b| b["type"] == "tool_use") {
        let id = block.as_object_mut().and_then(|b| b.remove("id"));
        assert!(
            id.as_ref().and_then(Value::as_str).is_some_and(|id| !id.is_empty()),
            "tool_use without an id: {}",
            r.text
        );
    }
    json!({"content": content, "stop_reason": stop_reason, "usage": usage})
}

/// An OpenAI stream that ended as a stream must not: its last event is an error chunk, and there is no `[DONE]`.
/// Returns the error object.
pub fn assert_ends_with_error(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    let data = sse_data(&r.text);
    assert!(!data.iter().any(|d| d == "[DONE]"), "no [DONE] after a broken stream: {}", r.text);
    let last: Value = data.last().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    assert!(last["error"]["message"].is_string(), "the last event is an error: {}", r.text);
    last["error"].clone()
}

/// An Anthropic stream that ended as a stream must not: `event: error` last, no `message_stop`. Returns the
/// error event's data.
pub fn assert_messages_end_with_error(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    let events = sse_events(&r.text);
    assert!(!events.iter().any(|(name, _)| name == "message_stop"), "{}", r.text);
    let (name, data) = events.last().cloned().unwrap_or_default();
    assert_eq!((name.as_str(), data["type"].as_str()), ("error", Some("error")), "{}", r.text);
    data
}

/// The vectors of an OpenAI embeddings response, floats or base64 (little-endian f32s) alike.
pub fn vectors(r: &Reply) -> Vec<Vec<f32>> {
    crate::dialect::vectors(&r.json)
}

/// The vector the fakes give `text` (every fake derives it the same way), as f32s.
pub fn fake_vector(text: &str) -> Vec<f32> {
    tollgate_fakes::openai::embed(text).iter().map(|x| *x as f32).collect()
}
