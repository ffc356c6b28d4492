//! Canonical chat and embeddings requests as Cohere v2 bodies (providers.md 6.2 and 6.5).
//!
//! v2 is close to OpenAI: roles `system|user|assistant|tool`, tool calls with JSON-text arguments. It differs in
//! names (`p`, `k`, `stop_sequences`), in `tool_choice` (only `REQUIRED` and `NONE`), in JSON schemas
//! (`{"type":"json_object","json_schema":..}`), and in having no `n`, `logit_bias`, `parallel_tool_calls` or
//! `user`. What it cannot express goes through [`ParamCheck`], refused unless `drop_params`.

use serde_json::{json, Map, Value};

use super::PROVIDER;
use crate::{
    llm::{
        chat::{Chat, Message, ParamCheck, Part, ResponseFormat, Role, ToolChoice, ToolResult, Unsupported},
        embed::EmbedInput,
    },
    providers::codec::CallOptions,
};

/// LiteLLM's default `input_type` for Cohere embeddings; v3+ models require one and OpenAI has no equivalent.
const DEFAULT_INPUT_TYPE: &str = "search_document";

/// The `/v2/chat` body for `chat`.
pub(super) fn chat_body(chat: &Chat, options: CallOptions<'_>) -> Result<Value, Unsupported> {
    let mut check = ParamCheck::new(PROVIDER, options.drop_params, chat);
    let mut body = Map::new();
    body.insert("model".into(), options.upstream_model.into());
    body.insert("messages".into(), Value::Array(messages(chat, &mut check)));
    if !chat.tools.is_empty() {
        let tools = chat.tools.iter().map(|t| {
            let mut function = Map::new();
            function.insert("name".into(), t.name.clone().into());
            if let Some(d) = &t.description {
                function.insert("description".into(), d.clone().into());
            }
            function.insert("parameters".into(), t.parameters.clone());
            json!({"type": "function", "function": function})
        });
        body.insert("tools".into(), tools.collect());
    }
    match &chat.tool_choice {
        // `auto` is v2's behaviour when `tool_choice` is absent.
        None | Some(ToolChoice::Auto) => {}
        // Without tools there is nothing to forbid, and v2 may reject a `tool_choice` with no tools.
        Some(ToolChoice::None) if chat.tools.is_empty() => {}
        Some(ToolChoice::None) => {
            body.insert("tool_choice".into(), "NONE".into());
        }
        Some(ToolChoice::Required) => {
            body.insert("tool_choice".into(), "REQUIRED".into());
        }
        // v2 cannot name the tool. providers.md suggests REQUIRED with only that tool in `tools`, but that
        // silently changes the tool list the model sees; refusing (or dropping, when allowed) is honest.
        Some(ToolChoice::Named(_)) => check.unsupported("tool_choice"),
    }
    // Calling several tools at once is v2's default; only turning it off cannot be expressed.
    if chat.parallel_tool_calls == Some(false) {
        check.unsupported("parallel_tool_calls");
    }
    if chat.user.is_some() {
        check.unsupported("user");
    }
    let numbers: [(&str, Option<Value>); 7] = [
        ("max_tokens", chat.max_tokens.map(Value::from)),
        ("temperature", chat.temperature.map(Value::from)),
        ("p", chat.top_p.map(Value::from)),
        ("k", chat.top_k.map(Value::from)),
        ("seed", chat.seed.map(Value::from)),
        ("frequency_penalty", chat.frequency_penalty.map(Value::from)),
        ("presence_penalty", chat.presence_penalty.map(Value::from)),
    ];
    for (name, value) in numbers {
        if let Some(v) = value {
            body.insert(name.into(), v);
        }
    }
    if !chat.stop.is_empty() {
        body.insert("stop_sequences".into(), chat.stop.clone().into());
    }
    match &chat.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        // v2 takes the bare schema; OpenAI's schema name has no place (it only labels the schema).
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert("response_format".into(), json!({"type": "json_object", "json_schema": schema}));
        }
    }
    // Streams need no opt-in for usage: v2 always reports it in `message-end`.
    body.insert("stream".into(), options.stream.into());
    check.finish()?;
    Ok(Value::Object(body))
}

/// System instructions first (the canonical chat keeps them apart), then the conversation.
fn messages(chat: &Chat, check: &mut ParamCheck) -> Vec<Value> {
    let mut out: Vec<Value> = chat.system.iter().map(|s| json!({"role": "system", "content": s})).collect();
    for m in &chat.messages {
        match m.role {
            Role::User | Role::Tool => user_or_tool(m, check, &mut out),
            Role::Assistant => out.push(assistant(m, check)),
        }
    }
    out
}

/// A user turn, or tool results: each tool result is a `tool` message of its own; the user's own parts go in a
/// `user` message, in the order they came (Anthropic puts tool results and text in one user turn).
fn user_or_tool(m: &Message, check: &mut ParamCheck, out: &mut Vec<Value>) {
    let mut content: Vec<&Part> = Vec::new();
    for part in &m.parts {
        match part {
            Part::ToolResult(r) => {
                if !content.is_empty() {
                    out.push(user(&content, check));
                    content.clear();
                }
                out.push(tool_result(r, check));
            }
            other => content.push(other),
        }
    }
    if !content.is_empty() || m.parts.is_empty() {
        out.push(user(&content, check));
    }
}

fn user(parts: &[&Part], check: &mut ParamCheck) -> Value {
    match parts {
        [Part::Text(text)] => return json!({"role": "user", "content": text}),
        [] => return json!({"role": "user", "content": ""}),
        _ => {}
    }
    let mut content = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::Text(text) => content.push(json!({"type": "text", "text": text})),
            Part::Image(image) => content.push(json!({"type": "image_url", "image_url": {"url": image.to_url()}})),
            // Reasoning and tool calls belong to assistant turns; a user turn has no place for them.
            Part::Reasoning { .. } => check.unsupported("reasoning_content"),
            Part::ToolCall(_) => check.unsupported("tool_calls"),
            Part::ToolResult(_) => {}
        }
    }
    json!({"role": "user", "content": content})
}

/// A tool result: v2 takes a string (or text/document parts); it has no images and no error flag. An error
/// result's text still says what went wrong, so `is_error` is not refused: the model reads the same words.
fn tool_result(r: &ToolResult, check: &mut ParamCheck) -> Value {
    if r.content.iter().any(|p| !matches!(p, Part::Text(_))) {
        check.unsupported("image_url");
    }
    json!({"role": "tool", "tool_call_id": r.call_id, "content": r.text()})
}

/// An assistant turn: text as `content`, tool calls as `tool_calls`, and reasoning as `tool_plan` when the turn
/// calls tools (v2's plan before tool calls, which is what reasoning before a call is), else as `thinking`
/// content items (what v2 reasoning models return).
fn assistant(m: &Message, check: &mut ParamCheck) -> Value {
    let calls: Vec<Value> = m
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(json!({
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })),
            _ => None,
        })
        .collect();
    let mut plan = String::new();
    let mut content = Vec::new();
    for part in &m.parts {
        match part {
            Part::Text(text) => content.push(json!({"type": "text", "text": text})),
            Part::Reasoning { text, .. } if !calls.is_empty() => plan.push_str(text),
            Part::Reasoning { text, .. } => content.push(json!({"type": "thinking", "thinking": text})),
            Part::Image(_) => check.unsupported("image_url"),
            Part::ToolResult(_) => check.unsupported("tool_results"),
            Part::ToolCall(_) => {}
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), "assistant".into());
    if !plan.is_empty() {
        msg.insert("tool_plan".into(), plan.into());
    }
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), calls.into());
    }
    let only_text: Option<Vec<&str>> = content.iter().map(|c| c.get("text").and_then(Value::as_str)).collect();
    match only_text {
        // Plain text as a string, the form every v2 example uses.
        Some(texts) if !texts.is_empty() => {
            msg.insert("content".into(), texts.concat().into());
        }
        _ if !content.is_empty() => {
            msg.insert("content".into(), content.into());
        }
        // A turn with tool calls needs no content; an empty turn still says it spoke.
        _ if !msg.contains_key("tool_calls") => {
            msg.insert("content".into(), "".into());
        }
        _ => {}
    }
    Value::Object(msg)
}

/// The `/v2/embed` body: float vectors, `search_document` inputs (LiteLLM's default), and `output_dimension`
/// for OpenAI's `dimensions` (v2 takes it for embed-v4 and later; older models answer with their own error).
pub(super) fn embed_body(input: &EmbedInput, upstream_model: &str) -> Value {
    let mut body = json!({
        "model": upstream_model,
        "texts": input.texts,
        "input_type": DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    });
    if let (Some(dimensions), Value::Object(map)) = (input.dimensions, &mut body) {
        map.insert("output_dimension".into(), dimensions.into());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::chat::{Image, Tool, ToolCall};

    fn opts(stream: bool, drop_params: bool) -> CallOptions<'static> {
        CallOptions { upstream_model: "command-a-03-2025", stream, drop_params }
    }

    fn user_text(text: &str) -> Message {
        Message { role: Role::User, parts: vec![Part::Text(text.into())] }
    }

    fn weather_tool() -> Tool {
        Tool {
            name: "get_weather".into(),
            description: Some("Weather by city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        }
    }

    fn body(chat: &Chat, stream: bool) -> Value {
        chat_body(chat, opts(stream, false)).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn text_and_system_become_v2_messages() {
        let chat = Chat {
            system: vec!["You are terse.".into(), "Answer in French.".into()],
            messages: vec![
                user_text("Hi"),
                Message { role: Role::Assistant, parts: vec![Part::Text("Bonjour".into())] },
                user_text("Weather?"),
            ],
            ..Chat::default()
        };
        assert_eq!(
            body(&chat, false),
            json!({"model": "command-a-03-2025", "stream": false, "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Bonjour"},
                {"role": "user", "content": "Weather?"},
            ]})
        );
    }

    #[test]
    fn tools_tool_calls_plans_and_results() {
        let chat = Chat {
            messages: vec![
                user_text("Weather in Paris and Rome?"),
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning { text: "I will call get_weather twice.".into(), signature: None },
                        Part::ToolCall(ToolCall {
                            id: "w1".into(),
                            name: "get_weather".into(),
                            arguments: r#"{"city":"Paris"}"#.into(),
                        }),
                        Part::ToolCall(ToolCall {
                            id: "w2".into(),
                            name: "get_weather".into(),
                            arguments: "{}".into(),
                        }),
                    ],
                },
                Message {
                    role: Role::Tool,
                    parts: vec![
                        Part::ToolResult(ToolResult {
                            call_id: "w1".into(),
                            content: vec![Part::Text("21C".into())],
                            is_error: false,
                        }),
                        Part::ToolResult(ToolResult {
                            call_id: "w2".into(),
                            content: vec![Part::Text("city missing".into())],
                            is_error: true,
                        }),
                    ],
                },
                // Anthropic's shape: a tool result and the user's words in one user turn.
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::ToolResult(ToolResult {
                            call_id: "w3".into(),
                            content: vec![Part::Text("a".into()), Part::Text("b".into())],
                            is_error: false,
                        }),
                        Part::Text("Thanks".into()),
                    ],
                },
            ],
            tools: vec![weather_tool(), Tool { name: "now".into(), description: None, parameters: json!({}) }],
            tool_choice: Some(ToolChoice::Required),
            parallel_tool_calls: Some(true),
            ..Chat::default()
        };
        assert_eq!(
            body(&chat, true),
            json!({
                "model": "command-a-03-2025",
                "stream": true,
                "messages": [
                    {"role": "user", "content": "Weather in Paris and Rome?"},
                    {"role": "assistant", "tool_plan": "I will call get_weather twice.", "tool_calls": [
                        {"id": "w1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "w2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                    ]},
                    {"role": "tool", "tool_call_id": "w1", "content": "21C"},
                    {"role": "tool", "tool_call_id": "w2", "content": "city missing"},
                    {"role": "tool", "tool_call_id": "w3", "content": "ab"},
                    {"role": "user", "content": "Thanks"},
                ],
                "tools": [
                    {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                    {"type": "function", "function": {"name": "now", "parameters": {}}},
                ],
                "tool_choice": "REQUIRED",
            })
        );
    }

    #[test]
    fn images_are_image_url_parts_and_reasoning_without_tools_is_thinking() {
        let chat = Chat {
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::Text("What is this?".into()),
                        Part::Image(Image::Base64 { media_type: "image/png".into(), data: "iVBOR".into() }),
                        Part::Image(Image::Url("https://example.com/a.jpg".into())),
                    ],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning { text: "Looks like a cat.".into(), signature: Some("sig".into()) },
                        Part::Text("A cat.".into()),
                    ],
                },
            ],
            ..Chat::default()
        };
        assert_eq!(
            body(&chat, false)["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Looks like a cat."},
                    {"type": "text", "text": "A cat."},
                ]},
            ])
        );
    }

    #[test]
    fn sampling_stop_seed_penalties_and_response_formats() {
        let base = Chat {
            messages: vec![user_text("x")],
            max_tokens: Some(512),
            temperature: Some(0.3),
            top_p: Some(0.9),
            top_k: Some(40),
            stop: vec!["END".into(), "STOP".into()],
            seed: Some(7),
            frequency_penalty: Some(0.5),
            presence_penalty: Some(0.25),
            ..Chat::default()
        };
        let cases = [
            (None, None),
            (Some(ResponseFormat::Text), None),
            (Some(ResponseFormat::JsonObject), Some(json!({"type": "json_object"}))),
            (
                Some(ResponseFormat::JsonSchema { name: "person".into(), schema: json!({"type": "object"}) }),
                Some(json!({"type": "json_object", "json_schema": {"type": "object"}})),
            ),
        ];
        for (format, want_format) in cases {
            let chat = Chat { response_format: format.clone(), ..base.clone() };
            let mut want = json!({
                "model": "command-a-03-2025", "stream": false, "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 512, "temperature": 0.3, "p": 0.9, "k": 40, "stop_sequences": ["END", "STOP"],
                "seed": 7, "frequency_penalty": 0.5, "presence_penalty": 0.25,
            });
            if let (Some(f), Value::Object(map)) = (want_format, &mut want) {
                map.insert("response_format".into(), f);
            }
            assert_eq!(body(&chat, false), want, "{format:?}");
        }
    }

    #[test]
    fn tool_choice_mapping() {
        let with_tools = |choice| Chat {
            messages: vec![user_text("x")],
            tools: vec![weather_tool()],
            tool_choice: Some(choice),
            ..Chat::default()
        };
        let cases =
            [(ToolChoice::Auto, None), (ToolChoice::None, Some("NONE")), (ToolChoice::Required, Some("REQUIRED"))];
        for (choice, want) in cases {
            let got = body(&with_tools(choice.clone()), false);
            assert_eq!(got.get("tool_choice").and_then(Value::as_str), want, "{choice:?}");
        }
        // `none` without tools says nothing v2 needs to hear.
        let no_tools = Chat { messages: vec![user_text("x")], tool_choice: Some(ToolChoice::None), ..Chat::default() };
        assert_eq!(body(&no_tools, false).get("tool_choice"), None);
    }

    #[test]
    fn what_v2_cannot_express_is_refused_unless_dropped() {
        let tool_result_with_image = Message {
            role: Role::Tool,
            parts: vec![Part::ToolResult(ToolResult {
                call_id: "c".into(),
                content: vec![Part::Image(Image::Url("https://x/y.png".into()))],
                is_error: false,
            })],
        };
        let assistant_image =
            Message { role: Role::Assistant, parts: vec![Part::Image(Image::Url("https://x/y.png".into()))] };
        let base = Chat { messages: vec![user_text("x")], tools: vec![weather_tool()], ..Chat::default() };
        let cases: Vec<(Chat, &str)> = vec![
            (Chat { tool_choice: Some(ToolChoice::Named("get_weather".into())), ..base.clone() }, "tool_choice"),
            (Chat { parallel_tool_calls: Some(false), ..base.clone() }, "parallel_tool_calls"),
            (Chat { user: Some("u-1".into()), ..base.clone() }, "user"),
            (Chat { unmapped: vec!["logit_bias".into()], ..base.clone() }, "logit_bias"),
            (Chat { messages: vec![tool_result_with_image], ..base.clone() }, "image_url"),
            (Chat { messages: vec![assistant_image], ..base.clone() }, "image_url"),
        ];
        for (chat, param) in cases {
            let refused = chat_body(&chat, opts(false, false)).map(|_| ()).map_err(|e| e.param);
            assert_eq!(refused, Err(param.to_owned()));
            let dropped = chat_body(&chat, opts(false, true)).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(dropped.get("tool_choice"), None, "a dropped named choice leaves v2's default (auto)");
            assert_eq!(dropped.get("user"), None);
        }
    }

    #[test]
    fn embed_bodies() {
        let input = EmbedInput { texts: vec!["a".into(), "b c".into()], dimensions: None };
        assert_eq!(
            embed_body(&input, "embed-v4.0"),
            json!({"model": "embed-v4.0", "texts": ["a", "b c"], "input_type": "search_document", "embedding_types": ["float"]})
        );
        let input = EmbedInput { dimensions: Some(256), ..input };
        assert_eq!(embed_body(&input, "embed-v4.0")["output_dimension"], 256);
    }
}
