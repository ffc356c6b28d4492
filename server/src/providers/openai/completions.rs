//! The caller's side of OpenAI's legacy text completions (`POST /v1/completions`) served by a chat model: the
//! prompt read into the canonical [`Chat`] (one user message), and the answer rendered as OpenAI's
//! `text_completion` object or its stream of `text_completion` chunks. Deployments that speak `/completions`
//! themselves (`text-completion-openai/`) never come here: they get the caller's bytes (`OpenAiCompatible::
//! splice_completions`).
//!
//! What a chat cannot do is named in `chat.unmapped` (refused unless the deployment drops parameters): `echo`,
//! `logprobs`, `suffix`, `best_of` and `n` above 1, and any field this module does not know.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::{
    reply::{usage_json, UsageJson},
    request::{dedupe_unmapped, field, invalid, sampling_field, unmapped},
    stream::{put_data, ErrorBody, ErrorJson, NEXT_ID},
};
use crate::{
    llm::{
        chat::{text_of, Chat, Event, Message, Part, Reply, Role},
        CompletionRequest, RequestError, Usage,
    },
    providers::codec::StreamEncoder,
};

/// Fields read elsewhere, or that only tune OpenAI's own service: dropping them changes nothing about the answer.
const HARMLESS: &[&str] = &["model", "prompt", "stream", "stream_options", "metadata", "store", "service_tier"];

/// The caller's text-completions request as a chat: the prompt is the one user message.
pub fn decode_request(req: &CompletionRequest<'_>) -> Result<Chat, RequestError> {
    let [prompt] = req.prompts.as_slice() else {
        return Err(invalid(
            "prompt",
            "several prompts in one request are answered only by `text-completion-openai/` deployments; send one \
             prompt per request",
        ));
    };
    let message = Message { role: Role::User, parts: vec![Part::Text(prompt.clone())] };
    let mut chat = Chat { stream: req.stream, messages: vec![message], ..Chat::default() };
    for (key, raw) in &req.body.fields {
        // `null` means "not set" in OpenAI's API.
        if raw.get() == "null" || HARMLESS.contains(&key.as_ref()) {
            continue;
        }
        match key.as_ref() {
            "max_tokens" => chat.max_tokens = Some(field(raw, "max_tokens", "a non-negative integer")?),
            "best_of" => {
                if field::<u64>(raw, "best_of", "a positive integer")? > 1 {
                    unmapped(&mut chat, "best_of");
                }
            }
            "echo" => {
                if field::<bool>(raw, "echo", "a boolean")? {
                    unmapped(&mut chat, "echo");
                }
            }
            // An integer (how many alternatives per token); even 0 asks for the chosen tokens' logprobs.
            "logprobs" => {
                field::<u64>(raw, "logprobs", "an integer from 0 to 5")?;
                unmapped(&mut chat, "logprobs");
            }
            "suffix" => {
                if !field::<String>(raw, "suffix", "a string")?.is_empty() {
                    unmapped(&mut chat, "suffix");
                }
            }
            other => {
                if !sampling_field(&mut chat, other, raw)? {
                    unmapped(&mut chat, other);
                }
            }
        }
    }
    dedupe_unmapped(&mut chat);
    Ok(chat)
}

/// A completion id: the upstream's under OpenAI's `cmpl-` prefix (a chat id's `chatcmpl-` becomes `cmpl-`), or a
/// generated one when the upstream sent none.
fn completion_id(upstream: &str) -> String {
    if upstream.is_empty() {
        return format!("cmpl-tollgate-{}", NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    }
    if upstream.starts_with("cmpl-") {
        return upstream.to_owned();
    }
    format!("cmpl-{}", upstream.strip_prefix("chatcmpl-").unwrap_or(upstream))
}

#[derive(Serialize)]
struct CompletionJson<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChoiceJson<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageJson>,
}

#[derive(Serialize)]
struct ChoiceJson<'a> {
    text: &'a str,
    index: u32,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

/// A canonical reply as OpenAI's `text_completion` object: the reply's text (reasoning has no place in it), and
/// `stop` when the upstream gave no finish reason.
pub fn encode_reply(reply: &Reply, created: u64) -> Vec<u8> {
    let text = text_of(&reply.parts);
    let finish_reason = reply.finish.as_ref().map_or("stop", |f| f.openai());
    let body = CompletionJson {
        id: &completion_id(&reply.id),
        object: "text_completion",
        created,
        model: &reply.model,
        choices: &[ChoiceJson { text: &text, index: 0, logprobs: (), finish_reason: Some(finish_reason) }],
        usage: reply.usage.as_ref().map(usage_json),
    };
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Renders canonical events as OpenAI's `text_completion` chunks: one per text delta, one with the finish reason,
/// the usage chunk (empty `choices`) if the caller asked (`include_usage`), and `data: [DONE]`. Legacy streams
/// have no role chunk, so nothing is written before the first text.
#[derive(Debug)]
pub struct CompletionEncoder {
    include_usage: bool,
    created: u64,
    /// `None` until the upstream's Start (or the first chunk, which makes one up).
    id: Option<String>,
    model: String,
    usage: Option<Usage>,
    /// Ended or failed: nothing more is written.
    closed: bool,
}

impl CompletionEncoder {
    pub fn new(include_usage: bool, created: u64) -> Self {
        Self { include_usage, created, id: None, model: String::new(), usage: None, closed: false }
    }

    fn chunk(&mut self, choices: &[ChoiceJson<'_>], usage: Option<UsageJson>, out: &mut BytesMut) {
        let id = self.id.get_or_insert_with(|| completion_id(""));
        let json =
            CompletionJson { id, object: "text_completion", created: self.created, model: &self.model, choices, usage };
        put_data(out, &json);
    }

    fn text(&mut self, text: &str, finish_reason: Option<&'static str>, out: &mut BytesMut) {
        self.chunk(&[ChoiceJson { text, index: 0, logprobs: (), finish_reason }], None, out);
    }

    fn error(&mut self, kind: &str, code: Option<&str>, message: &str, out: &mut BytesMut) {
        if !std::mem::replace(&mut self.closed, true) {
            put_data(out, &ErrorJson { error: ErrorBody { message, kind, param: (), code } });
        }
    }
}

impl StreamEncoder for CompletionEncoder {
    fn event(&mut self, event: &Event, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        match event {
            Event::Start { id, model } if self.id.is_none() => {
                self.id = Some(completion_id(id));
                self.model.clone_from(model);
            }
            Event::Text(t) if !t.is_empty() => self.text(t, None, out),
            Event::Finish(f) => self.text("", Some(f.openai()), out),
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => self.error(&e.kind, None, &e.message, out),
            // Reasoning and tool calls have no place in a text completion (a completions caller sends no tools).
            _ => {}
        }
    }

    fn end(&mut self, out: &mut BytesMut) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        if let (true, Some(usage)) = (self.include_usage, self.usage) {
            self.chunk(&[], Some(usage_json(&usage)), out);
        }
        out.put_slice(b"data: [DONE]\n\n");
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut BytesMut) {
        self.error("server_error", Some(code).filter(|c| !c.is_empty()), message, out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::llm::chat::{Finish, StreamError};

    fn decode(body: &str) -> Result<Chat, RequestError> {
        decode_request(&CompletionRequest::parse(body.as_bytes())?)
    }

    #[test]
    fn the_prompt_becomes_one_user_message_with_the_sampling_parameters() {
        let body = r#"{"model":"m","prompt":["Say hi"],"max_tokens":7,"temperature":0.5,"top_p":0.9,"stop":"\n",
            "seed":3,"user":"u1","n":1,"best_of":1,"echo":false,"suffix":"","presence_penalty":0.1,"logprobs":null,
            "stream":true,"stream_options":{"include_usage":true},"store":true}"#;
        let want = Chat {
            messages: vec![Message { role: Role::User, parts: vec![Part::Text("Say hi".into())] }],
            max_tokens: Some(7),
            temperature: Some(0.5),
            top_p: Some(0.9),
            stop: vec!["\n".into()],
            seed: Some(3),
            user: Some("u1".into()),
            presence_penalty: Some(0.1),
            stream: true,
            ..Chat::default()
        };
        assert_eq!(decode(body), Ok(want));
    }

    #[test]
    fn what_a_chat_cannot_do_is_unmapped_once_and_bad_shapes_are_refused() {
        let unmapped = |body: &str| decode(body).map(|c| c.unmapped);
        let cases: &[(&str, Result<Vec<String>, RequestError>)] = &[
            (r#"{"model":"m","prompt":"a","echo":true,"logprobs":0}"#, Ok(vec!["echo".into(), "logprobs".into()])),
            (
                r#"{"model":"m","prompt":"a","suffix":"end","best_of":3,"n":2}"#,
                Ok(vec!["suffix".into(), "best_of".into(), "n".into()]),
            ),
            (
                r#"{"model":"m","prompt":"a","logit_bias":{"50256":-100},"logit_bias_2":1}"#,
                Ok(vec!["logit_bias".into(), "logit_bias_2".into()]),
            ),
            (r#"{"model":"m","prompt":"a","echo":"yes"}"#, Err(invalid("echo", "`echo` must be a boolean"))),
            (
                r#"{"model":"m","prompt":"a","logprobs":true}"#,
                Err(invalid("logprobs", "`logprobs` must be an integer from 0 to 5")),
            ),
            (
                r#"{"model":"m","prompt":["a","b"]}"#,
                Err(invalid(
                    "prompt",
                    "several prompts in one request are answered only by `text-completion-openai/` deployments; \
                     send one prompt per request",
                )),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(&unmapped(body), want, "{body}");
        }
    }

    #[test]
    fn completion_ids_keep_the_upstreams_under_cmpl() {
        assert_eq!(completion_id("msg_01"), "cmpl-msg_01");
        assert_eq!(completion_id("chatcmpl-abc"), "cmpl-abc");
        assert_eq!(completion_id("cmpl-xyz"), "cmpl-xyz");
        assert!(completion_id("").starts_with("cmpl-tollgate-"));
    }

    #[test]
    fn replies_render_as_text_completions() {
        let reply = Reply {
            id: "msg_1".into(),
            model: "claude".into(),
            parts: vec![Part::Reasoning { text: "hmm".into(), signature: None }, Part::Text("Hi".into())],
            finish: Some(Finish::Length),
            usage: Some(Usage { prompt_tokens: 4, completion_tokens: 2, ..Usage::default() }),
        };
        let got: Value = serde_json::from_slice(&encode_reply(&reply, 9)).unwrap_or_default();
        assert_eq!(
            got,
            json!({"id": "cmpl-msg_1", "object": "text_completion", "created": 9, "model": "claude",
                "choices": [{"text": "Hi", "index": 0, "logprobs": null, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6,
                    "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}})
        );
        let bare: Value = serde_json::from_slice(&encode_reply(&Reply::default(), 9)).unwrap_or_default();
        assert_eq!(bare["choices"][0]["finish_reason"], "stop");
        assert_eq!(bare["usage"], Value::Null);
    }

    fn encode_stream(include_usage: bool, events: &[Event]) -> Vec<Value> {
        let mut encoder = CompletionEncoder::new(include_usage, 7);
        let mut out = BytesMut::new();
        for e in events {
            encoder.event(e, &mut out);
        }
        encoder.end(&mut out);
        String::from_utf8_lossy(&out)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap_or(Value::String(d.to_owned())))
            .collect()
    }

    #[test]
    fn streams_render_as_text_completion_chunks() {
        let usage = Usage { prompt_tokens: 3, completion_tokens: 2, ..Usage::default() };
        let events = [
            Event::Start { id: "msg_1".into(), model: "claude".into() },
            Event::Reasoning("hidden".into()),
            Event::Text("Hel".into()),
            Event::Text("lo".into()),
            Event::Usage(usage),
            Event::Finish(Finish::Stop),
        ];
        let chunk = |text: &str, finish: Value| {
            json!({"id": "cmpl-msg_1", "object": "text_completion", "created": 7, "model": "claude",
                "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]})
        };
        let usage_chunk = json!({"id": "cmpl-msg_1", "object": "text_completion", "created": 7, "model": "claude",
            "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}});
        let done = Value::String("[DONE]".into());
        let base = vec![chunk("Hel", Value::Null), chunk("lo", Value::Null), chunk("", json!("stop"))];
        assert_eq!(encode_stream(false, &events), [base.clone(), vec![done.clone()]].concat());
        assert_eq!(encode_stream(true, &events), [base, vec![usage_chunk, done]].concat());
    }

    #[test]
    fn a_stream_error_is_the_last_chunk() {
        let error = Event::Error(StreamError { kind: "overloaded_error".into(), message: "busy".into() });
        let got = encode_stream(true, &[Event::Text("a".into()), error, Event::Text("b".into())]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["choices"][0]["text"], "a");
        assert!(got[0]["id"].as_str().is_some_and(|id| id.starts_with("cmpl-tollgate-")));
        assert_eq!(
            got[1],
            json!({"error": {"message": "busy", "type": "overloaded_error", "param": null, "code": null}})
        );
    }
}
