//! The canonical chat exchange: what every dialect's request, reply and stream is translated to and from.
//!
//! Only requests that cross dialects pass through these types: an OpenAI request to an OpenAI-compatible server,
//! or an Anthropic request to Anthropic, is spliced as raw bytes instead (`llm/request.rs`). Tool calls are keyed
//! by their id and numbered in order of appearance; each encoder gives out its own dialect's indexes.

use serde_json::Value;

use super::Usage;

/// A chat request, whichever dialect it arrived in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chat {
    /// System and developer instructions, in order.
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// The end user (`user`, Anthropic's `metadata.user_id`).
    pub user: Option<String>,
    pub response_format: Option<ResponseFormat>,
    pub stream: bool,
    /// Fields the caller set that have no canonical meaning, by name: an encoder refuses the request naming the
    /// first one unless the deployment allows dropping parameters (`drop_params`).
    pub unmapped: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// Results of tool calls; every part is a [`Part::ToolResult`].
    Tool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    /// Reasoning text of an earlier assistant turn, with the signature some providers need to see it again.
    Reasoning {
        text: String,
        signature: Option<String>,
    },
    ToolCall(ToolCall),
    ToolResult(ToolResult),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Base64 { media_type: String, data: String },
    Url(String),
}

impl Image {
    /// From an OpenAI `image_url.url`: a `data:` URI or a link.
    pub fn from_url(url: &str) -> Self {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((media_type, data)) = rest.split_once(";base64,") {
                return Self::Base64 { media_type: media_type.to_owned(), data: data.to_owned() };
            }
        }
        Self::Url(url.to_owned())
    }

    /// As an OpenAI `image_url.url`.
    pub fn to_url(&self) -> String {
        match self {
            Self::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
            Self::Url(url) => url.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text (OpenAI's form); dialects that want an object parse it.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    /// Text and image parts only.
    pub content: Vec<Part>,
    pub is_error: bool,
}

impl ToolResult {
    /// The text parts joined, for dialects whose tool results are plain strings.
    pub fn text(&self) -> String {
        text_of(&self.content)
    }
}

/// The text parts of `parts`, joined without separators.
pub fn text_of(parts: &[Part]) -> String {
    let mut out = String::new();
    for p in parts {
        if let Part::Text(t) = p {
            out.push_str(t);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments (an object).
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called.
    Required,
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { name: String, schema: Value },
}

/// Why generation stopped, in OpenAI's vocabulary (the target of every dialect's mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Stop,
    /// Stopped at a caller's stop sequence, when the dialect says which.
    StopSequence(String),
    Length,
    ToolCalls,
    ContentFilter,
}

impl Finish {
    pub fn openai(&self) -> &'static str {
        match self {
            Self::Stop | Self::StopSequence(_) => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
        }
    }
}

/// A whole (non-streamed) reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub id: String,
    pub model: String,
    /// Text, reasoning and tool calls, in the order the model produced them.
    pub parts: Vec<Part>,
    pub finish: Option<Finish>,
    pub usage: Option<Usage>,
}

impl Reply {
    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.parts.iter().filter_map(|p| match p {
            Part::ToolCall(c) => Some(c),
            _ => None,
        })
    }
}

/// One step of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// First event of every stream.
    Start {
        id: String,
        model: String,
    },
    Text(String),
    Reasoning(String),
    ReasoningSignature(String),
    /// A tool call begins; `index` counts tool calls of this reply from 0.
    ToolStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A fragment of the arguments (JSON text) of the tool call `index`.
    ToolArgs {
        index: u32,
        fragment: String,
    },
    Finish(Finish),
    /// The call's usage so far; a later `Usage` replaces an earlier one.
    Usage(Usage),
    /// The upstream reported a failure inside the stream.
    Error(StreamError),
}

/// A failure reported in the stream, in the upstream's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// The upstream's error type (`overloaded_error`, `server_error`, ...).
    pub kind: String,
    pub message: String,
}

/// A body or frame the dialect decoder could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A parameter the target dialect cannot express, refused unless `drop_params` allows dropping it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{param}` is not supported by provider `{provider}`; remove it, or set `drop_params: true` to drop it")]
pub struct Unsupported {
    pub param: String,
    pub provider: &'static str,
}

/// Collects the parameters an encoder cannot express: refuses the first, or drops them all when allowed.
pub struct ParamCheck {
    pub provider: &'static str,
    pub drop_params: bool,
    first: Option<String>,
}

impl ParamCheck {
    pub fn new(provider: &'static str, drop_params: bool, chat: &Chat) -> Self {
        Self { provider, drop_params, first: chat.unmapped.first().cloned() }
    }

    /// `param` is set and the dialect has no place for it.
    pub fn unsupported(&mut self, param: &str) {
        if self.first.is_none() {
            self.first = Some(param.to_owned());
        }
    }

    pub fn finish(self) -> Result<(), Unsupported> {
        match (self.first, self.drop_params) {
            (Some(param), false) => Err(Unsupported { param, provider: self.provider }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_round_trip_through_openai_urls() {
        let cases = [
            ("data:image/png;base64,iVBOR", Image::Base64 { media_type: "image/png".into(), data: "iVBOR".into() }),
            ("https://example.com/a.jpg", Image::Url("https://example.com/a.jpg".into())),
            ("data:text/plain,hello", Image::Url("data:text/plain,hello".into())),
        ];
        for (url, image) in cases {
            assert_eq!(Image::from_url(url), image, "{url}");
            assert_eq!(image.to_url(), url);
        }
    }

    #[test]
    fn param_check_refuses_the_first_unsupported_parameter_unless_dropping() {
        let chat = Chat { unmapped: vec!["logit_bias".into()], ..Chat::default() };
        let mut check = ParamCheck::new("anthropic", false, &chat);
        check.unsupported("seed");
        assert_eq!(check.finish().map_err(|e| e.param), Err("logit_bias".into()));
        let mut check = ParamCheck::new("anthropic", true, &chat);
        check.unsupported("seed");
        assert_eq!(check.finish(), Ok(()));
        assert_eq!(ParamCheck::new("x", false, &Chat::default()).finish(), Ok(()));
    }
}
