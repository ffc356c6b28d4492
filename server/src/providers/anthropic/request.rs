//! Canonical chat → Messages request body (providers.md 2.4).
//!
//! - System texts go to top-level `system` (a string, or text blocks when there are several).
//! - Tool results become `tool_result` blocks in a user message; consecutive messages that land on the same
//!   Anthropic role are merged (Anthropic wants alternating roles), with tool results first, as the API requires
//!   after a turn with `tool_use`. Empty text is dropped (Anthropic rejects empty text blocks), and so is a message
//!   left with nothing. A leading assistant message or a trailing one (prefill) is sent as it is.
//! - Tool calls become `tool_use` blocks whose `input` is the arguments' JSON object as the caller wrote it.
//!   Arguments that are not a JSON object (a model's truncated output sent back in history) cannot be expressed:
//!   refused as `tool_calls.function.arguments` unless `drop_params`, which sends `{}` instead.
//! - Reasoning with a signature becomes a `thinking` block; without one Anthropic would reject it, so it is dropped.
//! - `max_tokens` is required by Anthropic: 4096 (LiteLLM's default) when absent.
//! - Refused unless `drop_params` (then dropped): `temperature` above 1 (Anthropic's range is 0–1), stop
//!   sequences that are only whitespace, `seed`, `presence_penalty`, `frequency_penalty`, `response_format`
//!   `json_object`. `json_schema` uses native structured output (`output_config.format`), which older models
//!   refuse with a 400 of their own.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{json, Value};

use super::wire::{empty_object, input_object, BlockOut, SourceOut, ToolResultContent};
use crate::{
    llm::chat::{Chat, Image, ParamCheck, Part, ResponseFormat, Role, ToolChoice, ToolResult, Unsupported},
    providers::codec::CallOptions,
};

/// LiteLLM's `DEFAULT_ANTHROPIC_CHAT_MAX_TOKENS`.
pub(super) const DEFAULT_MAX_TOKENS: u64 = 4096;
const PROVIDER: &str = "anthropic";

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<System<'a>>,
    messages: Vec<MessageOut<'a>>,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum System<'a> {
    Text(&'a str),
    Blocks(Vec<BlockOut<'a>>),
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Vec<BlockOut<'a>>,
}

#[derive(Serialize)]
struct ToolOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: Cow<'a, Value>,
}

#[derive(Serialize)]
struct ToolChoiceOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
struct OutputConfig<'a> {
    format: OutputFormat<'a>,
}

#[derive(Serialize)]
struct OutputFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a Value,
}

pub(super) fn encode(chat: &Chat, options: CallOptions<'_>) -> Result<Vec<u8>, Unsupported> {
    let mut check = ParamCheck::new(PROVIDER, options.drop_params, chat);
    let messages = messages(chat, &mut check);
    let mut temperature = chat.temperature;
    if temperature.is_some_and(|t| t > 1.0) {
        check.unsupported("temperature");
        temperature = None;
    }
    let mut stop_sequences = Vec::with_capacity(chat.stop.len());
    for s in &chat.stop {
        if s.trim().is_empty() {
            check.unsupported("stop");
        } else {
            stop_sequences.push(s.as_str());
        }
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
    let output_config = match &chat.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => {
            check.unsupported("response_format");
            None
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            Some(OutputConfig { format: OutputFormat { kind: "json_schema", schema } })
        }
    };
    check.finish()?;
    let body = Body {
        model: options.upstream_model,
        system: system(&chat.system),
        messages,
        max_tokens: chat.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        stop_sequences,
        temperature,
        top_p: chat.top_p,
        top_k: chat.top_k,
        tools: chat
            .tools
            .iter()
            .map(|t| ToolOut {
                name: &t.name,
                description: t.description.as_deref(),
                input_schema: match &t.parameters {
                    p @ Value::Object(_) => Cow::Borrowed(p),
                    // OpenAI lets a function omit `parameters`; Anthropic requires a schema.
                    _ => Cow::Owned(json!({"type": "object", "properties": {}})),
                },
            })
            .collect(),
        tool_choice: tool_choice(chat),
        metadata: chat.user.as_deref().map(|user_id| Metadata { user_id }),
        output_config,
        stream: options.stream,
    };
    // Serialising plain structs and valid raw JSON into a Vec cannot fail.
    Ok(serde_json::to_vec(&body).unwrap_or_default())
}

fn system(texts: &[String]) -> Option<System<'_>> {
    let mut non_empty = texts.iter().filter(|t| !t.is_empty());
    let first = non_empty.next()?;
    match non_empty.next() {
        None => Some(System::Text(first)),
        Some(_) => {
            Some(System::Blocks(texts.iter().filter(|t| !t.is_empty()).map(|text| BlockOut::Text { text }).collect()))
        }
    }
}

/// Only sent with tools: Anthropic refuses `tool_choice` without them, and without tools "none" and "auto" mean
/// the same anyway.
fn tool_choice(chat: &Chat) -> Option<ToolChoiceOut<'_>> {
    if chat.tools.is_empty() {
        return None;
    }
    let disable_parallel = (chat.parallel_tool_calls == Some(false)).then_some(true);
    let (kind, name) = match &chat.tool_choice {
        Some(ToolChoice::None) => {
            return Some(ToolChoiceOut { kind: "none", name: None, disable_parallel_tool_use: None })
        }
        None if disable_parallel.is_none() => return None,
        None | Some(ToolChoice::Auto) => ("auto", None),
        Some(ToolChoice::Required) => ("any", None),
        Some(ToolChoice::Named(name)) => ("tool", Some(name.as_str())),
    };
    Some(ToolChoiceOut { kind, name, disable_parallel_tool_use: disable_parallel })
}

/// The conversation in alternating roles: canonical messages that map to the same Anthropic role in a row are
/// one message, tool results first. Linear in the number of parts.
fn messages<'a>(chat: &'a Chat, check: &mut ParamCheck) -> Vec<MessageOut<'a>> {
    let mut out = Vec::with_capacity(chat.messages.len());
    // The message being built: its role, its tool results and its other blocks.
    let mut pending: Option<(&'static str, Vec<BlockOut<'a>>, Vec<BlockOut<'a>>)> = None;
    for message in &chat.messages {
        let role = match message.role {
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
        };
        if pending.as_ref().is_some_and(|(r, _, _)| *r != role) {
            flush(&mut pending, &mut out);
        }
        let (_, results, others) = pending.get_or_insert_with(|| (role, Vec::new(), Vec::new()));
        for part in &message.parts {
            let Some(block) = block(part, message.role, check) else { continue };
            if block.is_tool_result() {
                results.push(block);
            } else {
                others.push(block);
            }
        }
    }
    flush(&mut pending, &mut out);
    out
}

type Pending<'a> = Option<(&'static str, Vec<BlockOut<'a>>, Vec<BlockOut<'a>>)>;

fn flush<'a>(pending: &mut Pending<'a>, out: &mut Vec<MessageOut<'a>>) {
    if let Some((role, mut content, others)) = pending.take() {
        content.extend(others);
        if !content.is_empty() {
            out.push(MessageOut { role, content });
        }
    }
}

fn block<'a>(part: &'a Part, role: Role, check: &mut ParamCheck) -> Option<BlockOut<'a>> {
    match part {
        Part::Text(text) if text.is_empty() => None,
        Part::Text(text) => Some(BlockOut::Text { text }),
        Part::Image(image) => Some(image_block(image)),
        Part::Reasoning { text, signature: Some(signature) } if role == Role::Assistant => {
            Some(BlockOut::Thinking { thinking: text, signature })
        }
        // Anthropic accepts thinking only with the signature it issued, and only from the assistant.
        Part::Reasoning { .. } => None,
        Part::ToolCall(call) => {
            let input = input_object(&call.arguments).unwrap_or_else(|| {
                check.unsupported("tool_calls.function.arguments");
                empty_object()
            });
            Some(BlockOut::ToolUse { id: &call.id, name: &call.name, input })
        }
        Part::ToolResult(result) => Some(tool_result(result)),
    }
}

fn image_block(image: &Image) -> BlockOut<'_> {
    let source = match image {
        Image::Base64 { media_type, data } => SourceOut::Base64 { media_type, data },
        Image::Url(url) => SourceOut::Url { url },
    };
    BlockOut::Image { source }
}

/// A single text stays a string (the common form); several parts or images become blocks; nothing is omitted.
fn tool_result(result: &ToolResult) -> BlockOut<'_> {
    let content = match result.content.as_slice() {
        [] => None,
        [Part::Text(text)] if text.is_empty() => None,
        [Part::Text(text)] => Some(ToolResultContent::Text(text.clone())),
        parts => {
            let blocks: Vec<BlockOut<'_>> = parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text(text) if !text.is_empty() => Some(BlockOut::Text { text }),
                    Part::Image(image) => Some(image_block(image)),
                    _ => None,
                })
                .collect();
            (!blocks.is_empty()).then_some(ToolResultContent::Blocks(blocks))
        }
    };
    BlockOut::ToolResult { tool_use_id: &result.call_id, content, is_error: result.is_error }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::chat::{Message, Tool, ToolCall};

    fn user(text: &str) -> Message {
        Message { role: Role::User, parts: vec![Part::Text(text.into())] }
    }

    fn call(id: &str, name: &str, arguments: &str) -> Part {
        Part::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() })
    }

    fn result(id: &str, text: &str) -> Message {
        Message {
            role: Role::Tool,
            parts: vec![Part::ToolResult(ToolResult {
                call_id: id.into(),
                content: vec![Part::Text(text.into())],
                is_error: false,
            })],
        }
    }

    fn encode_json(chat: &Chat, stream: bool, drop_params: bool) -> Result<Value, Unsupported> {
        let options = CallOptions { upstream_model: "claude-sonnet-4-5", stream, drop_params };
        encode(chat, options).map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    fn golden(chat: Chat, want: Value) {
        assert_eq!(encode_json(&chat, false, false), Ok(want));
    }

    #[test]
    fn plain_text_with_system_and_default_max_tokens() {
        golden(
            Chat { system: vec!["Be brief.".into()], messages: vec![user("hi")], ..Chat::default() },
            json!({"model":"claude-sonnet-4-5","system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":4096}),
        );
        golden(
            Chat {
                system: vec!["A".into(), String::new(), "B".into()],
                messages: vec![user("hi"), user(""), user("again")],
                ..Chat::default()
            },
            json!({"model":"claude-sonnet-4-5","system":[{"type":"text","text":"A"},{"type":"text","text":"B"}],
                "messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"text","text":"again"}]}],"max_tokens":4096}),
        );
    }

    #[test]
    fn tool_calls_and_results_merge_into_alternating_turns() {
        let chat = Chat {
            messages: vec![
                user("weather?"),
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning { text: "think".into(), signature: Some("sig".into()) },
                        Part::Reasoning { text: "unsigned".into(), signature: None },
                        Part::Text("Checking.".into()),
                        call("toolu_1", "get_weather", r#"{"city": "Paris", "a": 1}"#),
                        call("toolu_2", "get_time", ""),
                    ],
                },
                result("toolu_1", "21C"),
                Message {
                    role: Role::Tool,
                    parts: vec![Part::ToolResult(ToolResult {
                        call_id: "toolu_2".into(),
                        content: vec![],
                        is_error: true,
                    })],
                },
                user("thanks"),
            ],
            tools: vec![
                Tool {
                    name: "get_weather".into(),
                    description: Some("Weather".into()),
                    parameters: json!({"type":"object","properties":{"city":{"type":"string"}}}),
                },
                Tool { name: "get_time".into(), description: None, parameters: Value::Null },
            ],
            tool_choice: Some(ToolChoice::Required),
            parallel_tool_calls: Some(false),
            ..Chat::default()
        };
        let want = json!({"model":"claude-sonnet-4-5","messages":[
            {"role":"user","content":[{"type":"text","text":"weather?"}]},
            {"role":"assistant","content":[
                {"type":"thinking","thinking":"think","signature":"sig"},
                {"type":"text","text":"Checking."},
                {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris","a":1}},
                {"type":"tool_use","id":"toolu_2","name":"get_time","input":{}}]},
            {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"toolu_1","content":"21C"},
                {"type":"tool_result","tool_use_id":"toolu_2","is_error":true},
                {"type":"text","text":"thanks"}]}],
            "max_tokens":4096,
            "tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},
                     {"name":"get_time","input_schema":{"type":"object","properties":{}}}],
            "tool_choice":{"type":"any","disable_parallel_tool_use":true}});
        golden(chat.clone(), want);
        // The input object keeps the caller's key order and spelling.
        let raw =
            encode(&chat, CallOptions { upstream_model: "m", stream: false, drop_params: false }).unwrap_or_default();
        assert!(String::from_utf8_lossy(&raw).contains(r#""input":{"city": "Paris", "a": 1}"#));
    }

    #[test]
    fn results_go_first_even_after_user_text() {
        let chat = Chat { messages: vec![user("note"), result("t1", "ok"), result("t2", "ok2")], ..Chat::default() };
        golden(
            chat,
            json!({"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[
                {"type":"tool_result","tool_use_id":"t1","content":"ok"},
                {"type":"tool_result","tool_use_id":"t2","content":"ok2"},
                {"type":"text","text":"note"}]}],"max_tokens":4096}),
        );
    }

    #[test]
    fn images_and_rich_tool_results() {
        let png = Image::Base64 { media_type: "image/png".into(), data: "iVBOR".into() };
        let chat = Chat {
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::Text("Describe".into()),
                        Part::Image(png.clone()),
                        Part::Image(Image::Url("https://example.com/a.jpg".into())),
                    ],
                },
                Message { role: Role::Assistant, parts: vec![call("t1", "shot", "{}")] },
                Message {
                    role: Role::Tool,
                    parts: vec![Part::ToolResult(ToolResult {
                        call_id: "t1".into(),
                        content: vec![Part::Text("screen".into()), Part::Image(png)],
                        is_error: false,
                    })],
                },
            ],
            ..Chat::default()
        };
        golden(
            chat,
            json!({"model":"claude-sonnet-4-5","messages":[
                {"role":"user","content":[{"type":"text","text":"Describe"},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}},
                    {"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}}]},
                {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"shot","input":{}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[
                    {"type":"text","text":"screen"},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}}]}]}],
                "max_tokens":4096}),
        );
    }

    #[test]
    fn parameters_map_or_are_refused_by_name() {
        let base = || Chat { messages: vec![user("hi")], ..Chat::default() };
        let params = Chat {
            max_tokens: Some(100),
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(40),
            stop: vec!["END".into()],
            user: Some("u-1".into()),
            response_format: Some(ResponseFormat::JsonSchema { name: "r".into(), schema: json!({"type":"object"}) }),
            ..base()
        };
        let got = encode_json(&params, true, false);
        assert_eq!(
            got,
            Ok(
                json!({"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],
                "max_tokens":100,"stop_sequences":["END"],"temperature":0.5,"top_p":0.9,"top_k":40,
                "metadata":{"user_id":"u-1"},"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}},
                "stream":true})
            )
        );
        let refused: Vec<(Chat, &str)> = vec![
            (Chat { temperature: Some(1.5), ..base() }, "temperature"),
            (Chat { stop: vec!["ok".into(), "\n".into()], ..base() }, "stop"),
            (Chat { seed: Some(1), ..base() }, "seed"),
            (Chat { presence_penalty: Some(0.1), ..base() }, "presence_penalty"),
            (Chat { frequency_penalty: Some(0.1), ..base() }, "frequency_penalty"),
            (Chat { response_format: Some(ResponseFormat::JsonObject), ..base() }, "response_format"),
            (Chat { unmapped: vec!["logit_bias".into()], seed: Some(1), ..base() }, "logit_bias"),
            (
                Chat {
                    messages: vec![
                        user("hi"),
                        Message { role: Role::Assistant, parts: vec![call("t", "f", "{\"a\":")] },
                    ],
                    ..base()
                },
                "tool_calls.function.arguments",
            ),
        ];
        for (chat, param) in refused {
            assert_eq!(encode_json(&chat, false, false).map_err(|e| e.param), Err(param.to_owned()), "{param}");
            let dropped = encode_json(&chat, false, true).unwrap_or(Value::Null);
            assert!(dropped.is_object(), "{param} dropped");
            for key in ["temperature", "seed", "presence_penalty", "frequency_penalty", "response_format", "logit_bias"]
            {
                assert!(dropped.get(key).is_none(), "{param}: {key} dropped");
            }
            if param == "stop" {
                assert_eq!(dropped["stop_sequences"], json!(["ok"]));
            }
            if param == "tool_calls.function.arguments" {
                assert_eq!(dropped["messages"][1]["content"][0]["input"], json!({}));
            }
        }
        let text_format = Chat { response_format: Some(ResponseFormat::Text), temperature: Some(1.0), ..base() };
        assert_eq!(encode_json(&text_format, false, false).map(|v| v["temperature"].clone()), Ok(json!(1.0)));
    }

    #[test]
    fn tool_choice_variants() {
        let tool = Tool { name: "f".into(), description: None, parameters: json!({"type":"object"}) };
        let cases: &[(Option<ToolChoice>, Option<bool>, Value)] = &[
            (None, None, Value::Null),
            (None, Some(true), Value::Null),
            (None, Some(false), json!({"type":"auto","disable_parallel_tool_use":true})),
            (Some(ToolChoice::Auto), None, json!({"type":"auto"})),
            (Some(ToolChoice::None), Some(false), json!({"type":"none"})),
            (Some(ToolChoice::Required), None, json!({"type":"any"})),
            (
                Some(ToolChoice::Named("f".into())),
                Some(false),
                json!({"type":"tool","name":"f","disable_parallel_tool_use":true}),
            ),
        ];
        for (choice, parallel, want) in cases {
            let chat = Chat {
                messages: vec![user("hi")],
                tools: vec![tool.clone()],
                tool_choice: choice.clone(),
                parallel_tool_calls: *parallel,
                ..Chat::default()
            };
            let got = encode_json(&chat, false, false).map(|v| v["tool_choice"].clone());
            assert_eq!(got, Ok(want.clone()), "{choice:?} {parallel:?}");
        }
        let no_tools = Chat { messages: vec![user("hi")], tool_choice: Some(ToolChoice::None), ..Chat::default() };
        assert_eq!(encode_json(&no_tools, false, false).map(|v| v.get("tool_choice").is_none()), Ok(true));
    }
}
