//! Embeddings (providers.md 3.5, 3.7): the Gemini API's `:batchEmbedContents` (one request per text) and Vertex
//! AI's `:predict` (one instance per text, with a token count per instance).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::llm::{
    chat::DecodeError,
    embed::{EmbedInput, Embeddings},
};

/// `{"requests":[{"model":"models/<m>","content":{"parts":[{"text":..}]},"outputDimensionality":..}]}`.
pub(super) fn gemini_body(input: &EmbedInput, model: &str) -> Value {
    let model = format!("models/{model}");
    let requests: Vec<Value> = input
        .texts
        .iter()
        .map(|text| {
            let mut r = json!({"model": model, "content": {"parts": [{"text": text}]}});
            if let Some(d) = input.dimensions {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    json!({"requests": requests})
}

/// `{"instances":[{"content":..}],"parameters":{"outputDimensionality":..}}`.
pub(super) fn vertex_body(input: &EmbedInput) -> Value {
    let instances: Vec<Value> = input.texts.iter().map(|t| json!({"content": t})).collect();
    let mut body = json!({"instances": instances});
    if let Some(d) = input.dimensions {
        body["parameters"] = json!({"outputDimensionality": d});
    }
    body
}

#[derive(Deserialize)]
struct Values {
    values: Vec<f32>,
}

/// `{"embeddings":[{"values":[..]}], "usageMetadata"?: {"promptTokenCount"}}`.
pub(super) fn decode_gemini(body: &[u8]) -> Result<Embeddings, DecodeError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Batch {
        embeddings: Vec<Values>,
        usage_metadata: Option<Usage>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Usage {
        prompt_token_count: Option<u64>,
    }
    let b: Batch = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new(format!("not a Gemini batchEmbedContents response: {e}")))?;
    Ok(Embeddings {
        vectors: b.embeddings.into_iter().map(|e| e.values).collect(),
        prompt_tokens: b.usage_metadata.and_then(|u| u.prompt_token_count),
    })
}

/// `{"predictions":[{"embeddings":{"values":[..],"statistics":{"token_count":n}}}]}`; the call's tokens are the
/// sum over instances, when every instance reports its count.
pub(super) fn decode_vertex(body: &[u8]) -> Result<Embeddings, DecodeError> {
    #[derive(Deserialize)]
    struct Predict {
        predictions: Vec<Prediction>,
    }
    #[derive(Deserialize)]
    struct Prediction {
        embeddings: Embedding,
    }
    #[derive(Deserialize)]
    struct Embedding {
        values: Vec<f32>,
        statistics: Option<Statistics>,
    }
    #[derive(Deserialize)]
    struct Statistics {
        // A JSON number that Vertex writes as `7` or `7.0`.
        token_count: Option<f64>,
    }
    let p: Predict =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("not a Vertex AI predict response: {e}")))?;
    let mut tokens = Some(0u64);
    let mut vectors = Vec::with_capacity(p.predictions.len());
    for prediction in p.predictions {
        let count = prediction.embeddings.statistics.and_then(|s| s.token_count).filter(|c| c.is_finite() && *c >= 0.0);
        tokens = tokens.zip(count).map(|(sum, c)| sum.saturating_add(c as u64));
        vectors.push(prediction.embeddings.values);
    }
    let prompt_tokens = tokens.filter(|_| !vectors.is_empty());
    Ok(Embeddings { vectors, prompt_tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies() {
        let input = EmbedInput { texts: vec!["a".into(), "b c".into()], dimensions: Some(8) };
        assert_eq!(
            gemini_body(&input, "text-embedding-004"),
            json!({"requests": [
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8},
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b c"}]}, "outputDimensionality": 8}]})
        );
        assert_eq!(
            vertex_body(&input),
            json!({"instances": [{"content": "a"}, {"content": "b c"}], "parameters": {"outputDimensionality": 8}})
        );
        let plain = EmbedInput { texts: vec!["a".into()], dimensions: None };
        assert_eq!(vertex_body(&plain), json!({"instances": [{"content": "a"}]}));
    }

    #[test]
    fn responses() {
        let got = decode_gemini(br#"{"embeddings":[{"values":[0.5,-1]},{"values":[0.25]}]}"#);
        assert_eq!(got, Ok(Embeddings { vectors: vec![vec![0.5, -1.0], vec![0.25]], prompt_tokens: None }));
        let got = decode_gemini(br#"{"embeddings":[{"values":[1]}],"usageMetadata":{"promptTokenCount":3}}"#);
        assert_eq!(got.map(|e| e.prompt_tokens), Ok(Some(3)));
        let vertex =
            br#"{"predictions":[{"embeddings":{"values":[0.1],"statistics":{"token_count":2,"truncated":false}}},
                                         {"embeddings":{"values":[0.2],"statistics":{"token_count":5.0}}}]}"#;
        assert_eq!(
            decode_vertex(vertex),
            Ok(Embeddings { vectors: vec![vec![0.1], vec![0.2]], prompt_tokens: Some(7) })
        );
        // One instance without a count: the total is unknown, not a guess.
        let partial = br#"{"predictions":[{"embeddings":{"values":[0.1],"statistics":{"token_count":2}}},{"embeddings":{"values":[0.2]}}]}"#;
        assert_eq!(decode_vertex(partial).map(|e| e.prompt_tokens), Ok(None));
        assert!(decode_gemini(b"{}").is_err());
        assert!(decode_vertex(br#"{"error":{"code":400}}"#).is_err());
    }
}
