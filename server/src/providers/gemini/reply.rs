//! A `GenerateContentResponse` (whole, or one stream event) read into canonical terms: parts, finish reason,
//! usage. Shared by the whole-reply decoder here and the stream decoder (`stream.rs`).
//!
//! Gemini gives function calls no ids (newer models sometimes do), so ids are made up per reply:
//! `call_<responseId>_<n>`, stable for the same reply and distinct across the replies of one conversation. A
//! call's `thoughtSignature`, which Gemini 3 requires back on the same part in the next request, rides in the id
//! after [`THOUGHT_SEPARATOR`], as LiteLLM does (BerriAI/litellm#18374), because OpenAI callers echo only the id.

use serde::Deserialize;
use serde_json::Value;

use crate::llm::{
    chat::{DecodeError, Finish, Part, Reply, ToolCall},
    Usage,
};

/// Between a tool call's id and the thought signature it carries (LiteLLM's separator, so ids minted by
/// either gateway round-trip through the other).
pub(super) const THOUGHT_SEPARATOR: &str = "__thought__";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Response {
    pub candidates: Option<Vec<Candidate>>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub model_version: Option<String>,
    pub response_id: Option<String>,
    /// A failure reported inside a 200 (stream events do this).
    pub error: Option<super::error::GoogleError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    pub content: Option<Content>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Content {
    pub parts: Option<Vec<RespPart>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RespPart {
    pub text: Option<String>,
    #[serde(default)]
    pub thought: bool,
    pub thought_signature: Option<String>,
    pub function_call: Option<FunctionCall>,
}

#[derive(Debug, Deserialize)]
pub(super) struct FunctionCall {
    pub name: String,
    pub args: Option<Value>,
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PromptFeedback {
    #[serde(rename = "blockReason")]
    pub block_reason: Option<String>,
}

/// Gemini's counts: `promptTokenCount` includes `cachedContentTokenCount`; `candidatesTokenCount` excludes
/// `thoughtsTokenCount`, which is billed as output too.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct UsageMetadata {
    pub prompt_token_count: u64,
    pub candidates_token_count: u64,
    pub thoughts_token_count: u64,
    pub cached_content_token_count: u64,
    pub tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// Canonical (inclusive) usage: tool-use prompt tokens are input, thoughts are output and reasoning.
    pub fn canonical(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_token_count.saturating_add(self.tool_use_prompt_token_count),
            completion_tokens: self.candidates_token_count.saturating_add(self.thoughts_token_count),
            cache_read_tokens: self.cached_content_token_count,
            cache_write_tokens: 0,
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

impl Response {
    /// The prompt itself was refused (`promptFeedback.blockReason`, no candidates).
    pub fn blocked(&self) -> bool {
        self.prompt_feedback.as_ref().is_some_and(|f| f.block_reason.is_some())
    }

    pub fn first_candidate(&self) -> Option<&Candidate> {
        self.candidates.as_ref().and_then(|c| c.first())
    }
}

impl Candidate {
    pub fn parts(&self) -> &[RespPart] {
        self.content.as_ref().and_then(|c| c.parts.as_deref()).unwrap_or_default()
    }
}

/// Makes the ids of one reply's tool calls.
#[derive(Debug, Default)]
pub(super) struct CallIds {
    prefix: String,
    next: u32,
}

impl CallIds {
    /// Ids for the reply `response_id` (only its letters and digits are used, so the id stays a plain token and
    /// never contains the separator).
    pub fn new(response_id: Option<&str>) -> Self {
        let rid: String =
            response_id.unwrap_or_default().chars().filter(char::is_ascii_alphanumeric).take(32).collect();
        let prefix = if rid.is_empty() { "call_".to_owned() } else { format!("call_{rid}_") };
        Self { prefix, next: 0 }
    }

    /// The id of the next call: Gemini's own when it sent one, then the thought signature if any.
    pub fn id(&mut self, call: &FunctionCall, signature: Option<&str>) -> String {
        let mut id = match call.id.as_deref().filter(|id| !id.is_empty() && !id.contains(THOUGHT_SEPARATOR)) {
            Some(own) => own.to_owned(),
            None => format!("{}{}", self.prefix, self.next),
        };
        self.next += 1;
        if let Some(sig) = signature.filter(|s| !s.is_empty()) {
            id.push_str(THOUGHT_SEPARATOR);
            id.push_str(sig);
        }
        id
    }
}

/// A call's arguments as JSON text; absent or null arguments are the empty object (never dropped).
pub(super) fn arguments(args: Option<&Value>) -> String {
    match args {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(v) => v.to_string(),
    }
}

/// `finishReason` in OpenAI's terms (providers.md 9.1). `STOP` with function calls is `tool_calls`, because
/// Gemini says `STOP` for those too; reasons that do not fit elsewhere are `stop`, as LiteLLM maps them.
pub(super) fn finish(reason: &str, has_tool_calls: bool) -> Finish {
    match reason {
        "STOP" if has_tool_calls => Finish::ToolCalls,
        "MAX_TOKENS" | "CONTINUATION" => Finish::Length,
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "OTHER"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "IMAGE_OTHER"
        | "NO_IMAGE"
        | "ESCALATION"
        | "PUP_LIMITED_DISABLED"
        | "MODEL_ARMOR"
        | "JAILBREAK" => Finish::ContentFilter,
        // STOP, FINISH_REASON_UNSPECIFIED, MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS,
        // MALFORMED_RESPONSE, MISSING_THOUGHT_SIGNATURE and values newer than this table.
        _ => Finish::Stop,
    }
}

/// Parses a body or event, refusing anything that is not a JSON object.
pub(super) fn parse(bytes: &[u8]) -> Result<Response, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::new(format!("not a Gemini GenerateContentResponse: {e}")))
}

/// A whole `generateContent` response.
pub(super) fn decode(body: &[u8], model: &str) -> Result<Reply, DecodeError> {
    let resp = parse(body)?;
    if let Some(e) = &resp.error {
        return Err(DecodeError::new(format!(
            "Gemini returned an error in a success response: {} {}",
            e.status.as_deref().unwrap_or("UNKNOWN"),
            e.message.as_deref().unwrap_or("")
        )));
    }
    let mut ids = CallIds::new(resp.response_id.as_deref());
    let mut parts = Vec::new();
    let finish = match resp.first_candidate() {
        Some(c) => {
            for p in c.parts() {
                push_part(&mut parts, p, &mut ids);
            }
            let calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
            c.finish_reason.as_deref().map(|r| finish(r, calls))
        }
        None if resp.blocked() => Some(Finish::ContentFilter),
        None => return Err(DecodeError::new("Gemini response has neither candidates nor promptFeedback.blockReason")),
    };
    Ok(Reply {
        id: resp.response_id.unwrap_or_default(),
        model: resp.model_version.unwrap_or_else(|| model.to_owned()),
        parts,
        finish,
        usage: resp.usage_metadata.as_ref().map(UsageMetadata::canonical),
    })
}

/// One response part in canonical form, joining text to the text before it.
fn push_part(parts: &mut Vec<Part>, p: &RespPart, ids: &mut CallIds) {
    let sig = p.thought_signature.as_deref().filter(|s| !s.is_empty());
    if let Some(call) = &p.function_call {
        let id = ids.id(call, sig);
        parts.push(Part::ToolCall(ToolCall { id, name: call.name.clone(), arguments: arguments(call.args.as_ref()) }));
        return;
    }
    let text = p.text.as_deref().unwrap_or_default();
    if p.thought {
        match parts.last_mut() {
            Some(Part::Reasoning { text: before, signature: signature @ None }) => {
                before.push_str(text);
                *signature = sig.map(str::to_owned);
            }
            _ => parts.push(Part::Reasoning { text: text.to_owned(), signature: sig.map(str::to_owned) }),
        }
        return;
    }
    // A signature on an answer part closes the reasoning that came before it.
    if let Some(s) = sig {
        match parts.last_mut() {
            Some(Part::Reasoning { signature: signature @ None, .. }) => *signature = Some(s.to_owned()),
            _ => parts.push(Part::Reasoning { text: String::new(), signature: Some(s.to_owned()) }),
        }
    }
    if text.is_empty() {
        return;
    }
    match parts.last_mut() {
        Some(Part::Text(before)) => before.push_str(text),
        _ => parts.push(Part::Text(text.to_owned())),
    }
}
