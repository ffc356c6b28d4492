//! What the relays read of OpenAI-shaped response bodies and stream chunks: usage, the answering model, finish
//! reasons, and an `error` object hiding in a 2xx body. Everything else is skipped unparsed; strings are borrowed
//! from the body where they need no unescaping.

use std::borrow::Cow;

use serde::Deserialize;

use crate::{llm::Usage, providers::openai::reply::WireUsage};

#[derive(Debug, Default, Deserialize)]
pub struct Peek<'a> {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Option<Vec<ChoicePeek<'a>>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    /// Groq put stream usage here before it moved to the top level.
    #[serde(default)]
    x_groq: Option<GroqExtra>,
}

#[derive(Debug, Default, Deserialize)]
struct ChoicePeek<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct GroqExtra {
    #[serde(default)]
    usage: Option<WireUsage>,
}

impl<'a> Peek<'a> {
    pub fn parse(json: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(json).ok()
    }

    /// The model the body or chunk names.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The finish reasons of the choices that finished here.
    pub fn finish_reasons(&self) -> impl Iterator<Item = &str> {
        self.choices.iter().flatten().filter_map(|c| c.finish_reason.as_deref())
    }

    /// Consumes the usage object (read once per body or chunk).
    pub fn take_usage(&mut self) -> Option<Usage> {
        self.usage.take().or_else(|| self.x_groq.as_mut().and_then(|g| g.usage.take())).map(Usage::from)
    }

    /// Some choice of this chunk finished.
    pub fn finishes(&self) -> bool {
        self.choices.iter().flatten().any(|c| c.finish_reason.is_some())
    }

    /// OpenAI's final `include_usage` chunk: empty `choices`, usage filled.
    pub fn is_usage_only(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_some_and(Vec::is_empty)
    }

    /// An `error` object and no choices: the upstream reported a failure inside a 2xx response.
    pub fn is_error(&self) -> bool {
        self.error.is_some() && self.choices.as_ref().is_none_or(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64, cache_read: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cache_read_tokens: cache_read,
            cache_write_tokens: 0,
            reasoning_tokens: reasoning,
        }
    }

    #[test]
    fn peeks_at_usage_in_every_position() {
        let cases: &[(&str, Option<Usage>, bool)] = &[
            (
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
                Some(usage(9, 2, 0, 0)),
                true,
            ),
            (r#"{"choices":[{"index":0,"delta":{}}],"usage":null}"#, None, false),
            (
                r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":1}}}"#,
                Some(usage(1, 1, 1, 0)),
                false,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":500,"completion_tokens_details":{"reasoning_tokens":448},"prompt_tokens_details":{"cached_tokens":null}}}"#,
                Some(usage(30, 500, 0, 448)),
                true,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":64,"completion_tokens":8,"prompt_cache_hit_tokens":32,"prompt_cache_miss_tokens":32}}"#,
                Some(usage(64, 8, 32, 0)),
                true,
            ),
            (
                r#"{"choices":[{"delta":{}}],"x_groq":{"id":"r","usage":{"prompt_tokens":4,"completion_tokens":5}}}"#,
                Some(usage(4, 5, 0, 0)),
                false,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":0,"prompt_tokens_details":null}}"#,
                Some(usage(3, 0, 0, 0)),
                true,
            ),
            // Cache writes, in the OpenAI SDK's newer field and in LiteLLM's: the same-dialect relays price them as
            // writes, not as plain input.
            (
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2,"cache_write_tokens":5}}}"#,
                Some(Usage { cache_write_tokens: 5, ..usage(9, 1, 2, 0) }),
                true,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"cache_creation_input_tokens":3}}"#,
                Some(Usage { cache_write_tokens: 3, ..usage(9, 1, 0, 0) }),
                true,
            ),
        ];
        for (json, want, usage_only) in cases {
            let mut p = Peek::parse(json.as_bytes()).unwrap_or_default();
            assert_eq!(p.is_usage_only(), *usage_only, "{json}");
            assert_eq!(p.take_usage(), *want, "{json}");
        }
    }

    #[test]
    fn recognises_errors_in_success_bodies() {
        let cases = [
            (r#"{"error":{"message":"overloaded","type":"server_error"}}"#, true),
            (r#"{"error":"boom","choices":[]}"#, true),
            (r#"{"choices":[{"message":{"content":"hi"}}],"error":null}"#, false),
            (r#"{"choices":[{"message":{"content":"hi"}}]}"#, false),
        ];
        for (json, want) in cases {
            assert_eq!(Peek::parse(json.as_bytes()).unwrap_or_default().is_error(), want, "{json}");
        }
    }

    #[test]
    fn reads_the_answering_model_and_finish_reasons_escaped_or_not() {
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            (
                r#"{"model":"gpt-4o-2024-08-06","choices":[{"finish_reason":"stop"}]}"#,
                Some("gpt-4o-2024-08-06"),
                &["stop"],
            ),
            (
                r#"{"model":"a\/b","choices":[{"finish_reason":null},{"finish_reason":"length"}]}"#,
                Some("a/b"),
                &["length"],
            ),
            (r#"{"choices":[{"delta":{"content":"x"}}]}"#, None, &[]),
        ];
        for (json, model, reasons) in cases {
            let p = Peek::parse(json.as_bytes()).unwrap_or_default();
            assert_eq!(p.model(), *model, "{json}");
            assert_eq!(p.finish_reasons().collect::<Vec<_>>(), *reasons, "{json}");
        }
    }
}
