//! A canonical chat (from a caller who spoke Anthropic, say) as an OpenAI chat request for an OpenAI-compatible
//! upstream. What OpenAI's chat API has no place for is reported to the [`ParamCheck`] (refused unless the
//! deployment drops parameters) or, for reasoning of earlier turns, dropped: OpenAI never sees it again.

use serde_json::{json, Map, Value};

use crate::{
    llm::chat::{Chat, ParamCheck, Part, ResponseFormat, Role, ToolChoice, ToolResult},
    providers::codec::CallOptions,
};

/// A canonical chat as an OpenAI chat request body for an OpenAI-compatible upstream. `stream_usage`: the server
/// accepts `stream_options` (the preset says), so streams ask for the final usage chunk.
pub fn encode_request(chat: &Chat, options: CallOptions<'_>, stream_usage: bool, check: &mut ParamCheck) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("model".into(), options.upstream_model.into());
    body.insert("messages".into(), Value::Array(encode_messages(chat)));
    if !chat.tools.is_empty() {
        let tools = chat.tools.iter().map(|t| {
            let mut function = json!({"name": t.name, "parameters": t.parameters});
            if let (Some(d), Some(f)) = (&t.description, function.as_object_mut()) {
                f.insert("description".into(), d.as_str().into());
            }
            json!({"type": "function", "function": function})
        });
        body.insert("tools".into(), tools.collect());
    }
    if let Some(choice) = &chat.tool_choice {
        let v = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), v);
    }
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(key.into(), v);
        }
    };
    put("parallel_tool_calls", chat.parallel_tool_calls.map(Value::from));
    // OpenAI's current name (reasoning models refuse `max_tokens`); presets of servers that only know
    // `max_tokens` rename it (`param_mappings`).
    put("max_completion_tokens", chat.max_tokens.map(Value::from));
    put("temperature", chat.temperature.map(Value::from));
    put("top_p", chat.top_p.map(Value::from));
    put("stop", (!chat.stop.is_empty()).then(|| chat.stop.iter().map(|s| Value::from(s.as_str())).collect()));
    put("seed", chat.seed.map(Value::from));
    put("presence_penalty", chat.presence_penalty.map(Value::from));
    put("frequency_penalty", chat.frequency_penalty.map(Value::from));
    put("user", chat.user.as_deref().map(Value::from));
    put(
        "response_format",
        chat.response_format.as_ref().map(|f| match f {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, schema } => {
                json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema}})
            }
        }),
    );
    if options.stream {
        put("stream", Some(Value::Bool(true)));
        if stream_usage {
            put("stream_options", Some(json!({"include_usage": true})));
        }
    }
    if chat.top_k.is_some() {
        check.unsupported("top_k");
    }
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

fn encode_messages(chat: &Chat) -> Vec<Value> {
    let mut out: Vec<Value> = chat.system.iter().map(|s| json!({"role": "system", "content": s})).collect();
    for m in &chat.messages {
        // Tool results become one `tool` message each, ahead of anything else the message holds: OpenAI wants
        // them right after the assistant's calls.
        let mut rest = Vec::new();
        for part in &m.parts {
            match part {
                Part::ToolResult(r) => {
                    out.push(json!({"role": "tool", "tool_call_id": r.call_id, "content": tool_content(r)}))
                }
                other => rest.push(other),
            }
        }
        match m.role {
            Role::Assistant => {
                let text: String =
                    rest.iter().filter_map(|p| if let Part::Text(t) = p { Some(t.as_str()) } else { None }).collect();
                let calls: Vec<Value> = rest
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall(c) => Some(json!({"id": c.id, "type": "function", "function": {
                            "name": c.name,
                            // OpenAI wants JSON text; an argument-less call is an empty object.
                            "arguments": if c.arguments.is_empty() { "{}" } else { c.arguments.as_str() },
                        }})),
                        _ => None,
                    })
                    .collect();
                // Reasoning of earlier turns has no place in OpenAI's chat API and is dropped; images cannot be
                // an assistant's. An assistant message needs content unless it calls tools.
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::from(text) }});
                if let (false, Some(o)) = (calls.is_empty(), msg.as_object_mut()) {
                    o.insert("tool_calls".into(), Value::Array(calls));
                }
                out.push(msg);
            }
            Role::User | Role::Tool => {
                let parts: Vec<Part> =
                    rest.into_iter().filter(|p| matches!(p, Part::Text(_) | Part::Image(_))).cloned().collect();
                if !parts.is_empty() || m.role == Role::User && m.parts.is_empty() {
                    // One text part is a string; several stay parts, so their boundaries survive (presets of
                    // text-only servers join them with newlines).
                    let content = match parts.as_slice() {
                        [] => Value::from(""),
                        [Part::Text(t)] => Value::from(t.as_str()),
                        _ => parts_json(&parts),
                    };
                    out.push(json!({"role": "user", "content": content}));
                }
            }
        }
    }
    out
}

/// A tool result's content: a string if it is only text (what every compatible server takes), else parts.
fn tool_content(r: &ToolResult) -> Value {
    if r.content.iter().all(|p| matches!(p, Part::Text(_))) {
        return Value::from(r.text());
    }
    parts_json(&r.content)
}

fn parts_json(parts: &[Part]) -> Value {
    let items = parts.iter().filter_map(|p| match p {
        Part::Text(t) => Some(json!({"type": "text", "text": t})),
        Part::Image(image) => Some(json!({"type": "image_url", "image_url": {"url": image.to_url()}})),
        _ => None,
    });
    Value::Array(items.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{
        chat::{Image, Message, Tool, ToolCall},
        ChatRequest,
    };

    fn text(role: Role, t: &str) -> Message {
        Message { role, parts: vec![Part::Text(t.into())] }
    }

    fn call(id: &str, name: &str, arguments: &str) -> Part {
        Part::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() })
    }

    fn result(call_id: &str, content: Vec<Part>) -> Part {
        Part::ToolResult(ToolResult { call_id: call_id.into(), content, is_error: false })
    }

    fn encode(chat: &Chat, stream: bool, stream_usage: bool) -> (Value, Result<(), String>) {
        let mut check = ParamCheck::new("openai", false, chat);
        let options = CallOptions { upstream_model: "up", stream, drop_params: false };
        let body = encode_request(chat, options, stream_usage, &mut check);
        let value = serde_json::from_slice(&body).unwrap_or_else(|e| unreachable!("{e}"));
        (value, check.finish().map_err(|e| e.param))
    }

    #[test]
    fn encodes_golden_requests() {
        let tools_chat = Chat {
            system: vec!["Be terse.".into()],
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::Text("Look:".into()),
                        Part::Image(Image::Base64 { media_type: "image/png".into(), data: "iVBOR".into() }),
                    ],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning { text: "hidden".into(), signature: Some("s".into()) },
                        Part::Text("Checking.".into()),
                        call("toolu_1", "weather", r#"{"city":"Paris"}"#),
                        call("toolu_2", "time", ""),
                    ],
                },
                Message {
                    role: Role::Tool,
                    parts: vec![
                        result("toolu_1", vec![Part::Text("21".into()), Part::Text("C".into())]),
                        result(
                            "toolu_2",
                            vec![Part::Text("chart".into()), Part::Image(Image::Url("https://i.test/c.png".into()))],
                        ),
                    ],
                },
                Message { role: Role::Assistant, parts: vec![call("toolu_3", "time", "{}")] },
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::ToolResult(ToolResult {
                            call_id: "toolu_3".into(),
                            content: vec![Part::Text("failed".into())],
                            is_error: true,
                        }),
                        Part::Text("And now?".into()),
                    ],
                },
            ],
            tools: vec![Tool {
                name: "weather".into(),
                description: Some("Weather now".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            }],
            tool_choice: Some(ToolChoice::Required),
            parallel_tool_calls: Some(true),
            ..Chat::default()
        };
        let want_tools = json!({
            "model": "up",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": [{"type": "text", "text": "Look:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "21C"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "chart"},
                    {"type": "image_url", "image_url": {"url": "https://i.test/c.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "toolu_3", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_3", "content": "failed"},
                {"role": "user", "content": "And now?"}],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": true,
        });
        let params_chat = Chat {
            messages: vec![text(Role::User, "hi"), Message { role: Role::Assistant, parts: vec![] }],
            tool_choice: Some(ToolChoice::Named("f".into())),
            max_tokens: Some(64),
            temperature: Some(0.7),
            top_p: Some(0.9),
            stop: vec!["END".into()],
            seed: Some(-3),
            presence_penalty: Some(0.5),
            frequency_penalty: Some(0.25),
            user: Some("u".into()),
            response_format: Some(ResponseFormat::JsonSchema { name: "o".into(), schema: json!({"type": "object"}) }),
            ..Chat::default()
        };
        let want_params = json!({
            "model": "up",
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "max_completion_tokens": 64, "temperature": 0.7, "top_p": 0.9, "stop": ["END"], "seed": -3,
            "presence_penalty": 0.5, "frequency_penalty": 0.25, "user": "u",
            "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object"}}},
        });
        let simple = Chat { messages: vec![text(Role::User, "hi")], ..Chat::default() };
        let two_texts = Chat {
            messages: vec![Message { role: Role::User, parts: vec![Part::Text("a".into()), Part::Text("b".into())] }],
            ..Chat::default()
        };
        let cases: Vec<(&Chat, bool, bool, Value)> = vec![
            (&tools_chat, false, true, want_tools),
            (&params_chat, false, true, want_params),
            (
                &simple,
                true,
                true,
                json!({"model": "up", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                    "stream_options": {"include_usage": true}}),
            ),
            (
                &simple,
                true,
                false,
                json!({"model": "up", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
            ),
            (
                &two_texts,
                false,
                true,
                json!({"model": "up", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}),
            ),
        ];
        for (chat, stream, stream_usage, want) in cases {
            let (got, check) = encode(chat, stream, stream_usage);
            assert_eq!(got, want);
            assert_eq!(check, Ok(()));
        }
    }

    #[test]
    fn encoding_reports_what_openai_cannot_take() {
        let chat = Chat { messages: vec![text(Role::User, "hi")], top_k: Some(5), ..Chat::default() };
        assert_eq!(encode(&chat, false, true).1, Err("top_k".into()));
        let chat = Chat { unmapped: vec!["thinking".into()], top_k: Some(5), ..chat };
        assert_eq!(encode(&chat, false, true).1, Err("thinking".into()), "the caller's own field is named first");
    }

    #[test]
    fn decoded_requests_encode_back_to_the_same_meaning() {
        let body = json!({"model": "m", "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "r"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "auto", "max_completion_tokens": 9, "temperature": 0.2, "stop": ["x"]});
        let bytes = body.to_string();
        let req = ChatRequest::parse(bytes.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        let chat = super::super::request::decode_request(&req).unwrap_or_else(|e| unreachable!("{e}"));
        let (mut got, check) = encode(&chat, false, true);
        assert_eq!(check, Ok(()));
        if let Some(o) = got.as_object_mut() {
            o.insert("model".into(), "m".into());
        }
        assert_eq!(got, body);
    }
}
