//! `text-completion-openai/<model>` (LiteLLM's name): an OpenAI-compatible server reached at `{api_base}/completions`,
//! OpenAI's legacy text completions (`gpt-3.5-turbo-instruct`, `davinci-002`, base models behind vLLM). Callers of
//! `/v1/completions` get their bytes spliced (`OpenAiCompatible::splice_completions`); chat callers (OpenAI or
//! Anthropic) are translated: the chat is flattened into one prompt ([`prompt`]), and the answer's
//! `choices[].text` read back as the assistant's text (the OpenAI reply and chunk decoders read `text` where a chat
//! has `message` or `delta`).

use actix_web::http::header::HeaderMap;
use serde_json::{Map, Value};

use super::{reply, stream::ChunkDecoder, OpenAiCompatible};
use crate::{
    framing::Framing,
    llm::{
        chat::{Chat, DecodeError, ParamCheck, Part, Reply, ResponseFormat, Role, ToolChoice, Unsupported},
        embed::{EmbedInput, Embeddings},
        CompletionRequest, UpstreamError,
    },
    providers::codec::{CallOptions, Dialect, StreamDecoder, UpstreamRequest},
};

const PROVIDER: &str = "text-completion-openai";

/// An OpenAI-compatible deployment that speaks `/completions` instead of `/chat/completions`.
#[derive(Debug)]
pub struct TextCompletion(pub OpenAiCompatible);

/// The chat as one prompt for a text-completion model.
///
/// A chat of one user message and no system text is sent as that text, unchanged (what a completions caller
/// reaching the deployment through a chat client would expect). Anything longer is a transcript, one paragraph
/// per turn, that ends where the model should go on:
///
/// ```text
/// System: <each system text>
///
/// User: <text>
///
/// Assistant: <text>
///
/// User: <text>
///
/// Assistant:
/// ```
///
/// When the last turn is the assistant's (a prefill), the prompt ends with its text, for the model to continue.
/// The text parts of a turn are joined by newlines. Images, tool calls and tool results have no place in a prompt
/// and are reported to `check`; reasoning of earlier turns is dropped, as for any OpenAI upstream.
pub fn prompt(chat: &Chat, check: &mut ParamCheck) -> String {
    let texts = |parts: &[Part], check: &mut ParamCheck| {
        let mut texts = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                Part::Text(t) => texts.push(t.as_str()),
                Part::Image(_) => check.unsupported("images"),
                Part::ToolCall(_) => check.unsupported("tool_calls"),
                Part::ToolResult(_) => check.unsupported("tool results"),
                Part::Reasoning { .. } => {}
            }
        }
        texts.join("\n")
    };
    if let ([only], true) = (chat.messages.as_slice(), chat.system.is_empty()) {
        if only.role == Role::User {
            return texts(&only.parts, check);
        }
    }
    let mut turns: Vec<String> = chat.system.iter().map(|s| format!("System: {s}")).collect();
    for m in &chat.messages {
        let label = match m.role {
            Role::User | Role::Tool => "User",
            Role::Assistant => "Assistant",
        };
        turns.push(format!("{label}: {}", texts(&m.parts, check)));
    }
    if chat.messages.last().is_none_or(|m| m.role != Role::Assistant) {
        turns.push("Assistant:".to_owned());
    }
    turns.join("\n\n")
}

/// A canonical chat as a `/completions` body: the prompt, OpenAI's legacy `max_tokens`, the sampling parameters,
/// and on streams `stream_options.include_usage` if the server takes it.
fn encode_request(chat: &Chat, options: CallOptions<'_>, stream_usage: bool, check: &mut ParamCheck) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("model".into(), options.upstream_model.into());
    body.insert("prompt".into(), prompt(chat, check).into());
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(key.into(), v);
        }
    };
    put("max_tokens", chat.max_tokens.map(Value::from));
    put("temperature", chat.temperature.map(Value::from));
    put("top_p", chat.top_p.map(Value::from));
    put("stop", (!chat.stop.is_empty()).then(|| chat.stop.iter().map(|s| Value::from(s.as_str())).collect()));
    put("seed", chat.seed.map(Value::from));
    put("presence_penalty", chat.presence_penalty.map(Value::from));
    put("frequency_penalty", chat.frequency_penalty.map(Value::from));
    put("user", chat.user.as_deref().map(Value::from));
    if options.stream {
        put("stream", Some(Value::Bool(true)));
        put("stream_options", stream_usage.then(|| serde_json::json!({"include_usage": true})));
    }
    if !chat.tools.is_empty() {
        check.unsupported("tools");
    }
    if chat.tool_choice.as_ref().is_some_and(|c| *c != ToolChoice::None) {
        check.unsupported("tool_choice");
    }
    if chat.response_format.as_ref().is_some_and(|f| *f != ResponseFormat::Text) {
        check.unsupported("response_format");
    }
    if chat.top_k.is_some() {
        check.unsupported("top_k");
    }
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

impl Dialect for TextCompletion {
    fn provider(&self) -> &str {
        &self.0.provider
    }

    fn chat_request(&self, chat: &Chat, options: CallOptions<'_>) -> Result<UpstreamRequest, Unsupported> {
        let mut check = ParamCheck::new(PROVIDER, options.drop_params, chat);
        let body = encode_request(chat, options, self.0.stream_usage, &mut check);
        check.finish()?;
        Ok(self.0.request(&self.0.completions_url, body))
    }

    fn splice_completions(&self, req: &CompletionRequest<'_>, upstream_model: &str) -> Option<UpstreamRequest> {
        Some(self.0.splice_completions(req, upstream_model))
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(ChunkDecoder::default())
    }

    fn decode_reply(&self, body: &[u8]) -> Result<Reply, DecodeError> {
        reply::decode_reply(body)
    }

    fn parse_error(&self, deployment: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        self.0.parse_error(deployment, status, headers, body)
    }

    fn endpoint(&self) -> String {
        Dialect::endpoint(&self.0)
    }

    fn sends_key(&self) -> bool {
        self.0.sends_key()
    }

    fn embeddings_request(&self, input: &EmbedInput, upstream_model: &str) -> Result<UpstreamRequest, Unsupported> {
        self.0.embeddings_request(input, upstream_model)
    }

    fn decode_embeddings(&self, body: &[u8]) -> Result<Embeddings, DecodeError> {
        self.0.decode_embeddings(body)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::{
        framing::Frame,
        llm::chat::{Event, Finish, Image, Message, Tool, ToolCall},
        providers::{
            catalog::{self, Lookup},
            openai::Settings,
        },
        secret::Secret,
    };

    fn provider() -> TextCompletion {
        let Lookup::Found(preset) = catalog::lookup("openai") else { unreachable!("the openai preset exists") };
        let extra = BTreeMap::new();
        let settings = Settings {
            provider: PROVIDER,
            preset,
            api_base: Some("http://127.0.0.1:9/v1"),
            api_key: Some(Secret::new("sk-test-key-123")),
            organization: None,
            extra_headers: &extra,
            azure: None,
        };
        TextCompletion(OpenAiCompatible::new(settings, &|_: &str| None).unwrap_or_else(|e| unreachable!("{e}")))
    }

    fn text(role: Role, t: &str) -> Message {
        Message { role, parts: vec![Part::Text(t.into())] }
    }

    fn flat(chat: &Chat) -> (String, Result<(), String>) {
        let mut check = ParamCheck::new(PROVIDER, false, chat);
        let p = prompt(chat, &mut check);
        (p, check.finish().map_err(|e| e.param))
    }

    #[test]
    fn chats_flatten_into_prompts() {
        let lone = Chat { messages: vec![text(Role::User, "Say hi")], ..Chat::default() };
        let transcript = Chat {
            system: vec!["Be terse.".into()],
            messages: vec![
                Message { role: Role::User, parts: vec![Part::Text("a".into()), Part::Text("b".into())] },
                Message {
                    role: Role::Assistant,
                    parts: vec![Part::Reasoning { text: "x".into(), signature: None }, Part::Text("c".into())],
                },
                text(Role::User, "d"),
            ],
            ..Chat::default()
        };
        let prefill = Chat { messages: vec![text(Role::User, "Q"), text(Role::Assistant, "A:")], ..Chat::default() };
        let with_image = Chat {
            messages: vec![Message {
                role: Role::User,
                parts: vec![Part::Image(Image::Url("http://x/y.png".into())), Part::Text("what?".into())],
            }],
            ..Chat::default()
        };
        let call = ToolCall { id: "t1".into(), name: "f".into(), arguments: "{}".into() };
        let with_call = Chat {
            messages: vec![Message { role: Role::Assistant, parts: vec![Part::ToolCall(call)] }],
            ..Chat::default()
        };
        let cases: &[(&Chat, &str, Result<(), &str>)] = &[
            (&lone, "Say hi", Ok(())),
            (&transcript, "System: Be terse.\n\nUser: a\nb\n\nAssistant: c\n\nUser: d\n\nAssistant:", Ok(())),
            (&prefill, "User: Q\n\nAssistant: A:", Ok(())),
            (&with_image, "what?", Err("images")),
            (&with_call, "Assistant: ", Err("tool_calls")),
        ];
        for (chat, want, refused) in cases {
            assert_eq!(flat(chat), ((*want).to_owned(), refused.map_err(str::to_owned)), "{chat:?}");
        }
    }

    #[test]
    fn chat_requests_become_completions_bodies() {
        let chat = Chat {
            messages: vec![text(Role::User, "Say hi")],
            max_tokens: Some(20),
            temperature: Some(0.5),
            stop: vec!["\n".into()],
            user: Some("u".into()),
            ..Chat::default()
        };
        let options = CallOptions { upstream_model: "gpt-3.5-turbo-instruct", stream: true, drop_params: false };
        let req = provider().chat_request(&chat, options).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(req.url.to_string(), "http://127.0.0.1:9/v1/completions");
        assert_eq!(
            serde_json::from_slice::<Value>(&req.body).unwrap_or_default(),
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 20, "temperature": 0.5,
                "stop": ["\n"], "user": "u", "stream": true, "stream_options": {"include_usage": true}})
        );
        let tool = Tool { name: "f".into(), description: None, parameters: json!({"type": "object"}) };
        let with_tools = Chat { tools: vec![tool], tool_choice: Some(ToolChoice::Auto), ..chat.clone() };
        let strict = CallOptions { stream: false, ..options };
        let err = provider().chat_request(&with_tools, strict).err().map(|e| (e.param, e.provider));
        assert_eq!(err, Some(("tools".into(), PROVIDER)));
        let lenient = CallOptions { drop_params: true, ..strict };
        assert!(provider().chat_request(&with_tools, lenient).is_ok());
        assert_eq!(provider().endpoint(), "http://127.0.0.1:9/v1");
    }

    #[test]
    fn text_completion_replies_and_chunks_read_as_text() {
        let p = provider();
        let body = br#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"Hi there","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let reply = p.decode_reply(body).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((reply.id.as_str(), reply.parts.as_slice()), ("cmpl-1", &[Part::Text("Hi there".into())][..]));
        assert_eq!(reply.finish, Some(Finish::Length));
        assert_eq!(reply.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((3, 2)));
        let mut decoder = p.stream_decoder();
        let mut events = Vec::new();
        let chunks: [&[u8]; 3] = [
            br#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"Hi","index":0,"logprobs":null,"finish_reason":null}]}"#,
            br#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}"#,
            b"[DONE]",
        ];
        for data in chunks {
            let frame = Frame { event: None, data: bytes::Bytes::from_static(data) };
            assert_eq!(decoder.frame(&frame, &mut events), Ok(()));
        }
        assert_eq!(decoder.end(&mut events), Ok(()));
        assert_eq!(
            events,
            [
                Event::Start { id: "cmpl-1".into(), model: "m".into() },
                Event::Text("Hi".into()),
                Event::Finish(Finish::Stop)
            ]
        );
    }
}
