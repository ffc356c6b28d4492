//! An Anthropic caller's `/v1/messages` body → canonical [`Chat`], for upstreams of other dialects.
//!
//! - `system` (a string or text blocks) → one system text per block.
//! - Content blocks keep their order. A user message's `tool_result` blocks become `Role::Tool` messages and its
//!   other blocks user messages, in the order they came (results then text gives a Tool message, then a User one).
//! - `tool_use.input` becomes the arguments' JSON text as the caller wrote it (compacted, key order kept).
//! - `thinking` blocks become reasoning with their signature; `redacted_thinking` is opaque data only Anthropic
//!   can read, so it is dropped (an Anthropic upstream gets the caller's bytes, spliced, and loses nothing).
//! - `system`-role messages (the API's newer form, which Claude Code sends) join the system texts in order.
//! - `cache_control` has no canonical meaning and is dropped silently: it only makes prompts cheaper. So are the
//!   reasoning hints `thinking` and `output_config.effort` and the server-side `context_management`: they steer
//!   how much a model thinks or what Anthropic's servers keep, not what the answer must satisfy, and every
//!   Claude Code request carries them (an Anthropic upstream gets the caller's bytes, spliced, and loses nothing).
//! - What the canonical chat cannot carry is listed in `unmapped` by its Anthropic name, and the encoder refuses
//!   the request naming it unless `drop_params`: server tools (`tools[].type` other than `custom`), `document`
//!   and other block types, image `file` sources, unknown top-level fields.

use serde::Deserialize;
use serde_json::{json, value::RawValue, Value};

use super::wire::{compact_json, BlockIn, SourceIn};
use crate::llm::{
    chat::{Chat, Image, Message, Part, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolResult},
    MessagesRequest, RequestError,
};

/// Top-level fields with no effect outside Anthropic that are dropped silently: `service_tier` only asks
/// Anthropic for a capacity tier.
const IGNORED: &[&str] = &["model", "stream", "service_tier", "context_management", "thinking"];

#[derive(Deserialize)]
struct MessageIn<'a> {
    role: String,
    #[serde(borrow)]
    content: &'a RawValue,
}

#[derive(Deserialize)]
struct ToolIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: String,
    description: Option<String>,
    input_schema: Option<Value>,
}

#[derive(Deserialize)]
struct ToolChoiceIn {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
struct MetadataIn {
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct OutputConfigIn {
    format: Option<FormatIn>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct FormatIn {
    #[serde(rename = "type")]
    kind: String,
    schema: Option<Value>,
}

fn parse<'a, T: Deserialize<'a>>(raw: &'a RawValue, param: &'static str) -> Result<T, RequestError> {
    serde_json::from_str(raw.get())
        .map_err(|e| RequestError::InvalidField { param, message: format!("`{param}` is invalid: {e}") })
}

fn blocks<'a>(raw: &'a RawValue, param: &'static str) -> Result<Vec<BlockIn<'a>>, RequestError> {
    BlockIn::list(raw).map_err(|e| RequestError::InvalidField { param, message: format!("`{param}` is invalid: {e}") })
}

pub fn decode_request(req: &MessagesRequest<'_>) -> Result<Chat, RequestError> {
    let mut chat = Chat { stream: req.stream, ..Chat::default() };
    for (key, raw) in &req.body.fields {
        if raw.get() == "null" || IGNORED.contains(&key.as_ref()) {
            continue;
        }
        match key.as_ref() {
            "messages" => {
                let messages: Vec<MessageIn<'_>> = parse(raw, "messages")?;
                chat.messages.reserve(messages.len());
                for message in &messages {
                    push_message(message, &mut chat)?;
                }
            }
            // Before any `system`-role messages, wherever the key sits in the body.
            "system" => drop(chat.system.splice(0..0, system(raw)?)),
            "max_tokens" => chat.max_tokens = Some(parse(raw, "max_tokens")?),
            "temperature" => chat.temperature = Some(parse(raw, "temperature")?),
            "top_p" => chat.top_p = Some(parse(raw, "top_p")?),
            "top_k" => chat.top_k = Some(parse(raw, "top_k")?),
            "stop_sequences" => chat.stop = parse(raw, "stop_sequences")?,
            "metadata" => chat.user = parse::<MetadataIn>(raw, "metadata")?.user_id,
            "tools" => {
                for tool in parse::<Vec<ToolIn>>(raw, "tools")? {
                    match tool.kind.as_deref() {
                        None | Some("custom") => chat.tools.push(Tool {
                            name: tool.name,
                            description: tool.description,
                            parameters: tool.input_schema.unwrap_or_else(|| json!({"type": "object"})),
                        }),
                        Some(server_tool) => chat.unmapped.push(server_tool.to_owned()),
                    }
                }
            }
            "tool_choice" => {
                let choice: ToolChoiceIn = parse(raw, "tool_choice")?;
                chat.tool_choice = Some(match (choice.kind.as_str(), choice.name) {
                    ("auto", _) => ToolChoice::Auto,
                    ("any", _) => ToolChoice::Required,
                    ("none", _) => ToolChoice::None,
                    ("tool", Some(name)) => ToolChoice::Named(name),
                    _ => {
                        return Err(RequestError::InvalidField {
                            param: "tool_choice",
                            message: "`tool_choice` must be auto, any, none, or tool with a name".into(),
                        })
                    }
                });
                if choice.disable_parallel_tool_use == Some(true) {
                    chat.parallel_tool_calls = Some(false);
                }
            }
            "output_config" => {
                let config: OutputConfigIn = parse(raw, "output_config")?;
                match config.format {
                    Some(FormatIn { kind, schema: Some(schema) }) if kind == "json_schema" => {
                        chat.response_format = Some(ResponseFormat::JsonSchema { name: "response".into(), schema });
                    }
                    Some(_) => chat.unmapped.push("output_config.format".into()),
                    None => {}
                }
                let unmapped = config.other.keys().filter(|k| *k != "effort");
                chat.unmapped.extend(unmapped.map(|k| format!("output_config.{k}")));
            }
            other => chat.unmapped.push(other.to_owned()),
        }
    }
    Ok(chat)
}

fn system(raw: &RawValue) -> Result<Vec<String>, RequestError> {
    if raw.get().starts_with('"') {
        return Ok(vec![parse(raw, "system")?]);
    }
    let blocks = blocks(raw, "system")?;
    blocks
        .into_iter()
        .map(|b| match (b.kind.as_str(), b.text) {
            ("text", Some(text)) => Ok(text),
            _ => Err(RequestError::InvalidField { param: "system", message: "`system` blocks must be text".into() }),
        })
        .collect()
}

/// One Anthropic message as canonical messages: blocks of one role in a row share a message.
fn push_message(message: &MessageIn<'_>, chat: &mut Chat) -> Result<(), RequestError> {
    let role = match message.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => {
            chat.system.extend(system(message.content)?);
            return Ok(());
        }
        _ => {
            return Err(RequestError::InvalidField {
                param: "messages",
                message: "`messages[].role` must be \"user\", \"assistant\" or \"system\"".into(),
            })
        }
    };
    let first = chat.messages.len();
    let push = |role: Role, part: Part, messages: &mut Vec<Message>| {
        let len = messages.len();
        match messages.last_mut() {
            Some(last) if len > first && last.role == role => last.parts.push(part),
            _ => messages.push(Message { role, parts: vec![part] }),
        }
    };
    if message.content.get().starts_with('"') {
        let text: String = parse(message.content, "messages")?;
        if !text.is_empty() {
            push(role, Part::Text(text), &mut chat.messages);
        }
        return Ok(());
    }
    let blocks = blocks(message.content, "messages")?;
    for block in blocks {
        let (target, part) = match block.kind.as_str() {
            "tool_result" => (Role::Tool, Part::ToolResult(tool_result(block, &mut chat.unmapped)?)),
            _ => match content_part(block, &mut chat.unmapped) {
                Some(part) => (role, part),
                None => continue,
            },
        };
        push(target, part, &mut chat.messages);
    }
    Ok(())
}

/// A block other than `tool_result`, or `None` (recording what could not be carried in `unmapped`).
fn content_part(block: BlockIn<'_>, unmapped: &mut Vec<String>) -> Option<Part> {
    match block.kind.as_str() {
        "text" => Some(Part::Text(block.text.unwrap_or_default())),
        "image" => match block.source.and_then(image) {
            Some(image) => Some(Part::Image(image)),
            None => {
                unmapped.push("image (file source)".into());
                None
            }
        },
        "tool_use" => Some(Part::ToolCall(ToolCall {
            id: block.id.unwrap_or_default(),
            name: block.name.unwrap_or_default(),
            arguments: compact_json(block.input.map_or("{}", RawValue::get)),
        })),
        "thinking" => Some(Part::Reasoning { text: block.thinking.unwrap_or_default(), signature: block.signature }),
        "redacted_thinking" => None,
        other => {
            unmapped.push(other.to_owned());
            None
        }
    }
}

fn image(source: SourceIn) -> Option<Image> {
    match (source.kind.as_str(), source.media_type, source.data, source.url) {
        ("base64", Some(media_type), Some(data), _) => Some(Image::Base64 { media_type, data }),
        ("url", _, _, Some(url)) => Some(Image::Url(url)),
        _ => None,
    }
}

fn tool_result(block: BlockIn<'_>, unmapped: &mut Vec<String>) -> Result<ToolResult, RequestError> {
    let content = match block.content {
        None => Vec::new(),
        Some(raw) if raw.get().starts_with('"') => vec![Part::Text(parse(raw, "messages")?)],
        Some(raw) => blocks(raw, "messages")?
            .into_iter()
            .filter_map(|b| match b.kind.as_str() {
                "text" | "image" => content_part(b, unmapped),
                other => {
                    unmapped.push(other.to_owned());
                    None
                }
            })
            .collect(),
    };
    Ok(ToolResult {
        call_id: block.tool_use_id.unwrap_or_default(),
        content,
        is_error: block.is_error.unwrap_or(false),
    })
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
