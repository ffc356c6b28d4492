//! The Converse request body (`POST /model/{id}/converse` and `/converse-stream` take the same one), from the
//! canonical chat (providers.md 5.3).
//!
//! Mapping:
//! - system → `system: [{text}]`; user and assistant messages → `messages` with content blocks; tool results →
//!   `toolResult` blocks of a user message. Consecutive messages of the same role are merged, since Converse wants
//!   roles to alternate and has no tool role.
//! - Images: base64 data only (`image {format, source {bytes}}`); Converse cannot fetch URLs, so a URL image is an
//!   unsupported `image_url`, as is a media type other than png, jpeg, gif or webp.
//! - `max_tokens`, `temperature`, `top_p`, `stop` → `inferenceConfig`; `top_k` → `additionalModelRequestFields`
//!   under the model family's own name (Anthropic `top_k`, Amazon Nova `inferenceConfig.topK`), unsupported for
//!   other families.
//! - tools → `toolConfig.tools[].toolSpec`; tool_choice `auto` → `{auto:{}}`, `required` → `{any:{}}`, a named tool
//!   → `{tool:{name}}`. Converse has no "none": `toolConfig` is left out, which forbids tool calls, unless the
//!   history holds tool calls or results (Converse then requires `toolConfig`), where "none" cannot be expressed and
//!   is reported unsupported.
//! - Unsupported: `seed`, `presence_penalty`, `frequency_penalty`, `user`, `response_format` other than text,
//!   `parallel_tool_calls: false` (Converse cannot forbid parallel calls).
//!
//! Streams need nothing extra: ConverseStream always ends with a `metadata` event carrying usage.

use serde_json::{json, Map, Value};

use crate::llm::chat::{Chat, Image, Message, ParamCheck, Part, ResponseFormat, Role, ToolChoice, ToolResult};

pub(super) fn converse_body(chat: &Chat, model_id: &str, check: &mut ParamCheck) -> Value {
    let mut body = Map::new();
    let system: Vec<Value> = chat.system.iter().filter(|s| !s.is_empty()).map(|s| json!({ "text": s })).collect();
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages(&chat.messages, check)));

    let mut inference = Map::new();
    if let Some(n) = chat.max_tokens {
        inference.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = chat.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = chat.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if !chat.stop.is_empty() {
        inference.insert("stopSequences".into(), json!(chat.stop));
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(k) = chat.top_k {
        match top_k_field(model_id, k) {
            Some(fields) => {
                body.insert("additionalModelRequestFields".into(), fields);
            }
            None => check.unsupported("top_k"),
        }
    }
    if let Some(config) = tool_config(chat, check) {
        body.insert("toolConfig".into(), config);
    }

    if chat.seed.is_some() {
        check.unsupported("seed");
    }
    if chat.presence_penalty.is_some() {
        check.unsupported("presence_penalty");
    }
    if chat.frequency_penalty.is_some() {
        check.unsupported("frequency_penalty");
    }
    if chat.user.is_some() {
        check.unsupported("user");
    }
    if matches!(chat.response_format, Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })) {
        check.unsupported("response_format");
    }
    if chat.parallel_tool_calls == Some(false) {
        check.unsupported("parallel_tool_calls");
    }
    Value::Object(body)
}

/// `top_k` where the model family takes it; `None` for families without one.
fn top_k_field(model_id: &str, k: u64) -> Option<Value> {
    // Cross-region profiles (`us.anthropic...`) and ARNs contain the family name too.
    if model_id.contains("anthropic.") {
        Some(json!({ "top_k": k }))
    } else if model_id.contains("amazon.nova") {
        Some(json!({ "inferenceConfig": { "topK": k } }))
    } else {
        None
    }
}

fn messages(input: &[Message], check: &mut ParamCheck) -> Vec<Value> {
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::with_capacity(input.len());
    for message in input {
        let role = match message.role {
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
        };
        let blocks: Vec<Value> = message.parts.iter().filter_map(|p| block(p, check)).collect();
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last_role, last)) if *last_role == role => last.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    out.into_iter().map(|(role, content)| json!({ "role": role, "content": content })).collect()
}

/// One content block; `None` for parts Converse has no room for (empty text, dropped parameters).
fn block(part: &Part, check: &mut ParamCheck) -> Option<Value> {
    match part {
        // Converse refuses blank text blocks.
        Part::Text(t) if t.is_empty() => None,
        Part::Text(t) => Some(json!({ "text": t })),
        Part::Image(image) => image_block(image, check),
        Part::Reasoning { text, signature } => {
            let mut reasoning = Map::new();
            reasoning.insert("text".into(), json!(text));
            if let Some(s) = signature {
                reasoning.insert("signature".into(), json!(s));
            }
            Some(json!({ "reasoningContent": { "reasoningText": reasoning } }))
        }
        Part::ToolCall(call) => {
            let input = match call.arguments.trim() {
                "" => json!({}),
                args => match serde_json::from_str::<Value>(args) {
                    Ok(v) => v,
                    Err(_) => {
                        // Converse takes the input as a JSON document; text that is not JSON has no encoding.
                        check.unsupported("tool_calls[].function.arguments (not valid JSON)");
                        json!({})
                    }
                },
            };
            Some(json!({ "toolUse": { "toolUseId": call.id, "name": call.name, "input": input } }))
        }
        Part::ToolResult(result) => Some(tool_result(result, check)),
    }
}

fn image_block(image: &Image, check: &mut ParamCheck) -> Option<Value> {
    let Image::Base64 { media_type, data } = image else {
        check.unsupported("image_url");
        return None;
    };
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            check.unsupported("image_url");
            return None;
        }
    };
    Some(json!({ "image": { "format": format, "source": { "bytes": data } } }))
}

fn tool_result(result: &ToolResult, check: &mut ParamCheck) -> Value {
    let mut content: Vec<Value> = result
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({ "text": t })),
            Part::Image(image) => image_block(image, check),
            _ => None,
        })
        .collect();
    if content.is_empty() {
        // `content` is required; an empty result is an empty text.
        content.push(json!({ "text": "" }));
    }
    let mut block = Map::new();
    block.insert("toolUseId".into(), json!(result.call_id));
    block.insert("content".into(), Value::Array(content));
    if result.is_error {
        block.insert("status".into(), json!("error"));
    }
    json!({ "toolResult": block })
}

fn tool_config(chat: &Chat, check: &mut ParamCheck) -> Option<Value> {
    if chat.tools.is_empty() {
        return None;
    }
    let choice = match &chat.tool_choice {
        None | Some(ToolChoice::Auto) => json!({ "auto": {} }),
        Some(ToolChoice::Required) => json!({ "any": {} }),
        Some(ToolChoice::Named(name)) => json!({ "tool": { "name": name } }),
        Some(ToolChoice::None) => {
            let history_has_tools = chat
                .messages
                .iter()
                .flat_map(|m| &m.parts)
                .any(|p| matches!(p, Part::ToolCall(_) | Part::ToolResult(_)));
            if history_has_tools {
                check.unsupported("tool_choice");
            } else {
                return None;
            }
            // Dropped: the tools stay available, as with `auto`.
            json!({ "auto": {} })
        }
    };
    let tools: Vec<Value> = chat
        .tools
        .iter()
        .map(|t| {
            let mut spec = Map::new();
            spec.insert("name".into(), json!(t.name));
            if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
                spec.insert("description".into(), json!(d));
            }
            spec.insert("inputSchema".into(), json!({ "json": t.parameters }));
            json!({ "toolSpec": spec })
        })
        .collect();
    Some(json!({ "tools": tools, "toolChoice": choice }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::chat::{Tool, ToolCall};

    fn user(text: &str) -> Message {
        Message { role: Role::User, parts: vec![Part::Text(text.into())] }
    }

    fn encode(chat: &Chat, model: &str, drop_params: bool) -> (Value, Result<(), String>) {
        let mut check = ParamCheck::new("bedrock", drop_params, chat);
        let body = converse_body(chat, model, &mut check);
        (body, check.finish().map_err(|e| e.param))
    }

    const CLAUDE: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

    fn weather_tool() -> Tool {
        Tool {
            name: "get_weather".into(),
            description: Some("Weather of a city".into()),
            parameters: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
        }
    }

    #[test]
    fn text_system_and_params() {
        let chat = Chat {
            system: vec!["You are terse.".into(), String::new(), "Answer in French.".into()],
            messages: vec![
                user("Hi"),
                user("there"),
                Message { role: Role::Assistant, parts: vec![Part::Text("Salut".into())] },
                user("Bye"),
            ],
            max_tokens: Some(512),
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(40),
            stop: vec!["END".into()],
            ..Chat::default()
        };
        let (body, ok) = encode(&chat, CLAUDE, false);
        assert_eq!(ok, Ok(()));
        assert_eq!(
            body,
            json!({
                "system": [{"text": "You are terse."}, {"text": "Answer in French."}],
                "messages": [
                    {"role": "user", "content": [{"text": "Hi"}, {"text": "there"}]},
                    {"role": "assistant", "content": [{"text": "Salut"}]},
                    {"role": "user", "content": [{"text": "Bye"}]}
                ],
                "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
                "additionalModelRequestFields": {"top_k": 40}
            })
        );
        let (body, _) = encode(&chat, "amazon.nova-pro-v1:0", false);
        assert_eq!(body["additionalModelRequestFields"], json!({"inferenceConfig": {"topK": 40}}));
        assert_eq!(encode(&chat, "meta.llama3-1-70b-instruct-v1:0", false).1, Err("top_k".into()));
        let minimal = encode(&Chat { messages: vec![user("Hi")], ..Chat::default() }, CLAUDE, false).0;
        assert_eq!(minimal, json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}));
    }

    #[test]
    fn tools_calls_and_results() {
        let chat = Chat {
            messages: vec![
                user("Weather in Paris and the time?"),
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning { text: "Two tools.".into(), signature: Some("sig".into()) },
                        Part::Text("Checking.".into()),
                        Part::ToolCall(ToolCall {
                            id: "tooluse_1".into(),
                            name: "get_weather".into(),
                            arguments: r#"{"city":"Paris"}"#.into(),
                        }),
                        Part::ToolCall(ToolCall {
                            id: "tooluse_2".into(),
                            name: "get_time".into(),
                            arguments: String::new(),
                        }),
                    ],
                },
                Message {
                    role: Role::Tool,
                    parts: vec![Part::ToolResult(ToolResult {
                        call_id: "tooluse_1".into(),
                        content: vec![Part::Text("21C".into())],
                        is_error: false,
                    })],
                },
                Message {
                    role: Role::Tool,
                    parts: vec![Part::ToolResult(ToolResult {
                        call_id: "tooluse_2".into(),
                        content: vec![],
                        is_error: true,
                    })],
                },
                user("Thanks"),
            ],
            tools: vec![
                weather_tool(),
                Tool { name: "get_time".into(), description: None, parameters: json!({"type":"object"}) },
            ],
            tool_choice: Some(ToolChoice::Required),
            parallel_tool_calls: Some(true),
            ..Chat::default()
        };
        let (body, ok) = encode(&chat, CLAUDE, false);
        assert_eq!(ok, Ok(()));
        assert_eq!(
            body,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "Weather in Paris and the time?"}]},
                    {"role": "assistant", "content": [
                        {"reasoningContent": {"reasoningText": {"text": "Two tools.", "signature": "sig"}}},
                        {"text": "Checking."},
                        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
                        {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "21C"}]}},
                        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": ""}], "status": "error"}},
                        {"text": "Thanks"}
                    ]}
                ],
                "toolConfig": {
                    "tools": [
                        {"toolSpec": {"name": "get_weather", "description": "Weather of a city", "inputSchema": {"json": {"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}},
                        {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}
                    ],
                    "toolChoice": {"any": {}}
                }
            })
        );
    }

    #[test]
    fn tool_choices() {
        let base = Chat { messages: vec![user("Hi")], tools: vec![weather_tool()], ..Chat::default() };
        let cases: &[(Option<ToolChoice>, Option<Value>)] = &[
            (None, Some(json!({"auto": {}}))),
            (Some(ToolChoice::Auto), Some(json!({"auto": {}}))),
            (Some(ToolChoice::Required), Some(json!({"any": {}}))),
            (Some(ToolChoice::Named("get_weather".into())), Some(json!({"tool": {"name": "get_weather"}}))),
            // "none" without tool history: no toolConfig at all, so no tool can be called.
            (Some(ToolChoice::None), None),
        ];
        for (choice, want) in cases {
            let chat = Chat { tool_choice: choice.clone(), ..base.clone() };
            let (body, ok) = encode(&chat, CLAUDE, false);
            assert_eq!(ok, Ok(()), "{choice:?}");
            assert_eq!(body.get("toolConfig").map(|c| c["toolChoice"].clone()), *want, "{choice:?}");
        }
        // "none" with tool history cannot be expressed.
        let mut chat = Chat { tool_choice: Some(ToolChoice::None), ..base.clone() };
        chat.messages.push(Message {
            role: Role::Assistant,
            parts: vec![Part::ToolCall(ToolCall {
                id: "t".into(),
                name: "get_weather".into(),
                arguments: "{}".into(),
            })],
        });
        assert_eq!(encode(&chat, CLAUDE, false).1, Err("tool_choice".into()));
        // No tools: no toolConfig, whatever the choice.
        let chat = Chat { messages: vec![user("Hi")], tool_choice: Some(ToolChoice::Required), ..Chat::default() };
        assert!(encode(&chat, CLAUDE, false).0.get("toolConfig").is_none());
    }

    #[test]
    fn images() {
        let chat = Chat {
            messages: vec![Message {
                role: Role::User,
                parts: vec![
                    Part::Text("What is this?".into()),
                    Part::Image(Image::Base64 { media_type: "image/jpeg".into(), data: "/9j/4AAQ".into() }),
                    Part::Image(Image::Base64 { media_type: "image/PNG".into(), data: "iVBOR".into() }),
                ],
            }],
            ..Chat::default()
        };
        let (body, ok) = encode(&chat, CLAUDE, false);
        assert_eq!(ok, Ok(()));
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"text": "What is this?"},
                {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
                {"image": {"format": "png", "source": {"bytes": "iVBOR"}}}
            ])
        );
        for image in [
            Image::Url("https://example.com/a.png".into()),
            Image::Base64 { media_type: "image/bmp".into(), data: "Qk0".into() },
        ] {
            let chat = Chat {
                messages: vec![Message {
                    role: Role::User,
                    parts: vec![Part::Text("x".into()), Part::Image(image.clone())],
                }],
                ..Chat::default()
            };
            assert_eq!(encode(&chat, CLAUDE, false).1, Err("image_url".into()), "{image:?}");
            // Dropped when allowed: the image part goes, the text stays.
            let (body, ok) = encode(&chat, CLAUDE, true);
            assert_eq!(ok, Ok(()));
            assert_eq!(body["messages"][0]["content"], json!([{"text": "x"}]));
        }
    }

    #[test]
    fn unsupported_parameters_are_named() {
        let base = Chat { messages: vec![user("Hi")], ..Chat::default() };
        let cases: Vec<(Chat, &str)> = vec![
            (Chat { seed: Some(1), ..base.clone() }, "seed"),
            (Chat { presence_penalty: Some(0.1), ..base.clone() }, "presence_penalty"),
            (Chat { frequency_penalty: Some(0.1), ..base.clone() }, "frequency_penalty"),
            (Chat { user: Some("u".into()), ..base.clone() }, "user"),
            (Chat { response_format: Some(ResponseFormat::JsonObject), ..base.clone() }, "response_format"),
            (
                Chat {
                    response_format: Some(ResponseFormat::JsonSchema { name: "x".into(), schema: json!({}) }),
                    ..base.clone()
                },
                "response_format",
            ),
            (Chat { parallel_tool_calls: Some(false), ..base.clone() }, "parallel_tool_calls"),
            (Chat { unmapped: vec!["logit_bias".into()], seed: Some(1), ..base.clone() }, "logit_bias"),
            (
                Chat {
                    messages: vec![Message {
                        role: Role::Assistant,
                        parts: vec![Part::ToolCall(ToolCall {
                            id: "t".into(),
                            name: "f".into(),
                            arguments: "{oops".into(),
                        })],
                    }],
                    ..base.clone()
                },
                "tool_calls[].function.arguments (not valid JSON)",
            ),
        ];
        for (chat, param) in cases {
            assert_eq!(encode(&chat, CLAUDE, false).1, Err(param.to_owned()), "{param}");
            assert_eq!(encode(&chat, CLAUDE, true).1, Ok(()), "{param} dropped");
        }
        let text = Chat { response_format: Some(ResponseFormat::Text), ..base };
        assert_eq!(encode(&text, CLAUDE, false).1, Ok(()));
    }
}
