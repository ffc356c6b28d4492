//! The caller's side of a translated call: reading the caller's request into the canonical chat, and rendering
//! replies, streams and embeddings back in the dialect the caller spoke (OpenAI chat, OpenAI's legacy text
//! completions, or Anthropic).

use base64::Engine;
use serde_json::{json, Value};

use super::{anthropic, codec::StreamEncoder, openai};
use crate::llm::{
    chat::{Chat, Reply, Unsupported},
    embed::{EmbedInput, Embeddings},
    EmbeddingsRequest, Inbound, RequestError,
};

/// The caller's request as a canonical chat.
pub fn canonical(inbound: &Inbound<'_>) -> Result<Chat, RequestError> {
    match inbound {
        Inbound::OpenAi(req) => openai::request::decode_request(req),
        Inbound::Anthropic(req) => anthropic::decode_request(req),
        Inbound::Completions(req) => openai::completions::decode_request(req),
    }
}

/// An encoder of canonical events in the caller's dialect; `created` is the OpenAI chunks' timestamp.
pub fn encoder(inbound: &Inbound<'_>, created: u64) -> Box<dyn StreamEncoder> {
    match inbound {
        Inbound::OpenAi(req) => Box::new(openai::stream::ChunkEncoder::new(req.include_usage, created)),
        Inbound::Anthropic(_) => Box::new(anthropic::EventEncoder::default()),
        Inbound::Completions(req) => Box::new(openai::completions::CompletionEncoder::new(req.include_usage, created)),
    }
}

/// A whole reply in the caller's dialect.
pub fn encode_reply(inbound: &Inbound<'_>, reply: &Reply, created: u64) -> Vec<u8> {
    match inbound {
        Inbound::OpenAi(_) => openai::reply::encode_reply(reply, created),
        Inbound::Anthropic(_) => anthropic::encode_reply(reply),
        Inbound::Completions(_) => openai::completions::encode_reply(reply, created),
    }
}

/// The texts of an OpenAI embeddings request, for providers that take texts. Token arrays are OpenAI's alone.
pub fn embed_input(req: &EmbeddingsRequest<'_>, provider: &str) -> Result<EmbedInput, Unsupported> {
    let token_arrays = || Unsupported { param: "input (token arrays)".into(), provider: provider_name(provider) };
    let texts = match serde_json::from_str::<Value>(req.input.get()) {
        Ok(Value::String(s)) => vec![s],
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|v| if let Value::String(s) = v { Ok(s) } else { Err(token_arrays()) })
            .collect::<Result<_, _>>()?,
        _ => return Err(token_arrays()),
    };
    let dimensions = req.body.get("dimensions").and_then(|v| v.get().parse::<u32>().ok());
    Ok(EmbedInput { texts, dimensions })
}

/// `Unsupported` names providers by `&'static str`; the built-in dialects' names are static.
fn provider_name(provider: &str) -> &'static str {
    ["anthropic", "gemini", "vertex_ai", "bedrock", "cohere", "azure"]
        .into_iter()
        .find(|p| *p == provider)
        .unwrap_or("this provider")
}

/// The caller asked for base64 vectors (what the OpenAI Python SDK asks for by default).
pub fn wants_base64(req: &EmbeddingsRequest<'_>) -> bool {
    req.body.get("encoding_format").is_some_and(|f| f.get() == "\"base64\"")
}

/// OpenAI's embeddings list: floats, or base64 of the little-endian f32s.
pub fn render_embeddings(e: &Embeddings, model: &str, base64: bool) -> Vec<u8> {
    let data: Vec<Value> = e
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = e.prompt_tokens.unwrap_or(0);
    let body = json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_render_as_floats_or_base64() {
        let e = Embeddings { vectors: vec![vec![1.0, -0.5]], prompt_tokens: Some(3) };
        let floats: Value = serde_json::from_slice(&render_embeddings(&e, "m", false)).unwrap_or_default();
        assert_eq!(floats["data"][0]["embedding"], json!([1.0, -0.5]));
        assert_eq!(floats["usage"]["prompt_tokens"], 3);
        let b64: Value = serde_json::from_slice(&render_embeddings(&e, "m", true)).unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64["data"][0]["embedding"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(bytes, [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat());
    }

    #[test]
    fn embed_input_takes_strings_and_refuses_token_arrays() {
        let ok = EmbeddingsRequest::parse(br#"{"model":"m","input":["a","b"],"dimensions":256}"#)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            embed_input(&ok, "cohere"),
            Ok(EmbedInput { texts: vec!["a".into(), "b".into()], dimensions: Some(256) })
        );
        let tokens =
            EmbeddingsRequest::parse(br#"{"model":"m","input":[[1,2]]}"#).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(embed_input(&tokens, "cohere").map_err(|e| e.param), Err("input (token arrays)".into()));
    }
}
