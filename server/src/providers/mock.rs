//! `mock/<name>`: a built-in provider with deterministic content and usage, for the quickstart, demos,
//! benchmarks and pipeline tests. Behaviour is picked by name:
//!
//! | name            | behaviour                                                                    |
//! |-----------------|------------------------------------------------------------------------------|
//! | `echo`          | replies with the last user message                                           |
//! | `slow`          | waits 1 s before the first byte (or `mock_latency_ms`), 100 ms per chunk    |
//! | `error-<status>`| fails like an upstream with that HTTP status (`error-429` adds retry-after)   |
//! | anything else   | a fixed sentence, or `mock_response` from the config                         |
//!
//! Streams are real SSE bytes in OpenAI's chunk format and go through the same relay as upstream streams.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::llm::{
    chat::{text_of, Chat, Event, Finish, Part, Reply, Role},
    EmbeddingsRequest, UpstreamError, UpstreamFailure, Usage,
};

const DEFAULT_CONTENT: &str = "Hello from tollgate's mock provider! This reply is deterministic.";
const EMBEDDING_DIMENSIONS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    Fixed,
    Echo,
    Slow,
    Error(u16),
}

#[derive(Debug, Clone)]
pub struct MockModel {
    pub name: String,
    pub behaviour: Behaviour,
    pub response: Option<String>,
    pub latency: Option<Duration>,
}

impl MockModel {
    pub fn new(name: &str, response: Option<String>, latency: Option<Duration>) -> Self {
        let behaviour = match name {
            "echo" => Behaviour::Echo,
            "slow" => Behaviour::Slow,
            _ => match name.strip_prefix("error-").and_then(|s| s.parse::<u16>().ok()) {
                Some(status) if (400..600).contains(&status) => Behaviour::Error(status),
                _ => Behaviour::Fixed,
            },
        };
        Self { name: name.to_owned(), behaviour, response, latency }
    }

    /// Delay before the first byte.
    pub fn latency(&self) -> Option<Duration> {
        match self.behaviour {
            Behaviour::Slow => Some(self.latency.unwrap_or(Duration::from_secs(1))),
            _ => self.latency,
        }
    }

    /// Chunk spacing of streamed replies.
    pub fn chunk_delay(&self) -> Option<Duration> {
        (self.behaviour == Behaviour::Slow).then_some(Duration::from_millis(100))
    }

    /// The reply, as canonical types: the caller's dialect renders it like any provider's.
    pub fn chat(&self, chat: &Chat, id: &str, deployment: &str) -> Result<Reply, Box<UpstreamError>> {
        self.fail_if_asked(deployment)?;
        let content = match self.behaviour {
            Behaviour::Echo => last_user_text(chat),
            _ => self.response.clone().unwrap_or_else(|| DEFAULT_CONTENT.to_owned()),
        };
        let usage =
            Usage { prompt_tokens: prompt_tokens(chat), completion_tokens: count_tokens(&content), ..Usage::default() };
        Ok(Reply {
            id: format!("chatcmpl-mock-{id}"),
            model: format!("mock/{}", self.name),
            parts: vec![Part::Text(content)],
            finish: Some(Finish::Stop),
            usage: Some(usage),
        })
    }

    /// The chat's input tokens as this mock counts them in its replies' usage (`count_tokens`).
    pub fn count_tokens(&self, chat: &Chat, deployment: &str) -> Result<u64, Box<UpstreamError>> {
        self.fail_if_asked(deployment)?;
        Ok(prompt_tokens(chat))
    }

    pub fn embeddings(&self, req: &EmbeddingsRequest<'_>, deployment: &str) -> Result<Bytes, Box<UpstreamError>> {
        self.fail_if_asked(deployment)?;
        let inputs: Vec<String> = match serde_json::from_str::<Value>(req.input.get()) {
            Ok(Value::String(s)) => vec![s],
            Ok(Value::Array(items)) => {
                items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect()
            }
            _ => Vec::new(),
        };
        let tokens: u64 = inputs.iter().map(|s| count_tokens(s)).sum();
        let base64 = req.body.get("encoding_format").is_some_and(|f| f.get() == "\"base64\"");
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let vector = embed(text);
                // OpenAI's base64 format: the little-endian f32s, base64-encoded (the Python SDK asks for it).
                let embedding = if base64 {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(vector)
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        let body = json!({"object": "list", "model": format!("mock/{}", self.name), "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
        Ok(Bytes::from(body.to_string()))
    }

    fn fail_if_asked(&self, deployment: &str) -> Result<(), Box<UpstreamError>> {
        let Behaviour::Error(status) = self.behaviour else {
            return Ok(());
        };
        let (kind, code) = match status {
            429 => ("requests", Some("rate_limit_exceeded")),
            s if s >= 500 => ("server_error", None),
            _ => ("invalid_request_error", None),
        };
        Err(Box::new(UpstreamError {
            failure: UpstreamFailure::Status(status),
            deployment: deployment.to_owned(),
            message: format!("mock provider error {status} (model mock/{})", self.name),
            kind: Some(kind.to_owned()),
            code: code.map(str::to_owned),
            param: None,
            headers: if status == 429 { vec![("retry-after".into(), "1".into())] } else { Vec::new() },
        }))
    }
}

fn last_user_text(chat: &Chat) -> String {
    let last = chat.messages.iter().rev().find(|m| m.role == Role::User);
    last.map(|m| {
        let texts: Vec<&str> =
            m.parts.iter().filter_map(|p| if let Part::Text(t) = p { Some(t.as_str()) } else { None }).collect();
        texts.join(" ")
    })
    .unwrap_or_default()
}

/// A reply as the stream of events a provider would send: start, the text word by word, finish, usage.
pub fn stream_events(reply: &Reply) -> Vec<Event> {
    let mut events = vec![Event::Start { id: reply.id.clone(), model: reply.model.clone() }];
    for part in &reply.parts {
        if let Part::Text(text) = part {
            events.extend(split_words(text).map(|w| Event::Text(w.to_owned())));
        }
    }
    events.extend(reply.finish.clone().map(Event::Finish));
    events.extend(reply.usage.map(Event::Usage));
    events
}

/// A stand-in for a tokenizer: about four characters per token, at least one per word.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().map(|w| (w.chars().count() as u64).div_ceil(4).max(1)).sum()
}

/// A chat's input tokens: each system text and message, three tokens of framing each, and three for the reply's.
fn prompt_tokens(chat: &Chat) -> u64 {
    chat.system.iter().map(|s| count_tokens(s) + 3).sum::<u64>()
        + chat.messages.iter().map(|m| count_tokens(&text_of(&m.parts)) + 3).sum::<u64>()
        + 3
}

/// Splits text into stream pieces that concatenate back to the original exactly.
fn split_words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let start = rest.len() - rest.trim_start().len();
        let end = rest[start..].find(char::is_whitespace).map_or(rest.len(), |i| start + i);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// A deterministic unit vector derived from the text (FNV-1a seeded per dimension).
fn embed(text: &str) -> Vec<f32> {
    let raw: Vec<f32> = (0..EMBEDDING_DIMENSIONS as u64)
        .map(|dim| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ dim;
            for b in text.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            (h % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_by_name() {
        let cases = [
            ("echo", Behaviour::Echo),
            ("slow", Behaviour::Slow),
            ("error-429", Behaviour::Error(429)),
            ("error-503", Behaviour::Error(503)),
            ("error-99", Behaviour::Fixed),
            ("gpt-4o-mini", Behaviour::Fixed),
        ];
        for (name, want) in cases {
            assert_eq!(MockModel::new(name, None, None).behaviour, want, "{name}");
        }
    }

    #[test]
    fn split_words_round_trips() {
        for text in ["", "one", "Hello from  tollgate!", " lead and trail "] {
            assert_eq!(split_words(text).collect::<String>(), text);
        }
        assert_eq!(split_words("a b").collect::<Vec<_>>(), ["a", " b"]);
    }

    #[test]
    fn echo_replies_with_last_user_message_and_counts_tokens() {
        let m = MockModel::new("echo", None, None);
        let user = |t: &str| crate::llm::chat::Message { role: Role::User, parts: vec![Part::Text(t.into())] };
        let assistant = crate::llm::chat::Message { role: Role::Assistant, parts: vec![Part::Text("a".into())] };
        let chat = Chat { messages: vec![user("first"), assistant, user("second one")], ..Chat::default() };
        let reply = m.chat(&chat, "rid", "d").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(reply.parts, [Part::Text("second one".into())]);
        assert_eq!(reply.usage.map(|u| u.completion_tokens), Some(3));
        assert_eq!(reply.id, "chatcmpl-mock-rid");
        let events = stream_events(&reply);
        assert_eq!(events[1..3], [Event::Text("second".into()), Event::Text(" one".into())]);
    }

    #[test]
    fn embeddings_honour_base64_encoding() {
        let m = MockModel::new("e", None, None);
        let req = EmbeddingsRequest::parse(br#"{"model":"e","input":"hello","encoding_format":"base64"}"#)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let body: Value =
            m.embeddings(&req, "d").map(|b| serde_json::from_slice(&b).unwrap_or_default()).unwrap_or_default();
        let encoded = body["data"][0]["embedding"].as_str().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default();
        let floats: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(floats, embed("hello"));
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embed("hello");
        assert_eq!(a, embed("hello"));
        assert_ne!(a, embed("hellp"));
        assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
