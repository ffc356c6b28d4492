//! `OpenAiCompatible` spoken through the canonical types: the path for callers who did not speak OpenAI (the
//! caller's own OpenAI bytes take the splice in `mod.rs` instead), and for embeddings asked for in canonical form.
//! The preset's quirks (renamed parameters, text-only content) apply to canonical requests as to spliced ones.

use actix_web::http::header::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{flatten_text_content, OpenAiCompatible};
use crate::{
    framing::Framing,
    llm::{
        chat::{Chat, DecodeError, ParamCheck, Reply, Unsupported},
        embed::{EmbedInput, Embeddings},
        request::{Edit, RawObject},
        UpstreamError,
    },
    providers::{
        catalog,
        codec::{CallOptions, Dialect, StreamDecoder, TokenRequest, UpstreamRequest},
    },
};

impl OpenAiCompatible {
    /// The preset's renames (`max_completion_tokens` → `max_tokens`, Mistral's `seed` → `random_seed`) and
    /// text-only content, applied to a body this module encoded.
    fn apply_preset(&self, body: Vec<u8>) -> Vec<u8> {
        if self.param_mappings.is_empty() && !self.content_list_to_string {
            return body;
        }
        let Ok(object) = RawObject::parse(&body) else {
            return body;
        };
        object.write(
            body.len(),
            |key| {
                if key == "messages" && self.content_list_to_string {
                    let flat = object.get(key).and_then(|m| flatten_text_content(m.get()));
                    if let Some(flat) = flat {
                        return Edit::Replace(flat);
                    }
                }
                match self.param_mappings.iter().find(|(from, _)| from == key) {
                    Some((_, to)) => Edit::Rename(to),
                    None => Edit::Keep,
                }
            },
            &[],
        )
    }

    /// The provider's name for `Unsupported` errors; `custom/` servers are "openai" (their preset's name).
    fn static_provider(&self) -> &'static str {
        catalog::static_name(&self.provider).unwrap_or("openai")
    }

    fn upstream_request(&self, url: &actix_web::http::Uri, body: Vec<u8>) -> UpstreamRequest {
        UpstreamRequest { url: url.clone(), headers: self.headers(), body }
    }
}

impl Dialect for OpenAiCompatible {
    fn provider(&self) -> &str {
        &self.provider
    }

    fn not_ready(&self) -> Option<String> {
        let waiting = self.entra_client.as_ref().is_some_and(|e| e.token.get().is_none());
        waiting.then(|| "waiting for a Microsoft Entra token (the deployment's worker fetches it)".into())
    }

    fn token_request(&self, _now_unix: u64) -> Option<Result<TokenRequest, String>> {
        let e = self.entra_client.as_ref()?;
        Some(Ok(TokenRequest { url: e.token_url.clone(), body: e.form.expose().as_bytes().to_vec() }))
    }

    fn install_token(&self, body: &[u8], now_unix: u64) -> Result<std::time::Duration, String> {
        match &self.entra_client {
            Some(e) => e.token.install(body, now_unix).map_err(|e| e.to_string()),
            None => Err("this deployment fetches no access token".into()),
        }
    }

    fn chat_request(&self, chat: &Chat, options: CallOptions<'_>) -> Result<UpstreamRequest, Unsupported> {
        let mut check = ParamCheck::new(self.static_provider(), options.drop_params, chat);
        let body = super::encode::encode_request(chat, options, self.stream_usage, &mut check);
        check.finish()?;
        Ok(self.upstream_request(&self.chat_url, self.apply_preset(body)))
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(super::stream::ChunkDecoder::default())
    }

    fn decode_reply(&self, body: &[u8]) -> Result<Reply, DecodeError> {
        super::reply::decode_reply(body)
    }

    fn parse_error(&self, deployment: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        // The inherent method (it takes precedence over this trait method of the same name).
        OpenAiCompatible::parse_error(self, deployment, status, headers, body)
    }

    fn endpoint(&self) -> String {
        self.chat_url.to_string().trim_end_matches("/chat/completions").to_owned()
    }

    fn sends_key(&self) -> bool {
        OpenAiCompatible::sends_key(self)
    }

    fn embeddings_request(&self, input: &EmbedInput, upstream_model: &str) -> Result<UpstreamRequest, Unsupported> {
        let mut body = json!({"model": upstream_model, "input": input.texts, "encoding_format": "float"});
        if let (Some(d), Some(o)) = (input.dimensions, body.as_object_mut()) {
            o.insert("dimensions".into(), d.into());
        }
        // Serialising a `Value` cannot fail.
        Ok(self.upstream_request(&self.embeddings_url, serde_json::to_vec(&body).unwrap_or_default()))
    }

    fn decode_embeddings(&self, body: &[u8]) -> Result<Embeddings, DecodeError> {
        decode_embeddings(body)
    }
}

#[derive(Deserialize)]
struct WireEmbeddings {
    data: Vec<WireEmbedding>,
    #[serde(default)]
    usage: Option<WireEmbedUsage>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    #[serde(default)]
    index: Option<usize>,
    embedding: Value,
}

#[derive(Deserialize)]
struct WireEmbedUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

/// OpenAI's embeddings list, in input order (`index`), whether the server sent floats as asked or base64 anyway.
fn decode_embeddings(body: &[u8]) -> Result<Embeddings, DecodeError> {
    let wire: WireEmbeddings = serde_json::from_slice(body.trim_ascii_start())
        .map_err(|e| DecodeError::new(format!("embeddings response is not valid: {e}")))?;
    let mut data: Vec<(usize, Vec<f32>)> = Vec::with_capacity(wire.data.len());
    for (position, item) in wire.data.into_iter().enumerate() {
        let vector = match item.embedding {
            Value::Array(numbers) => numbers
                .iter()
                .map(|n| n.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| DecodeError::new("embedding holds a value that is not a number"))?,
            Value::String(b64) => floats_of_base64(&b64)?,
            _ => return Err(DecodeError::new("embedding is neither a list of numbers nor base64")),
        };
        data.push((item.index.unwrap_or(position), vector));
    }
    data.sort_by_key(|(index, _)| *index);
    Ok(Embeddings {
        vectors: data.into_iter().map(|(_, v)| v).collect(),
        prompt_tokens: wire.usage.and_then(|u| u.prompt_tokens),
    })
}

/// OpenAI's base64 encoding: little-endian f32s.
fn floats_of_base64(b64: &str) -> Result<Vec<f32>, DecodeError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| DecodeError::new(format!("embedding is not valid base64: {e}")))?;
    if bytes.len() % 4 != 0 {
        return Err(DecodeError::new("base64 embedding is not a whole number of floats"));
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use base64::Engine;

    use super::*;
    use crate::{
        llm::chat::{Message, Part, Role},
        providers::{
            catalog::{AuthStyle, Preset, SpecialHandling},
            openai::Settings,
        },
        secret::Secret,
    };

    fn provider(name: &str, mappings: &[(&str, &str)], flatten: bool, stream_usage: bool) -> OpenAiCompatible {
        let preset = Preset {
            base_url: "https://api.example.com/v1".into(),
            api_key_env: None,
            api_base_env: None,
            api_base_env_also: Vec::new(),
            auth: AuthStyle::Bearer,
            param_mappings: mappings.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<HashMap<_, _>>(),
            special_handling: SpecialHandling { convert_content_list_to_string: flatten },
            stream_usage,
        };
        let extra = BTreeMap::new();
        let settings = Settings {
            provider: name,
            preset: &preset,
            api_base: None,
            api_key: Some(Secret::new("sk-test-key-123")),
            organization: None,
            extra_headers: &extra,
            azure: None,
        };
        OpenAiCompatible::new(settings, &|_: &str| None).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn chat() -> Chat {
        Chat {
            messages: vec![Message { role: Role::User, parts: vec![Part::Text("a".into()), Part::Text("b".into())] }],
            max_tokens: Some(8),
            seed: Some(1),
            ..Chat::default()
        }
    }

    fn body_of(req: &UpstreamRequest) -> Value {
        serde_json::from_slice(&req.body).unwrap_or_default()
    }

    #[test]
    fn chat_requests_follow_the_preset() {
        let options = CallOptions { upstream_model: "up", stream: true, drop_params: false };
        let plain = provider("openai", &[], false, true);
        let req = plain.chat_request(&chat(), options).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(req.url.to_string(), "https://api.example.com/v1/chat/completions");
        assert!(req.headers.iter().any(|(n, v)| n == "authorization" && v.is_sensitive()));
        assert_eq!(
            body_of(&req),
            json!({"model": "up", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "max_completion_tokens": 8,
                "seed": 1, "stream": true, "stream_options": {"include_usage": true}})
        );
        let mistral =
            provider("mistral", &[("max_completion_tokens", "max_tokens"), ("seed", "random_seed")], true, false);
        let req = mistral.chat_request(&chat(), options).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            body_of(&req),
            json!({"model": "up", "messages": [{"role": "user", "content": "a\nb"}], "max_tokens": 8,
                "random_seed": 1, "stream": true})
        );
        assert_eq!(mistral.endpoint(), "https://api.example.com/v1");
        assert!(Dialect::sends_key(&mistral));
        assert_eq!(Dialect::provider(&mistral), "mistral");
    }

    #[test]
    fn unsupported_parameters_are_refused_or_dropped() {
        let groq = provider("groq", &[], false, true);
        let chat = Chat { top_k: Some(3), ..chat() };
        let strict = CallOptions { upstream_model: "up", stream: false, drop_params: false };
        let err = groq.chat_request(&chat, strict).err().unwrap_or_else(|| unreachable!("top_k is refused"));
        assert_eq!((err.param.as_str(), err.provider), ("top_k", "groq"));
        let custom = provider("custom", &[], false, true);
        let err = custom.chat_request(&chat, strict).err().unwrap_or_else(|| unreachable!("top_k is refused"));
        assert_eq!(err.provider, "openai");
        let lenient = CallOptions { drop_params: true, ..strict };
        let req = groq.chat_request(&chat, lenient).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(body_of(&req).get("top_k").is_none());
    }

    #[test]
    fn replies_streams_and_errors_through_the_trait() {
        let o = provider("openai", &[], false, true);
        let d: &dyn Dialect = &o;
        assert_eq!(d.framing(), Framing::Sse);
        let reply = d
            .decode_reply(br#"{"id":"c","model":"m","choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}"#);
        assert_eq!(reply.map(|r| r.parts), Ok(vec![Part::Text("hi".into())]));
        let mut decoder = d.stream_decoder();
        let mut events = Vec::new();
        let frame = crate::framing::Frame { event: None, data: bytes::Bytes::from_static(b"[DONE]") };
        assert_eq!(decoder.frame(&frame, &mut events), Ok(()));
        assert_eq!(decoder.end(&mut events), Ok(()));
        let mut headers = HeaderMap::new();
        headers.insert(
            actix_web::http::header::HeaderName::from_static("retry-after"),
            actix_web::http::header::HeaderValue::from_static("3"),
        );
        let body = br#"{"error":{"message":"bad key sk-test-key-123","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let e = d.parse_error("d#0", 401, &headers, body);
        assert_eq!((e.message.as_str(), e.code.as_deref()), ("bad key ****", Some("invalid_api_key")));
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(3)));
    }

    #[test]
    fn embeddings_both_ways() {
        let o = provider("openai", &[], false, true);
        let input = EmbedInput { texts: vec!["a".into(), "b".into()], dimensions: Some(2) };
        let req = o.embeddings_request(&input, "text-embedding-3-small").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(req.url.to_string(), "https://api.example.com/v1/embeddings");
        assert_eq!(
            body_of(&req),
            json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float", "dimensions": 2})
        );
        let b64 = base64::engine::general_purpose::STANDARD
            .encode([0.5f32, -1.0].iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>());
        let body = json!({"object": "list", "model": "m", "data": [
            {"object": "embedding", "index": 1, "embedding": b64},
            {"object": "embedding", "index": 0, "embedding": [0.25, 2]}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}});
        let got = o.decode_embeddings(body.to_string().as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(got, Embeddings { vectors: vec![vec![0.25, 2.0], vec![0.5, -1.0]], prompt_tokens: Some(4) });
        for bad in [
            r#"{"data":[{"embedding":"!!"}]}"#,
            r#"{"data":[{"embedding":["x"]}]}"#,
            r#"{"data":[{"embedding":"AAA="}]}"#,
            "{}",
        ] {
            assert!(o.decode_embeddings(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
