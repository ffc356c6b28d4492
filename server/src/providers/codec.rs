//! The contract between the pipeline and a provider dialect that is not spoken as raw bytes.
//!
//! A request crosses dialects as the canonical [`Chat`]; the provider turns it into an [`UpstreamRequest`]
//! (URL, headers, final body, signed if the provider signs), and reads the answer back into a canonical
//! [`Reply`] or, for streams, [`Event`]s through a [`StreamDecoder`] fed by the framing the dialect names. The
//! caller's own dialect renders those with a [`StreamEncoder`]. Providers never send anything: the pipeline's one
//! execute step sends every provider's request.

use std::fmt::Debug;

use actix_web::http::{
    header::{HeaderMap, HeaderName, HeaderValue},
    Uri,
};
use bytes::BytesMut;

use crate::{
    framing::{Frame, Framer, Framing},
    llm::{
        chat::{Chat, DecodeError, Event, Reply, Unsupported},
        embed::{EmbedInput, Embeddings},
        CompletionRequest, MessagesRequest, UpstreamError,
    },
};

/// One HTTP request to an upstream, ready to send: `POST url` with these headers and this body. Any signature
/// (SigV4) is already computed over exactly these bytes.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub url: Uri,
    /// Besides `content-type: application/json`, which every request carries. Secret values are marked
    /// sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// One OAuth token request, ready to send: `POST url` with `content-type: application/x-www-form-urlencoded`.
#[derive(Debug)]
pub struct TokenRequest {
    pub url: Uri,
    /// The form body; it holds a credential (a signed assertion or a refresh token), so it is never logged.
    pub body: Vec<u8>,
}

impl TokenRequest {
    pub const CONTENT_TYPE: &'static str = "application/x-www-form-urlencoded";
}

/// What a chat call needs to know about a request besides the canonical chat.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions<'a> {
    /// The deployment's model name at the provider.
    pub upstream_model: &'a str,
    pub stream: bool,
    /// Parameters the provider cannot take are dropped instead of refused (`drop_params`).
    pub drop_params: bool,
}

/// A provider spoken through the canonical types.
pub trait Dialect: Debug + Send + Sync {
    /// The provider's name, as in the config prefix (`anthropic`, `gemini`, ...).
    fn provider(&self) -> &str;

    fn chat_request(&self, chat: &Chat, options: CallOptions<'_>) -> Result<UpstreamRequest, Unsupported>;

    /// How streamed responses are framed.
    fn framing(&self) -> Framing;

    /// A decoder for one streamed response.
    fn stream_decoder(&self) -> Box<dyn StreamDecoder>;

    /// A whole (non-streamed) response body.
    fn decode_reply(&self, body: &[u8]) -> Result<Reply, DecodeError>;

    /// An error response: status, headers and body (possibly empty or cut) as the caller's error. Never
    /// includes the deployment's secrets in the message.
    fn parse_error(&self, deployment: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError;

    /// The caller's Anthropic body as this provider takes it (only the model replaced), for providers that
    /// speak Anthropic's Messages API natively; `None` for the others. `beta` is the caller's `anthropic-beta`.
    fn splice_messages(
        &self,
        req: &MessagesRequest<'_>,
        upstream_model: &str,
        beta: Option<&HeaderValue>,
    ) -> Option<UpstreamRequest> {
        let _ = (req, upstream_model, beta);
        None
    }

    /// The caller's OpenAI text-completions body as this provider takes it (model replaced, usage asked for on
    /// streams), for providers whose API is OpenAI's `/completions` (`text-completion-openai/`); `None` for the
    /// others, which get the prompt as a chat.
    fn splice_completions(&self, req: &CompletionRequest<'_>, upstream_model: &str) -> Option<UpstreamRequest> {
        let _ = (req, upstream_model);
        None
    }

    /// The caller's Anthropic `count_tokens` body as this provider's token-counting endpoint takes it, for
    /// providers that have one; `None` for the others (the caller is told counting is not supported).
    /// `beta` is the caller's `anthropic-beta`, which the body (tools, thinking) may depend on.
    fn count_tokens_request(
        &self,
        req: &MessagesRequest<'_>,
        upstream_model: &str,
        beta: Option<&HeaderValue>,
    ) -> Option<UpstreamRequest> {
        let _ = (req, upstream_model, beta);
        None
    }

    /// Where requests go, for `check-config` and warnings (no secrets).
    fn endpoint(&self) -> String;

    /// Whether requests carry a credential, for the plain-HTTP warning at start-up.
    fn sends_key(&self) -> bool;

    /// Why the provider cannot take requests yet (an access token not fetched yet), if so. Requests get a 503.
    fn not_ready(&self) -> Option<String> {
        None
    }

    /// For providers whose credential is an access token fetched and refreshed by the deployment's worker (Vertex
    /// AI's service-account flow): the token request to send now, at `now_unix`. `None`: nothing to fetch.
    fn token_request(&self, now_unix: u64) -> Option<Result<TokenRequest, String>> {
        let _ = now_unix;
        None
    }

    /// Installs the token endpoint's answer, published to the request path without locks; returns how soon to
    /// refresh. A refusal keeps the previous token.
    fn install_token(&self, body: &[u8], now_unix: u64) -> Result<std::time::Duration, String> {
        let _ = (body, now_unix);
        Err("this provider fetches no access token".into())
    }

    /// An embeddings request; providers without an embeddings API keep this default, an honest refusal.
    fn embeddings_request(&self, input: &EmbedInput, upstream_model: &str) -> Result<UpstreamRequest, Unsupported> {
        let _ = (input, upstream_model);
        Err(Unsupported { param: "embeddings".into(), provider: "this provider" })
    }

    /// An embeddings response body.
    fn decode_embeddings(&self, body: &[u8]) -> Result<Embeddings, DecodeError> {
        let _ = body;
        Err(DecodeError::new("this provider has no embeddings API"))
    }
}

/// Turns the frames of one upstream stream into canonical events. Stateful: it carries what the dialect states
/// once (ids, tool-call numbering, usage reported at the start) across frames.
pub trait StreamDecoder {
    fn frame(&mut self, frame: &Frame, out: &mut Vec<Event>) -> Result<(), DecodeError>;

    /// The upstream's bytes ended. `Ok` if the stream ended where the dialect says a stream ends (emitting any
    /// usage held back until now); `Err` naming what is missing if it was cut short.
    fn end(&mut self, out: &mut Vec<Event>) -> Result<(), DecodeError>;
}

/// Renders canonical events in the caller's dialect.
pub trait StreamEncoder {
    fn event(&mut self, event: &Event, out: &mut BytesMut);

    /// The stream ended cleanly.
    fn end(&mut self, out: &mut BytesMut);

    /// The stream broke: render an error in the caller's dialect as the stream's last event.
    fn fail(&mut self, code: &str, message: &str, out: &mut BytesMut);
}

/// The canonical events of one upstream stream: its framing's framer feeding the dialect's decoder. The relays
/// drive one per stream; tests and fuzzing decode whole inputs with [`StreamReader::decode`].
pub struct StreamReader {
    framer: Framer,
    decoder: Box<dyn StreamDecoder>,
    /// Events decoded and not yet taken.
    pub events: Vec<Event>,
}

impl StreamReader {
    pub fn new(framer: Framer, decoder: Box<dyn StreamDecoder>) -> Self {
        Self { framer, decoder, events: Vec::new() }
    }

    /// Feeds upstream bytes; the events they complete are added to `events`. `Err` when the bytes cannot be a
    /// stream of this dialect.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.framer.feed(chunk);
        loop {
            match self.framer.next_frame() {
                Ok(Some(frame)) => self.decoder.frame(&frame, &mut self.events).map_err(|e| e.0)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.0),
            }
        }
    }

    /// The upstream's bytes ended: the last unterminated frame, then the decoder's verdict (`Err` naming what a
    /// cut stream lacks).
    pub fn end(&mut self) -> Result<(), String> {
        match self.framer.finish() {
            Ok(Some(frame)) => self.decoder.frame(&frame, &mut self.events).map_err(|e| e.0)?,
            Ok(None) => {}
            Err(e) => return Err(e.0),
        }
        self.decoder.end(&mut self.events).map_err(|e| e.0)
    }

    /// Bytes held for a frame not yet whole.
    pub fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    /// Decodes a whole stream delivered in `chunks`: its events, and how it ended.
    #[cfg(test)]
    pub fn decode<'a>(
        framing: Framing,
        decoder: Box<dyn StreamDecoder>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> (Vec<Event>, Result<(), String>) {
        let mut reader = Self::new(Framer::new(framing), decoder);
        for chunk in chunks {
            if let Err(e) = reader.feed(chunk) {
                return (reader.events, Err(e));
            }
        }
        let end = reader.end();
        (reader.events, end)
    }
}
