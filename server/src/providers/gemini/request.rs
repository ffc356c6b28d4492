//! The canonical [`Chat`] as a `generateContent` body (providers.md 3.2). Parameters Gemini has no place for are
//! reported to the [`ParamCheck`] under their OpenAI names.
//!
//! Turns: `user` and `model` only. Tool results go in `user` turns as `functionResponse` parts, which need the
//! function's *name*: it is looked up from the latest earlier assistant tool call with the same id (Gemini
//! matches responses to calls by name and order, not id). Consecutive messages of the same canonical role are
//! merged into one turn. A tool call id carrying a thought signature (`reply.rs`) gives the signature back on
//! its `functionCall` part, as Gemini 3 requires.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{reply::THOUGHT_SEPARATOR, schema};
use crate::llm::chat::{Chat, Image, Message, ParamCheck, Part, ResponseFormat, Role, ToolChoice};

/// The request body.
pub(super) fn encode(chat: &Chat, check: &mut ParamCheck) -> Value {
    let mut body = Map::new();
    if !chat.system.is_empty() {
        let parts: Vec<Value> = chat.system.iter().filter(|s| !s.is_empty()).map(|s| json!({"text": s})).collect();
        if !parts.is_empty() {
            body.insert("systemInstruction".into(), json!({"parts": parts}));
        }
    }
    body.insert("contents".into(), Value::Array(contents(&chat.messages, check)));
    let response_schema = match &chat.response_format {
        Some(ResponseFormat::JsonSchema { schema, .. }) => Some(schema),
        _ => None,
    };
    let mut budget = schema::budget(chat.tools.iter().map(|t| &t.parameters).chain(response_schema));
    if !chat.tools.is_empty() {
        let declarations: Vec<Value> = chat
            .tools
            .iter()
            .map(|t| {
                let mut d = Map::new();
                d.insert("name".into(), Value::String(t.name.clone()));
                if let Some(desc) = t.description.as_ref().filter(|d| !d.is_empty()) {
                    d.insert("description".into(), Value::String(desc.clone()));
                }
                if let Some(p) = schema::parameters(&t.parameters, &mut budget) {
                    d.insert("parameters".into(), p);
                }
                Value::Object(d)
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
        // Without tools there is nothing to choose from: the choice is moot and not sent.
        if let Some(choice) = &chat.tool_choice {
            let config = match choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Named(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            };
            body.insert("toolConfig".into(), json!({"functionCallingConfig": config}));
        }
    }
    // Gemini may call several functions at once and has no switch to stop it.
    if chat.parallel_tool_calls == Some(false) {
        check.unsupported("parallel_tool_calls");
    }
    if chat.user.is_some() {
        check.unsupported("user");
    }
    let config = generation_config(chat, &mut budget);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Value::Object(body)
}

fn generation_config(chat: &Chat, budget: &mut usize) -> Map<String, Value> {
    let mut c = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            c.insert(key.into(), v);
        }
    };
    put("maxOutputTokens", chat.max_tokens.map(Value::from));
    put("temperature", chat.temperature.map(Value::from));
    put("topP", chat.top_p.map(Value::from));
    put("topK", chat.top_k.map(Value::from));
    put("stopSequences", (!chat.stop.is_empty()).then(|| Value::from(chat.stop.clone())));
    put("seed", chat.seed.map(Value::from));
    put("presencePenalty", chat.presence_penalty.map(Value::from));
    put("frequencyPenalty", chat.frequency_penalty.map(Value::from));
    match &chat.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => put("responseMimeType", Some("application/json".into())),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            put("responseMimeType", Some("application/json".into()));
            put("responseSchema", Some(schema::convert(schema, budget)));
        }
    }
    c
}

/// `contents`: one turn per run of messages of the same role.
fn contents(messages: &[Message], check: &mut ParamCheck) -> Vec<Value> {
    // Tool call id → function name, for the calls seen so far (a later call with a reused id wins).
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for m in messages {
        let mut parts = Vec::new();
        // A reasoning signature, waiting for the model part it belongs on.
        let mut signature: Option<&str> = None;
        for p in &m.parts {
            match p {
                Part::Text(t) => {
                    if !t.is_empty() {
                        parts.push(signed(json!({"text": t}), signature.take()));
                    }
                }
                Part::Image(img) => parts.extend(image(img, check)),
                // Thought summaries are not input; their signature goes back on the next model part.
                Part::Reasoning { signature: s, .. } => {
                    if m.role == Role::Assistant {
                        signature = s.as_deref().filter(|s| !s.is_empty()).or(signature);
                    }
                }
                Part::ToolCall(call) => {
                    names.insert(&call.id, &call.name);
                    let own = call.id.split_once(THOUGHT_SEPARATOR).map(|(_, sig)| sig).filter(|s| !s.is_empty());
                    let sig = own.or(signature.take());
                    match function_args(&call.arguments) {
                        Some(args) => {
                            parts.push(signed(json!({"functionCall": {"name": call.name, "args": args}}), sig))
                        }
                        None => check.unsupported("tool_calls[].function.arguments (not a JSON object)"),
                    }
                }
                Part::ToolResult(result) => {
                    let Some(name) = names.get(result.call_id.as_str()) else {
                        check.unsupported("tool_call_id (no earlier assistant tool call has this id)");
                        continue;
                    };
                    let key = if result.is_error { "error" } else { "content" };
                    parts.push(json!({"functionResponse": {"name": name, "response": {key: result.text()}}}));
                    // Images a tool returned travel beside its response, in the same user turn.
                    for part in &result.content {
                        if let Part::Image(img) = part {
                            parts.extend(image(img, check));
                        }
                    }
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((role, before)) if *role == m.role => before.extend(parts),
            _ => turns.push((m.role, parts)),
        }
    }
    turns
        .into_iter()
        .map(|(role, parts)| {
            let role = if role == Role::Assistant { "model" } else { "user" };
            json!({"role": role, "parts": parts})
        })
        .collect()
}

fn signed(mut part: Value, signature: Option<&str>) -> Value {
    if let (Some(sig), Value::Object(p)) = (signature, &mut part) {
        p.insert("thoughtSignature".into(), Value::String(sig.to_owned()));
    }
    part
}

/// Arguments JSON text as the object Gemini wants; empty text is no arguments.
fn function_args(arguments: &str) -> Option<Value> {
    if arguments.trim().is_empty() {
        return Some(Value::Object(Map::new()));
    }
    match serde_json::from_str(arguments) {
        Ok(Value::Object(o)) => Some(Value::Object(o)),
        Ok(Value::Null) => Some(Value::Object(Map::new())),
        _ => None,
    }
}

/// An image part: inline data, or a link (`fileData`, which needs the type, told from the file extension).
fn image(img: &Image, check: &mut ParamCheck) -> Option<Value> {
    match img {
        Image::Base64 { media_type, data } => Some(json!({"inlineData": {"mimeType": media_type, "data": data}})),
        Image::Url(url) => match mime_of(url) {
            Some(mime) => Some(json!({"fileData": {"mimeType": mime, "fileUri": url}})),
            None => {
                check.unsupported("image_url (a link whose file type is not told by its extension; send a data: URL)");
                None
            }
        },
    }
}

/// The media type of a link, from the extension of its path.
fn mime_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::chat::{Tool, ToolCall, ToolResult};

    fn user(text: &str) -> Message {
        Message { role: Role::User, parts: vec![Part::Text(text.into())] }
    }

    fn call(id: &str, name: &str, args: &str) -> Part {
        Part::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: args.into() })
    }

    fn result(id: &str, text: &str, is_error: bool) -> Message {
        Message {
            role: Role::Tool,
            parts: vec![Part::ToolResult(ToolResult {
                call_id: id.into(),
                content: vec![Part::Text(text.into())],
                is_error,
            })],
        }
    }

    fn encoded(chat: &Chat) -> (Value, Result<(), String>) {
        let mut check = ParamCheck::new("gemini", false, chat);
        let body = encode(chat, &mut check);
        (body, check.finish().map_err(|e| e.param))
    }

    #[test]
    fn golden_request_bodies() {
        let weather = Tool {
            name: "get_weather".into(),
            description: Some("Weather of a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                               "additionalProperties": false, "$schema": "x"}),
        };
        let clock = Tool {
            name: "get_time".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {}}),
        };
        let cases: Vec<(&str, Chat, Value)> = vec![
            (
                "text and system",
                Chat { system: vec!["Be terse.".into(), "".into()], messages: vec![user("Hi")], ..Chat::default() },
                json!({"systemInstruction": {"parts": [{"text": "Be terse."}]},
                       "contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}),
            ),
            (
                "parameters",
                Chat {
                    messages: vec![user("Hi")],
                    max_tokens: Some(100),
                    temperature: Some(0.5),
                    top_p: Some(0.9),
                    top_k: Some(40),
                    stop: vec!["END".into()],
                    seed: Some(7),
                    presence_penalty: Some(0.25),
                    frequency_penalty: Some(-0.5),
                    response_format: Some(ResponseFormat::JsonSchema {
                        name: "out".into(),
                        schema: json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false}),
                    }),
                    ..Chat::default()
                },
                json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
                       "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5, "topP": 0.9, "topK": 40,
                           "stopSequences": ["END"], "seed": 7, "presencePenalty": 0.25, "frequencyPenalty": -0.5,
                           "responseMimeType": "application/json",
                           "responseSchema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}),
            ),
            (
                "json object",
                Chat {
                    messages: vec![user("Hi")],
                    response_format: Some(ResponseFormat::JsonObject),
                    ..Chat::default()
                },
                json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
                       "generationConfig": {"responseMimeType": "application/json"}}),
            ),
            (
                "tools, calls and results",
                Chat {
                    messages: vec![
                        user("Weather and time in Paris?"),
                        Message {
                            role: Role::Assistant,
                            parts: vec![
                                Part::Text("Checking.".into()),
                                call("call_r1_0__thought__c2lnMQ==", "get_weather", r#"{"city":"Paris"}"#),
                                call("call_r1_1", "get_time", ""),
                            ],
                        },
                        result("call_r1_0__thought__c2lnMQ==", "21C", false),
                        result("call_r1_1", "no clock", true),
                        user("Thanks"),
                    ],
                    tools: vec![weather, clock],
                    tool_choice: Some(ToolChoice::Named("get_weather".into())),
                    parallel_tool_calls: Some(true),
                    ..Chat::default()
                },
                json!({
                    "contents": [
                        {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
                        {"role": "model", "parts": [
                            {"text": "Checking."},
                            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnMQ=="},
                            {"functionCall": {"name": "get_time", "args": {}}}]},
                        {"role": "user", "parts": [
                            {"functionResponse": {"name": "get_weather", "response": {"content": "21C"}}},
                            {"functionResponse": {"name": "get_time", "response": {"error": "no clock"}}}]},
                        {"role": "user", "parts": [{"text": "Thanks"}]}],
                    "tools": [{"functionDeclarations": [
                        {"name": "get_weather", "description": "Weather of a city",
                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                        {"name": "get_time"}]}],
                    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}}),
            ),
            (
                "images and merged user turns",
                Chat {
                    messages: vec![
                        Message {
                            role: Role::User,
                            parts: vec![
                                Part::Text("What is this?".into()),
                                Part::Image(Image::Base64 { media_type: "image/png".into(), data: "iVBOR".into() }),
                            ],
                        },
                        Message {
                            role: Role::User,
                            parts: vec![Part::Image(Image::Url("https://ex.com/a/cat.JPG?size=2".into()))],
                        },
                    ],
                    ..Chat::default()
                },
                json!({"contents": [{"role": "user", "parts": [
                    {"text": "What is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://ex.com/a/cat.JPG?size=2"}}]}]}),
            ),
            (
                "reasoning signature goes on the next model part",
                Chat {
                    messages: vec![
                        user("Hi"),
                        Message {
                            role: Role::Assistant,
                            parts: vec![
                                Part::Reasoning { text: "thinking".into(), signature: Some("sig-a".into()) },
                                Part::Text("Hello".into()),
                            ],
                        },
                        user("Again"),
                    ],
                    tool_choice: Some(ToolChoice::Required),
                    ..Chat::default()
                },
                json!({"contents": [
                    {"role": "user", "parts": [{"text": "Hi"}]},
                    {"role": "model", "parts": [{"text": "Hello", "thoughtSignature": "sig-a"}]},
                    {"role": "user", "parts": [{"text": "Again"}]}]}),
            ),
        ];
        for (name, chat, want) in cases {
            let (body, check) = encoded(&chat);
            assert_eq!(check, Ok(()), "{name}");
            assert_eq!(body, want, "{name}");
        }
    }

    #[test]
    fn tool_choice_modes() {
        let tool = Tool {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"a": {}}}),
        };
        let cases = [
            (ToolChoice::Auto, json!({"mode": "AUTO"})),
            (ToolChoice::None, json!({"mode": "NONE"})),
            (ToolChoice::Required, json!({"mode": "ANY"})),
            (ToolChoice::Named("f".into()), json!({"mode": "ANY", "allowedFunctionNames": ["f"]})),
        ];
        for (choice, want) in cases {
            let chat = Chat {
                messages: vec![user("x")],
                tools: vec![tool.clone()],
                tool_choice: Some(choice),
                ..Chat::default()
            };
            assert_eq!(encoded(&chat).0["toolConfig"]["functionCallingConfig"], want);
        }
    }

    #[test]
    fn parameters_gemini_cannot_take_are_reported() {
        let with = |f: fn(&mut Chat)| {
            let mut chat = Chat { messages: vec![user("x")], ..Chat::default() };
            f(&mut chat);
            encoded(&chat).1
        };
        assert_eq!(with(|c| c.user = Some("u1".into())), Err("user".into()));
        assert_eq!(with(|c| c.parallel_tool_calls = Some(false)), Err("parallel_tool_calls".into()));
        assert_eq!(with(|c| c.unmapped = vec!["logit_bias".into()]), Err("logit_bias".into()));
        let err = with(|c| {
            c.messages.push(Message { role: Role::User, parts: vec![Part::Image(Image::Url("https://x/img".into()))] })
        });
        assert!(err.is_err_and(|p| p.starts_with("image_url")));
        let err = with(|c| c.messages.push(result("call_missing", "x", false)));
        assert!(err.is_err_and(|p| p.starts_with("tool_call_id")));
        let err = with(|c| c.messages.push(Message { role: Role::Assistant, parts: vec![call("c", "f", "[1]")] }));
        assert!(err.is_err_and(|p| p.starts_with("tool_calls[].function.arguments")));
        // drop_params drops instead of refusing.
        let chat = Chat { messages: vec![user("x")], user: Some("u".into()), ..Chat::default() };
        let mut check = ParamCheck::new("gemini", true, &chat);
        let body = encode(&chat, &mut check);
        assert_eq!((check.finish(), body), (Ok(()), json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]})));
    }

    #[test]
    fn tool_results_find_the_latest_earlier_call_with_their_id() {
        // Two replies both used `call_0` (ids made up per reply by a gateway without response ids).
        let chat = Chat {
            messages: vec![
                user("a"),
                Message { role: Role::Assistant, parts: vec![call("call_0", "first", "{}")] },
                result("call_0", "1", false),
                Message { role: Role::Assistant, parts: vec![call("call_0", "second", "{}")] },
                result("call_0", "2", false),
            ],
            ..Chat::default()
        };
        let (body, check) = encoded(&chat);
        assert_eq!(check, Ok(()));
        let names: Vec<&Value> = body["contents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["parts"][0].get("functionResponse"))
            .map(|r| &r["name"])
            .collect();
        assert_eq!(names, [&json!("first"), &json!("second")]);
    }

    #[test]
    fn many_tools_share_one_schema_budget() {
        // Every tool's parameters fan out to 2^12 leaves: small to send, huge if each tool got its own budget.
        let mut defs = Map::new();
        for i in 0..12 {
            let next = format!("#/$defs/d{}", i + 1);
            defs.insert(
                format!("d{i}"),
                json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}}}),
            );
        }
        defs.insert("d12".into(), json!({"type": "string", "description": "x".repeat(100)}));
        let parameters = json!({"$defs": defs, "type": "object", "properties": {"r": {"$ref": "#/$defs/d0"}}});
        let tool = |i: usize| Tool { name: format!("t{i}"), description: None, parameters: parameters.clone() };
        let chat = Chat { messages: vec![user("x")], tools: (0..200).map(tool).collect(), ..Chat::default() };
        let input: usize = chat.tools.iter().map(|t| t.parameters.to_string().len()).sum();
        let out = encoded(&chat).0.to_string().len();
        assert!(out < 8 * input + 1_000_000, "{out} bytes from {input}");
    }

    #[test]
    fn media_types_from_extensions() {
        let cases = [
            ("https://x/a.png", Some("image/png")),
            ("https://x/a.jpeg#frag", Some("image/jpeg")),
            ("gs://bucket/doc.PDF", Some("application/pdf")),
            ("https://x/a.webp?x=1.png", Some("image/webp")),
            ("https://x.png/a", None),
            ("https://x/a", None),
            ("https://x/a.svg", None),
        ];
        for (url, want) in cases {
            assert_eq!(mime_of(url), want, "{url}");
        }
    }
}
