//! OpenAI response bodies as typed structs, so every field serialises in OpenAI's own order (a `json!` map
//! would sort keys) and the hot non-streaming path serialises straight to bytes with no intermediate `Value`.

use serde::Serialize;

/// `created` of every response: fixed so tests can compare bodies byte for byte.
pub(crate) const CREATED: u64 = 1_700_000_000;
pub(crate) const FINGERPRINT: &str = "fp_fake";

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    /// Deterministic usage: 10 prompt tokens per message, 5 completion tokens.
    pub(crate) fn for_messages(messages: u64) -> Usage {
        Usage { prompt_tokens: messages * 10, completion_tokens: 5, total_tokens: messages * 10 + 5 }
    }

    /// The same prompt tokens with `completion` completion tokens.
    pub(crate) fn with_completion_tokens(self, completion: u64) -> Usage {
        Usage { completion_tokens: completion, total_tokens: self.prompt_tokens + completion, ..self }
    }
}

/// A non-streaming `chat.completion`.
#[derive(Serialize)]
pub(crate) struct Completion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    pub choices: [Choice<'a>; 1],
    pub usage: Usage,
}

#[derive(Serialize)]
pub(crate) struct Choice<'a> {
    pub index: u32,
    pub message: Message<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: &'a str,
}

#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub role: &'static str,
    pub content: Option<&'a str>,
    pub refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCall<'a>; 1]>,
}

impl<'a> Completion<'a> {
    pub(crate) fn new(id: &'a str, model: &'a str, message: Message<'a>, finish_reason: &'a str, usage: Usage) -> Self {
        Completion {
            id,
            object: "chat.completion",
            created: CREATED,
            model,
            system_fingerprint: FINGERPRINT,
            choices: [Choice { index: 0, message, logprobs: None, finish_reason }],
            usage,
        }
    }
}

/// A tool call, whole (in a message) or as a stream fragment (with `index`, and later fragments carrying only
/// `index` and `function.arguments`).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    pub function: Function<'a>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Function<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// One `chat.completion.chunk`. `usage` is left out unless the client asked for usage, in which case it is `null`
/// on every chunk except the last one (whose `choices` is empty).
#[derive(Serialize)]
pub(crate) struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
pub(crate) struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'a str>,
}

/// A streamed message delta; absent fields are left out, `Some(None)` serialises as `null`.
#[derive(Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCall<'a>; 1]>,
}

/// A `text_completion` (OpenAI's legacy completions): a whole answer, or one stream chunk. `usage` is left out
/// of chunks unless the client asked for usage, in which case it is `null` on every chunk but the last one.
#[derive(Serialize)]
pub(crate) struct TextCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub system_fingerprint: &'static str,
    pub choices: Vec<TextChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
pub(crate) struct TextChoice<'a> {
    pub text: &'a str,
    pub index: usize,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'a str>,
}

/// `{"error":{"message","type","param","code"}}`.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct EmbeddingList<'a> {
    pub object: &'static str,
    pub model: &'a str,
    pub data: Vec<Embedding>,
    pub usage: EmbeddingUsage,
}

#[derive(Serialize)]
pub(crate) struct Embedding {
    pub object: &'static str,
    pub index: usize,
    pub embedding: [f64; 8],
}

#[derive(Serialize)]
pub(crate) struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// The body of `GET /v1/models`.
pub(crate) const MODELS: &str =
    r#"{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"fake"}]}"#;
