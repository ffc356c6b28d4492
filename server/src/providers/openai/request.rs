//! The caller's OpenAI chat request as the canonical [`Chat`], when it must cross to another dialect (`encode.rs`
//! is the other way). OpenAI-to-OpenAI requests never come here: they are spliced as the caller's bytes
//! (`OpenAiCompatible::chat_body`).
//!
//! Decoding never loses a field silently: whatever the caller set that the canonical chat cannot carry is named in
//! `chat.unmapped` (refused unless the deployment drops parameters), except fields that change nothing about the
//! answer ([`HARMLESS`]). A field of the wrong shape is the caller's error, a 400 naming it.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::{json, value::RawValue, Map, Value};

use crate::llm::{
    chat::{Chat, Image, Message, Part, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolResult},
    ChatRequest, RequestError,
};

/// Fields read elsewhere (`model`, `messages`, `stream`, `stream_options`, and tollgate's routing fields) or that only
/// tune OpenAI's own service (stored completions, priority tier, prompt-cache routing): dropping them changes
/// nothing about the answer.
const HARMLESS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "fallbacks",
    "disable_fallbacks",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
];

pub(super) fn invalid(param: &'static str, message: impl Into<String>) -> RequestError {
    RequestError::InvalidField { param, message: message.into() }
}

/// One top-level field as `T`, or a 400 naming it.
pub(super) fn field<T: DeserializeOwned>(
    raw: &RawValue,
    param: &'static str,
    expected: &str,
) -> Result<T, RequestError> {
    serde_json::from_str(raw.get()).map_err(|_| invalid(param, format!("`{param}` must be {expected}")))
}

/// A field the chat cannot carry. Names repeat (one per audio part, say) until `decode_request` dedupes them once:
/// a scan per push would be quadratic in a body of many unknown keys.
pub(super) fn unmapped(chat: &mut Chat, name: &str) {
    chat.unmapped.push(name.to_owned());
}

/// The caller's OpenAI chat request as the canonical chat.
pub fn decode_request(req: &ChatRequest<'_>) -> Result<Chat, RequestError> {
    let mut chat = Chat { stream: req.stream, ..Chat::default() };
    let (mut max_completion_tokens, mut max_tokens, mut safety_identifier) = (None, None, None);
    for (key, raw) in &req.body.fields {
        // `null` means "not set" in OpenAI's API.
        if raw.get() == "null" || HARMLESS.contains(&key.as_ref()) {
            continue;
        }
        match key.as_ref() {
            "max_completion_tokens" => {
                max_completion_tokens = Some(field(raw, "max_completion_tokens", "a non-negative integer")?)
            }
            "max_tokens" => max_tokens = Some(field(raw, "max_tokens", "a non-negative integer")?),
            // OpenAI's successor of `user`, used only when `user` is absent.
            "safety_identifier" => safety_identifier = Some(field(raw, "safety_identifier", "a string")?),
            "parallel_tool_calls" => chat.parallel_tool_calls = Some(field(raw, "parallel_tool_calls", "a boolean")?),
            "response_format" => chat.response_format = Some(response_format(raw)?),
            "tools" => tools(raw, &mut chat)?,
            "tool_choice" => tool_choice(raw, &mut chat)?,
            "logprobs" => {
                if field::<bool>(raw, "logprobs", "a boolean")? {
                    unmapped(&mut chat, "logprobs");
                }
            }
            other => {
                if !sampling_field(&mut chat, other, raw)? {
                    unmapped(&mut chat, other);
                }
            }
        }
    }
    chat.max_tokens = max_completion_tokens.or(max_tokens);
    chat.user = chat.user.or(safety_identifier);
    messages(req.messages, &mut chat)?;
    dedupe_unmapped(&mut chat);
    Ok(chat)
}

/// The fields OpenAI's chat and text completions share, read into `chat`; `Ok(false)` if `key` is none of them.
pub(super) fn sampling_field(chat: &mut Chat, key: &str, raw: &RawValue) -> Result<bool, RequestError> {
    match key {
        "temperature" => chat.temperature = Some(field(raw, "temperature", "a number")?),
        "top_p" => chat.top_p = Some(field(raw, "top_p", "a number")?),
        // Not OpenAI's, but vLLM, Together and others take it, and the canonical chat carries it.
        "top_k" => chat.top_k = Some(field(raw, "top_k", "a non-negative integer")?),
        "stop" => chat.stop = stop(raw)?,
        "seed" => chat.seed = Some(field(raw, "seed", "an integer")?),
        "presence_penalty" => chat.presence_penalty = Some(field(raw, "presence_penalty", "a number")?),
        "frequency_penalty" => chat.frequency_penalty = Some(field(raw, "frequency_penalty", "a number")?),
        "user" => chat.user = Some(field(raw, "user", "a string")?),
        "n" => {
            if field::<u64>(raw, "n", "a positive integer")? != 1 {
                unmapped(chat, "n");
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Each unmapped name once, in order of first appearance (one pass with a set: linear in the body).
pub(super) fn dedupe_unmapped(chat: &mut Chat) {
    let mut seen = HashSet::with_capacity(chat.unmapped.len());
    chat.unmapped.retain(|name| seen.insert(name.clone()));
}

fn stop(raw: &RawValue) -> Result<Vec<String>, RequestError> {
    let expected = "a string or an array of strings";
    match field::<Value>(raw, "stop", expected)? {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(invalid("stop", format!("`stop` must be {expected}"))),
            })
            .collect(),
        _ => Err(invalid("stop", format!("`stop` must be {expected}"))),
    }
}

fn response_format(raw: &RawValue) -> Result<ResponseFormat, RequestError> {
    let v: Value = field(raw, "response_format", "an object")?;
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let spec = v.get("json_schema").filter(|s| s.is_object()).ok_or_else(|| {
                invalid("response_format", "`response_format.json_schema` is required for type `json_schema`")
            })?;
            let name = spec.get("name").and_then(Value::as_str).unwrap_or("response").to_owned();
            // OpenAI's schema is optional ("any JSON object"); `strict` has no canonical place and only tightens
            // validation of an answer the schema already describes.
            let schema = spec.get("schema").cloned().unwrap_or_else(|| json!({"type": "object"}));
            Ok(ResponseFormat::JsonSchema { name, schema })
        }
        _ => Err(invalid("response_format", "`response_format.type` must be `text`, `json_object` or `json_schema`")),
    }
}

fn tools(raw: &RawValue, chat: &mut Chat) -> Result<(), RequestError> {
    let list: Vec<Value> = field(raw, "tools", "an array of tools")?;
    for (i, t) in list.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            // Custom (free-text) tools have no canonical form.
            unmapped(chat, "tools");
            continue;
        }
        let f = t.get("function").ok_or_else(|| invalid("tools", format!("`tools[{i}].function` is required")))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("tools", format!("`tools[{i}].function.name` must be a string")))?;
        let description = f.get("description").and_then(Value::as_str).map(str::to_owned);
        // OpenAI allows omitting `parameters`: a function without arguments.
        let parameters = match f.get("parameters") {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => return Err(invalid("tools", format!("`tools[{i}].function.parameters` must be an object"))),
        };
        chat.tools.push(Tool { name: name.to_owned(), description, parameters });
    }
    Ok(())
}

fn tool_choice(raw: &RawValue, chat: &mut Chat) -> Result<(), RequestError> {
    let v: Value = field(raw, "tool_choice", "a string or an object")?;
    let choice = match &v {
        Value::String(s) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => return Err(invalid("tool_choice", "`tool_choice` must be `auto`, `none`, `required` or an object")),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("tool_choice", "`tool_choice.function.name` must be a string"))?;
                ToolChoice::Named(name.to_owned())
            }
            // `allowed_tools` and `custom` choices have no canonical form.
            Some(_) => {
                unmapped(chat, "tool_choice");
                return Ok(());
            }
            None => return Err(invalid("tool_choice", "`tool_choice.type` is required")),
        },
        _ => return Err(invalid("tool_choice", "`tool_choice` must be a string or an object")),
    };
    chat.tool_choice = Some(choice);
    Ok(())
}

fn messages(raw: &RawValue, chat: &mut Chat) -> Result<(), RequestError> {
    let list: Vec<Value> = field(raw, "messages", "an array of messages")?;
    for (i, m) in list.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(invalid("messages", format!("`messages[{i}]` must be an object")));
        };
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("messages", format!("`messages[{i}].role` must be a string")))?;
        let content = m.get("content").filter(|c| !c.is_null());
        match role {
            "system" | "developer" => {
                let content =
                    content.ok_or_else(|| invalid("messages", format!("`messages[{i}].content` is required")))?;
                for part in content_parts(content, i, chat)? {
                    match part {
                        Part::Text(t) => chat.system.push(t),
                        _ => {
                            return Err(invalid("messages", format!("`messages[{i}].content` must be text only")));
                        }
                    }
                }
            }
            "user" => {
                let content =
                    content.ok_or_else(|| invalid("messages", format!("`messages[{i}].content` is required")))?;
                let parts = content_parts(content, i, chat)?;
                chat.messages.push(Message { role: Role::User, parts });
            }
            "assistant" => {
                let parts = assistant_parts(m, content, i, chat)?;
                chat.messages.push(Message { role: Role::Assistant, parts });
            }
            "tool" => {
                let call_id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("messages", format!("`messages[{i}].tool_call_id` must be a string")))?;
                let content = match content {
                    Some(c) => content_parts(c, i, chat)?,
                    None => Vec::new(),
                };
                let result = Part::ToolResult(ToolResult { call_id: call_id.to_owned(), content, is_error: false });
                // Results of one turn's calls travel together (Anthropic wants them in one message).
                match chat.messages.last_mut() {
                    Some(last) if last.role == Role::Tool => last.parts.push(result),
                    _ => chat.messages.push(Message { role: Role::Tool, parts: vec![result] }),
                }
            }
            // Legacy function-calling history has no canonical form.
            "function" => unmapped(chat, "function_call"),
            other => {
                return Err(invalid(
                    "messages",
                    format!("`messages[{i}].role` `{other}` is not one of system, developer, user, assistant, tool"),
                ))
            }
        }
    }
    Ok(())
}

/// A message's `content`: a string, or parts (text, images; audio and files have no canonical form).
fn content_parts(content: &Value, i: usize, chat: &mut Chat) -> Result<Vec<Part>, RequestError> {
    let items = match content {
        Value::String(s) => return Ok(vec![Part::Text(s.clone())]),
        Value::Array(items) => items,
        _ => return Err(invalid("messages", format!("`messages[{i}].content` must be a string or an array"))),
    };
    let mut parts = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let bad = |what: &str| invalid("messages", format!("`messages[{i}].content[{j}]` {what}"));
        match item.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = item.get("text").and_then(Value::as_str).ok_or_else(|| bad("needs a string `text`"))?;
                parts.push(Part::Text(text.to_owned()));
            }
            // An assistant's earlier refusal is what it said.
            Some("refusal") => {
                let text =
                    item.get("refusal").and_then(Value::as_str).ok_or_else(|| bad("needs a string `refusal`"))?;
                parts.push(Part::Text(text.to_owned()));
            }
            Some("image_url") => {
                // `detail` has no canonical place; providers pick their own resolution.
                let url = match item.get("image_url") {
                    Some(Value::String(url)) => url.as_str(),
                    Some(obj) => obj.get("url").and_then(Value::as_str).ok_or_else(|| bad("needs `image_url.url`"))?,
                    None => return Err(bad("needs `image_url`")),
                };
                parts.push(Part::Image(Image::from_url(url)));
            }
            Some(kind @ ("input_audio" | "file")) => unmapped(chat, kind),
            Some(other) => return Err(bad(&format!("has unknown type `{other}`"))),
            None => return Err(bad("needs a `type`")),
        }
    }
    Ok(parts)
}

/// Reasoning (LiteLLM's `thinking_blocks` with signatures, else `reasoning_content`), text, then tool calls.
fn assistant_parts(
    m: &Map<String, Value>,
    content: Option<&Value>,
    i: usize,
    chat: &mut Chat,
) -> Result<Vec<Part>, RequestError> {
    let mut parts = Vec::new();
    let blocks = m.get("thinking_blocks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for b in blocks {
        if b.get("type").and_then(Value::as_str) == Some("thinking") {
            parts.push(Part::Reasoning {
                text: b.get("thinking").and_then(Value::as_str).unwrap_or_default().to_owned(),
                signature: b.get("signature").and_then(Value::as_str).map(str::to_owned),
            });
        }
    }
    if parts.is_empty() {
        if let Some(text) = m.get("reasoning_content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            parts.push(Part::Reasoning { text: text.to_owned(), signature: None });
        }
    }
    if let Some(content) = content {
        parts.extend(
            content_parts(content, i, chat)?.into_iter().filter(|p| !matches!(p, Part::Text(t) if t.is_empty())),
        );
    }
    if m.get("function_call").is_some_and(|f| !f.is_null()) {
        unmapped(chat, "function_call");
    }
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid("messages", format!("`messages[{i}].tool_calls` must be an array"))),
    };
    for (j, c) in calls.iter().enumerate() {
        let bad = |what: &str| invalid("messages", format!("`messages[{i}].tool_calls[{j}]` {what}"));
        let id = c.get("id").and_then(Value::as_str).ok_or_else(|| bad("needs a string `id`"))?;
        let f = c.get("function").ok_or_else(|| bad("needs `function`"))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| bad("needs a string `function.name`"))?;
        let arguments = match f.get("arguments") {
            Some(Value::String(a)) => a.clone(),
            // Some clients send the object itself; its JSON text is what OpenAI meant.
            Some(a @ Value::Object(_)) => a.to_string(),
            _ => return Err(bad("needs a string `function.arguments`")),
        };
        parts.push(Part::ToolCall(ToolCall { id: id.to_owned(), name: name.to_owned(), arguments }));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &Value) -> Result<Chat, RequestError> {
        let bytes = body.to_string();
        let req = ChatRequest::parse(bytes.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        decode_request(&req)
    }

    fn decoded(body: Value) -> Chat {
        decode(&body).unwrap_or_else(|e| unreachable!("{e}: {body}"))
    }

    fn text(role: Role, t: &str) -> Message {
        Message { role, parts: vec![Part::Text(t.into())] }
    }

    fn call(id: &str, name: &str, arguments: &str) -> Part {
        Part::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() })
    }

    fn result(call_id: &str, content: Vec<Part>) -> Part {
        Part::ToolResult(ToolResult { call_id: call_id.into(), content, is_error: false })
    }

    #[test]
    fn decodes_a_full_request() {
        let chat = decoded(json!({
            "model": "group", "stream": true, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "developer", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
                {"role": "user", "name": "bob", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}]},
                {"role": "assistant", "content": null, "reasoning_content": "hm", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "assistant", "content": "It is 21C at noon."},
                {"role": "user", "content": "Thanks"}],
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Weather now",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}},
                {"type": "function", "function": {"name": "time"}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "parallel_tool_calls": false, "max_tokens": 10, "max_completion_tokens": 100, "temperature": 0.5,
            "top_p": 1, "stop": "END", "seed": 7, "presence_penalty": 0.1, "frequency_penalty": -0.2,
            "user": "u-1", "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
            "n": 1, "logprobs": false, "metadata": {"a": "b"}, "store": false, "service_tier": "auto", "logit_bias": null,
        }));
        let want = Chat {
            system: vec!["Be terse.".into(), "A".into(), "B".into()],
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::Text("What is this?".into()),
                        Part::Image(Image::Base64 { media_type: "image/png".into(), data: "iVBOR".into() }),
                        Part::Image(Image::Url("https://x.test/a.jpg".into())),
                    ],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning { text: "hm".into(), signature: None },
                        call("call_1", "weather", r#"{"city":"Paris"}"#),
                        call("call_2", "time", "{}"),
                    ],
                },
                Message {
                    role: Role::Tool,
                    parts: vec![
                        result("call_1", vec![Part::Text("21C".into())]),
                        result("call_2", vec![Part::Text("noon".into())]),
                    ],
                },
                text(Role::Assistant, "It is 21C at noon."),
                text(Role::User, "Thanks"),
            ],
            tools: vec![
                Tool {
                    name: "weather".into(),
                    description: Some("Weather now".into()),
                    parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
                },
                Tool {
                    name: "time".into(),
                    description: None,
                    parameters: json!({"type": "object", "properties": {}}),
                },
            ],
            tool_choice: Some(ToolChoice::Named("weather".into())),
            parallel_tool_calls: Some(false),
            max_tokens: Some(100),
            temperature: Some(0.5),
            top_p: Some(1.0),
            top_k: None,
            stop: vec!["END".into()],
            seed: Some(7),
            presence_penalty: Some(0.1),
            frequency_penalty: Some(-0.2),
            user: Some("u-1".into()),
            response_format: Some(ResponseFormat::JsonSchema { name: "out".into(), schema: json!({"type": "object"}) }),
            stream: true,
            unmapped: vec![],
        };
        assert_eq!(chat, want);
    }

    #[test]
    fn decodes_each_option_shape() {
        let base = |extra: Value| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
                b.extend(extra);
            }
            decoded(body)
        };
        let cases: Vec<(Value, Chat)> = vec![
            (json!({"tool_choice": "auto"}), Chat { tool_choice: Some(ToolChoice::Auto), ..Chat::default() }),
            (json!({"tool_choice": "none"}), Chat { tool_choice: Some(ToolChoice::None), ..Chat::default() }),
            (json!({"tool_choice": "required"}), Chat { tool_choice: Some(ToolChoice::Required), ..Chat::default() }),
            (json!({"stop": ["a", "b"]}), Chat { stop: vec!["a".into(), "b".into()], ..Chat::default() }),
            (json!({"max_tokens": 5}), Chat { max_tokens: Some(5), ..Chat::default() }),
            (json!({"top_k": 40}), Chat { top_k: Some(40), ..Chat::default() }),
            (
                json!({"response_format": {"type": "json_object"}}),
                Chat { response_format: Some(ResponseFormat::JsonObject), ..Chat::default() },
            ),
            (
                json!({"response_format": {"type": "text"}}),
                Chat { response_format: Some(ResponseFormat::Text), ..Chat::default() },
            ),
            (
                json!({"safety_identifier": "s", "prompt_cache_key": "k"}),
                Chat { user: Some("s".into()), ..Chat::default() },
            ),
            (json!({"user": "u", "safety_identifier": "s"}), Chat { user: Some("u".into()), ..Chat::default() }),
            (
                json!({"logit_bias": {"1": 2}, "logprobs": true, "top_logprobs": 2, "n": 2, "audio": {}, "modalities": ["text"], "reasoning_effort": "low", "temperature": null}),
                Chat {
                    // In the body's order (`json!` sorts keys).
                    unmapped: [
                        "audio",
                        "logit_bias",
                        "logprobs",
                        "modalities",
                        "n",
                        "reasoning_effort",
                        "top_logprobs",
                    ]
                    .map(String::from)
                    .to_vec(),
                    ..Chat::default()
                },
            ),
            (
                json!({"functions": [], "function_call": "auto", "tools": [{"type": "custom", "custom": {"name": "x"}}],
                    "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}),
                Chat {
                    unmapped: ["function_call", "functions", "tool_choice", "tools"].map(String::from).to_vec(),
                    ..Chat::default()
                },
            ),
        ];
        for (extra, mut want) in cases {
            want.messages = vec![text(Role::User, "hi")];
            assert_eq!(base(extra.clone()), want, "{extra}");
        }
    }

    #[test]
    fn decodes_history_shapes() {
        let chat = decoded(json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "input_audio", "input_audio": {}}, {"type": "file", "file": {}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "refusal", "refusal": "no"}],
                "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "sig"}, {"type": "redacted_thinking", "data": "d"}],
                "reasoning_content": "t"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"k": 1}}}]},
            {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "r"}, {"type": "image_url", "image_url": "https://i.test/p.png"}]},
            {"role": "user", "content": "next"},
            {"role": "function", "name": "f", "content": "legacy"},
        ]}));
        assert_eq!(
            chat.messages,
            vec![
                text(Role::User, "a"),
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning { text: "t".into(), signature: Some("sig".into()) },
                        Part::Text("x".into()),
                        Part::Text("no".into()),
                    ],
                },
                Message { role: Role::Assistant, parts: vec![call("c", "f", r#"{"k":1}"#)] },
                Message {
                    role: Role::Tool,
                    parts: vec![result(
                        "c",
                        vec![Part::Text("r".into()), Part::Image(Image::Url("https://i.test/p.png".into()))]
                    )],
                },
                text(Role::User, "next"),
            ]
        );
        assert_eq!(chat.unmapped, ["input_audio", "file", "function_call"]);
    }

    #[test]
    fn many_unknown_fields_decode_in_linear_time() {
        // 200,000 distinct unknown keys and as many audio parts: a scan per unmapped name would take minutes.
        let mut body = String::from(r#"{"model":"m","messages":[{"role":"user","content":["#);
        body.push_str(&vec![r#"{"type":"input_audio","input_audio":{}}"#; 200_000].join(","));
        body.push_str("]}]");
        for i in 0..200_000 {
            body.push_str(&format!(r#","k{i}":0"#));
        }
        body.push('}');
        let req = ChatRequest::parse(body.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        let chat = decode_request(&req).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(chat.unmapped.len(), 200_001);
        assert_eq!((chat.unmapped[0].as_str(), chat.unmapped[200_000].as_str()), ("k0", "input_audio"));
    }

    #[test]
    fn bad_shapes_name_the_field() {
        let msgs = json!([{"role": "user", "content": "hi"}]);
        let cases: Vec<(Value, &str)> = vec![
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"max_tokens": -1}), "max_tokens"),
            (json!({"max_completion_tokens": 1.5}), "max_completion_tokens"),
            (json!({"stop": 5}), "stop"),
            (json!({"stop": ["a", 1]}), "stop"),
            (json!({"seed": "x"}), "seed"),
            (json!({"user": 1}), "user"),
            (json!({"n": 0.5}), "n"),
            (json!({"logprobs": "yes"}), "logprobs"),
            (json!({"parallel_tool_calls": 1}), "parallel_tool_calls"),
            (json!({"response_format": {"type": "xml"}}), "response_format"),
            (json!({"response_format": {"type": "json_schema"}}), "response_format"),
            (json!({"tools": {}}), "tools"),
            (json!({"tools": [{"type": "function"}]}), "tools"),
            (json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}), "tools"),
            (json!({"tool_choice": "any"}), "tool_choice"),
            (json!({"tool_choice": {"type": "function"}}), "tool_choice"),
            (json!({"tool_choice": 3}), "tool_choice"),
            (json!({"messages": [1]}), "messages"),
            (json!({"messages": [{"content": "x"}]}), "messages"),
            (json!({"messages": [{"role": "robot", "content": "x"}]}), "messages"),
            (json!({"messages": [{"role": "user"}]}), "messages"),
            (json!({"messages": [{"role": "user", "content": 5}]}), "messages"),
            (json!({"messages": [{"role": "user", "content": [{"type": "video"}]}]}), "messages"),
            (json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]}), "messages"),
            (
                json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]}),
                "messages",
            ),
            (json!({"messages": [{"role": "tool", "content": "x"}]}), "messages"),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]}),
                "messages",
            ),
            (json!({"messages": [{"role": "assistant", "tool_calls": {}}]}), "messages"),
        ];
        for (extra, param) in cases {
            let mut body = json!({"model": "m", "messages": msgs});
            if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra.clone()) {
                b.extend(extra);
            }
            match decode(&body) {
                Err(RequestError::InvalidField { param: p, message }) => {
                    assert_eq!(p, param, "{extra}: {message}");
                    assert!(message.contains(param), "{message}");
                }
                other => unreachable!("{extra}: {other:?}"),
            }
        }
    }
}
