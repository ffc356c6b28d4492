//! `:streamGenerateContent?alt=sse`: every SSE `data:` is a whole `GenerateContentResponse` holding only the new
//! parts (providers.md 3.4). There is no terminator event: the stream ends when the body does.
//!
//! - `Start` on the first event (its `responseId`, `modelVersion`).
//! - Text parts are `Text` deltas (`thought: true` ones `Reasoning`); a signature on a part is a
//!   `ReasoningSignature`, except on a function call, whose id carries it (`reply.rs`).
//! - Function calls arrive whole: `ToolStart` and one `ToolArgs` with all the arguments (`{}` when none).
//! - `finishReason` may repeat on every event (some model versions), and function calls may come in an event
//!   before the one with the reason, so the reason is kept and `Finish` is emitted when the body ends, with `STOP`
//!   read as `tool_calls` if any call was seen.
//! - `usageMetadata` is cumulative and repeats: each new count is a `Usage` as it arrives (a later one replaces an
//!   earlier one), so a stream that breaks anywhere, even mid-event, still books what Google counted so far; an
//!   event without it never resets it.
//! - An `error` object is an `Error` event (Google then closes the stream).
//!
//! `end` is `Ok` only if a `finishReason` (or a prompt `blockReason`, or an in-stream error) was seen: a body
//! that stops before any of those was cut.

use super::reply::{self, arguments, CallIds};
use crate::{
    framing::Frame,
    llm::{
        chat::{DecodeError, Event, StreamError},
        Usage,
    },
    providers::codec::StreamDecoder,
};

#[derive(Debug)]
pub(super) struct Decoder {
    /// The deployment's model, for `Start` when the upstream names none.
    model: String,
    started: bool,
    ids: CallIds,
    tool_calls: u32,
    finish_reason: Option<String>,
    blocked: bool,
    errored: bool,
    usage: Option<Usage>,
}

impl Decoder {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            ids: CallIds::default(),
            tool_calls: 0,
            finish_reason: None,
            blocked: false,
            errored: false,
            usage: None,
        }
    }
}

impl StreamDecoder for Decoder {
    fn frame(&mut self, frame: &Frame, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        // Not Gemini's, but a proxy in front may add OpenAI's terminator; it carries nothing.
        if frame.data.trim_ascii() == b"[DONE]" {
            return Ok(());
        }
        let resp = reply::parse(&frame.data)?;
        if !self.started {
            self.started = true;
            self.ids = CallIds::new(resp.response_id.as_deref());
            out.push(Event::Start {
                id: resp.response_id.clone().unwrap_or_default(),
                model: resp.model_version.clone().unwrap_or_else(|| self.model.clone()),
            });
        }
        if let Some(e) = &resp.error {
            self.errored = true;
            out.push(Event::Error(StreamError {
                kind: e.status.clone().unwrap_or_else(|| "error".to_owned()),
                message: e.message.clone().unwrap_or_else(|| "the upstream reported an error in the stream".into()),
            }));
            return Ok(());
        }
        if let Some(u) = resp.usage_metadata.as_ref().map(|u| u.canonical()) {
            if self.usage != Some(u) {
                self.usage = Some(u);
                out.push(Event::Usage(u));
            }
        }
        if resp.blocked() {
            self.blocked = true;
        }
        let Some(candidate) = resp.first_candidate() else {
            return Ok(());
        };
        for part in candidate.parts() {
            let sig = part.thought_signature.as_deref().filter(|s| !s.is_empty());
            if let Some(call) = &part.function_call {
                let index = self.tool_calls;
                self.tool_calls += 1;
                let id = self.ids.id(call, sig);
                out.push(Event::ToolStart { index, id, name: call.name.clone() });
                out.push(Event::ToolArgs { index, fragment: arguments(call.args.as_ref()) });
                continue;
            }
            let text = part.text.as_deref().unwrap_or_default();
            if part.thought {
                if !text.is_empty() {
                    out.push(Event::Reasoning(text.to_owned()));
                }
                if let Some(s) = sig {
                    out.push(Event::ReasoningSignature(s.to_owned()));
                }
                continue;
            }
            if let Some(s) = sig {
                out.push(Event::ReasoningSignature(s.to_owned()));
            }
            if !text.is_empty() {
                out.push(Event::Text(text.to_owned()));
            }
        }
        if let Some(reason) = &candidate.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let finish = match &self.finish_reason {
            Some(reason) => Some(reply::finish(reason, self.tool_calls > 0)),
            None if self.blocked => Some(crate::llm::chat::Finish::ContentFilter),
            None => None,
        };
        let complete = finish.is_some() || self.errored;
        if let Some(f) = finish {
            out.push(Event::Finish(f));
        }
        if complete {
            Ok(())
        } else if self.started {
            Err(DecodeError::new("the Gemini stream ended before a finishReason"))
        } else {
            Err(DecodeError::new("the Gemini stream ended before its first event"))
        }
    }
}
