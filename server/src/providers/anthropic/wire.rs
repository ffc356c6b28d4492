//! Anthropic's JSON shapes, shared by both directions. Written shapes are borrowing structs serialised in
//! Anthropic's own field order; read shapes are wide structs (every block field optional, `type` decides), so a
//! block type tollgate does not know is skipped instead of failing the whole body, and raw JSON (`tool_use.input`)
//! is borrowed from the body rather than rebuilt (serde_json without `preserve_order` would sort its keys).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::llm::{chat::Finish, Usage};

/// A content block as written (requests to Anthropic, replies and events to Anthropic callers).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockOut<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: SourceOut<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a RawValue,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
}

impl BlockOut<'_> {
    pub(super) fn is_tool_result(&self) -> bool {
        matches!(self, Self::ToolResult { .. })
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum SourceOut<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// `tool_result.content`: a string when it is only text, else blocks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum ToolResultContent<'a> {
    Text(String),
    Blocks(Vec<BlockOut<'a>>),
}

/// `{}`: the input of a tool call without arguments.
pub(super) fn empty_object() -> &'static RawValue {
    // A constant that is valid JSON: the fallback is never taken.
    serde_json::from_str("{}").unwrap_or(RawValue::NULL)
}

/// Tool-call arguments (JSON text) as Anthropic's `input` object: `{}` for empty arguments, `None` when they are
/// not a JSON object.
pub(super) fn input_object(arguments: &str) -> Option<&RawValue> {
    let trimmed = arguments.trim();
    if trimmed.is_empty() {
        return Some(empty_object());
    }
    if !trimmed.starts_with('{') {
        return None;
    }
    serde_json::from_str::<&RawValue>(trimmed).ok()
}

/// A content block as read (callers' requests, Anthropic's replies). Unknown fields (`cache_control`,
/// `citations`) are ignored. Read through [`BlockIn::list`], so blocks of other types, whose fields of the same
/// names may have other types (`search_result.source` is a string), are never parsed as these.
#[derive(Debug, Default, Deserialize)]
pub(super) struct BlockIn<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub source: Option<SourceIn>,
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(borrow)]
    pub input: Option<&'a RawValue>,
    pub tool_use_id: Option<String>,
    #[serde(borrow)]
    pub content: Option<&'a RawValue>,
    pub is_error: Option<bool>,
    pub thinking: Option<String>,
    pub signature: Option<String>,
}

/// The block types [`BlockIn`] reads; others keep only their `type`.
const KNOWN_BLOCKS: [&str; 6] = ["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"];

#[derive(Deserialize)]
struct KindIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

impl<'a> BlockIn<'a> {
    /// An array of content blocks.
    pub(super) fn list(raw: &'a RawValue) -> Result<Vec<BlockIn<'a>>, serde_json::Error> {
        let items: Vec<&'a RawValue> = serde_json::from_str(raw.get())?;
        items
            .into_iter()
            .map(|item| {
                let KindIn { kind } = serde_json::from_str(item.get())?;
                if KNOWN_BLOCKS.contains(&kind.as_ref()) {
                    serde_json::from_str(item.get())
                } else {
                    Ok(BlockIn { kind: kind.into_owned(), ..BlockIn::default() })
                }
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SourceIn {
    #[serde(rename = "type")]
    pub kind: String,
    pub media_type: Option<String>,
    pub data: Option<String>,
    pub url: Option<String>,
}

/// `usage` as Anthropic reports it: input excludes both kinds of cache tokens; any field may be absent or null.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct UsageIn {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub output_tokens_details: Option<OutputTokensDetails>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct OutputTokensDetails {
    pub thinking_tokens: Option<u64>,
}

impl UsageIn {
    /// Fields `later` reports replace ours (stream usage: `message_delta` over `message_start`).
    pub(super) fn merge(&mut self, later: &UsageIn) {
        let pick = |ours: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *ours = theirs;
            }
        };
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(&mut self.cache_creation_input_tokens, later.cache_creation_input_tokens);
        pick(&mut self.cache_read_input_tokens, later.cache_read_input_tokens);
        if let Some(details) = later.output_tokens_details {
            if details.thinking_tokens.is_some() {
                self.output_tokens_details = Some(details);
            }
        }
    }

    pub(super) fn canonical(&self) -> Usage {
        let mut usage = Usage::from_additive(
            self.input_tokens.unwrap_or(0),
            self.cache_read_input_tokens.unwrap_or(0),
            self.cache_creation_input_tokens.unwrap_or(0),
            self.output_tokens.unwrap_or(0),
        );
        usage.reasoning_tokens = self.output_tokens_details.and_then(|d| d.thinking_tokens).unwrap_or(0);
        usage
    }
}

/// `usage` as written to Anthropic callers, from canonical (inclusive) usage.
#[derive(Debug, Serialize)]
pub(super) struct UsageOut {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

impl UsageOut {
    pub(super) fn of(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.uncached_prompt_tokens(),
            cache_creation_input_tokens: usage.cache_write_tokens,
            cache_read_input_tokens: usage.cache_read_tokens,
            output_tokens: usage.completion_tokens,
        }
    }
}

/// `stop_reason` (and `stop_sequence`) → canonical finish, per providers.md 2.6. Unknown reasons, like
/// `pause_turn`, are a plain stop (LiteLLM's default).
pub(super) fn finish_of(stop_reason: &str, stop_sequence: Option<&str>) -> Finish {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => Finish::Length,
        "tool_use" => Finish::ToolCalls,
        "refusal" => Finish::ContentFilter,
        "stop_sequence" => match stop_sequence {
            Some(s) => Finish::StopSequence(s.to_owned()),
            None => Finish::Stop,
        },
        _ => Finish::Stop,
    }
}

/// Canonical finish → (`stop_reason`, `stop_sequence`). A plain stop after tool calls is `tool_use`: some
/// OpenAI-compatible servers say `stop` there, and Anthropic clients decide whether to run tools by it.
pub(super) fn stop_reason_of(finish: Option<&Finish>, called_tools: bool) -> (&'static str, Option<&str>) {
    match finish {
        Some(Finish::StopSequence(s)) => ("stop_sequence", Some(s)),
        Some(Finish::Length) => ("max_tokens", None),
        Some(Finish::ToolCalls) => ("tool_use", None),
        Some(Finish::ContentFilter) => ("refusal", None),
        Some(Finish::Stop) | None if called_tools => ("tool_use", None),
        Some(Finish::Stop) | None => ("end_turn", None),
    }
}

/// The message id Anthropic callers see: the upstream's if it is already a `msg_` id, else prefixed.
pub(super) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// Removes insignificant whitespace from valid JSON text, keeping key order (unlike a `Value` round trip).
pub(super) fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_keeps_strings_and_key_order() {
        let cases = [
            ("{ \"b\" : 1 ,\n \"a\": [ 1, 2 ] }", r#"{"b":1,"a":[1,2]}"#),
            (r#"{"s": "a b \" c\\", "t": "\n"}"#, r#"{"s":"a b \" c\\","t":"\n"}"#),
            ("{}", "{}"),
        ];
        for (raw, want) in cases {
            assert_eq!(compact_json(raw), want);
        }
    }

    #[test]
    fn tool_arguments_become_input_objects() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", Some("{}")),
            ("  ", Some("{}")),
            (r#"{"city":"Paris"}"#, Some(r#"{"city":"Paris"}"#)),
            (" {\"a\": 1} ", Some("{\"a\": 1}")),
            ("[1]", None),
            ("\"x\"", None),
            ("{\"a\":", None),
        ];
        for (args, want) in cases {
            assert_eq!(input_object(args).map(RawValue::get), *want, "{args:?}");
        }
    }

    #[test]
    fn finish_reasons_both_ways() {
        let cases: &[(&str, Option<&str>, Finish)] = &[
            ("end_turn", None, Finish::Stop),
            ("stop_sequence", Some("###"), Finish::StopSequence("###".into())),
            ("stop_sequence", None, Finish::Stop),
            ("max_tokens", None, Finish::Length),
            ("model_context_window_exceeded", None, Finish::Length),
            ("tool_use", None, Finish::ToolCalls),
            ("refusal", None, Finish::ContentFilter),
            ("pause_turn", None, Finish::Stop),
            ("something_new", None, Finish::Stop),
        ];
        for (reason, seq, want) in cases {
            assert_eq!(&finish_of(reason, *seq), want, "{reason}");
        }
        let back: &[(Option<Finish>, bool, (&str, Option<&str>))] = &[
            (Some(Finish::Stop), false, ("end_turn", None)),
            (Some(Finish::Stop), true, ("tool_use", None)),
            (None, false, ("end_turn", None)),
            (Some(Finish::StopSequence("END".into())), false, ("stop_sequence", Some("END"))),
            (Some(Finish::Length), true, ("max_tokens", None)),
            (Some(Finish::ToolCalls), true, ("tool_use", None)),
            (Some(Finish::ContentFilter), false, ("refusal", None)),
        ];
        for (finish, tools, want) in back {
            assert_eq!(stop_reason_of(finish.as_ref(), *tools), *want, "{finish:?}");
        }
    }

    #[test]
    fn usage_merges_later_fields_and_converts_to_inclusive() {
        let mut start: UsageIn = serde_json::from_str(
            r#"{"input_tokens":21,"output_tokens":1,"cache_creation_input_tokens":3,"cache_read_input_tokens":5}"#,
        )
        .unwrap_or_default();
        let delta: UsageIn = serde_json::from_str(
            r#"{"output_tokens":9,"input_tokens":null,"output_tokens_details":{"thinking_tokens":4}}"#,
        )
        .unwrap_or_default();
        start.merge(&delta);
        let u = start.canonical();
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.cache_read_tokens, u.cache_write_tokens), (29, 9, 5, 3));
        assert_eq!(u.reasoning_tokens, 4);
        let out = UsageOut::of(&u);
        assert_eq!(
            (out.input_tokens, out.cache_creation_input_tokens, out.cache_read_input_tokens, out.output_tokens),
            (21, 3, 5, 9)
        );
    }
}
