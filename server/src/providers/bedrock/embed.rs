//! Embeddings through `POST /model/{id}/invoke`, whose body is the model family's own (picked by the model id):
//! - Amazon Titan (`amazon.titan-embed-*`): `{inputText, dimensions?}` → `{embedding, inputTextTokenCount}`. One
//!   text per call, so only a single input is supported (one upstream call per request is the contract).
//!   `dimensions` is Titan v2's (256, 512 or 1024); v1 has none.
//! - Cohere on Bedrock (`cohere.embed-*`): `{texts, input_type: "search_document"}` → `{embeddings: [[..]]}` (or
//!   `{embeddings: {float: [[..]]}}` when typed). Embed v4 takes `output_dimension`; v3 has none. Cohere reports its
//!   token count only in a response header, so `prompt_tokens` stays unknown.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::llm::{
    chat::{DecodeError, Unsupported},
    embed::{EmbedInput, Embeddings},
};

const PROVIDER: &str = "bedrock";

fn unsupported(param: &str) -> Unsupported {
    Unsupported { param: param.to_owned(), provider: PROVIDER }
}

/// The invoke body for `model_id`'s family.
pub(super) fn body(input: &EmbedInput, model_id: &str) -> Result<Value, Unsupported> {
    if model_id.contains("amazon.titan-embed") {
        let [text] = input.texts.as_slice() else {
            return Err(unsupported("input (a list of several texts: Titan embeds one text per request)"));
        };
        let mut body = json!({ "inputText": text });
        if let Some(d) = input.dimensions {
            if model_id.contains("titan-embed-text-v1") || model_id.contains("titan-embed-image") {
                return Err(unsupported("dimensions"));
            }
            body["dimensions"] = json!(d);
        }
        return Ok(body);
    }
    if model_id.contains("cohere.embed") {
        let mut body = json!({ "texts": input.texts, "input_type": "search_document" });
        if let Some(d) = input.dimensions {
            if !model_id.contains("embed-v4") {
                return Err(unsupported("dimensions"));
            }
            body["output_dimension"] = json!(d);
        }
        return Ok(body);
    }
    Err(unsupported("embeddings (only Amazon Titan and Cohere embedding models on Bedrock)"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Titan {
    embedding: Vec<f32>,
    input_text_token_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Floats(Vec<Vec<f32>>),
    Typed { float: Vec<Vec<f32>> },
}

#[derive(Deserialize)]
struct Cohere {
    embeddings: CohereEmbeddings,
}

/// A response of either family, told apart by its shape (`embedding` or `embeddings`).
pub(super) fn decode(body: &[u8]) -> Result<Embeddings, DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("Bedrock embeddings response: {e}")))?;
    let bad = |e: serde_json::Error| DecodeError::new(format!("Bedrock embeddings response: {e}"));
    if value.get("embedding").is_some() {
        let t: Titan = serde_json::from_value(value).map_err(bad)?;
        return Ok(Embeddings { vectors: vec![t.embedding], prompt_tokens: t.input_text_token_count });
    }
    if value.get("embeddings").is_some() {
        let c: Cohere = serde_json::from_value(value).map_err(bad)?;
        let vectors = match c.embeddings {
            CohereEmbeddings::Floats(v) | CohereEmbeddings::Typed { float: v } => v,
        };
        return Ok(Embeddings { vectors, prompt_tokens: None });
    }
    Err(DecodeError::new("Bedrock embeddings response has neither `embedding` nor `embeddings`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(texts: &[&str], dimensions: Option<u32>) -> EmbedInput {
        EmbedInput { texts: texts.iter().map(|t| t.to_string()).collect(), dimensions }
    }

    #[test]
    fn bodies_by_family() {
        let cases: &[(&str, EmbedInput, Result<Value, &str>)] = &[
            ("amazon.titan-embed-text-v2:0", input(&["hi"], None), Ok(json!({"inputText": "hi"}))),
            (
                "amazon.titan-embed-text-v2:0",
                input(&["hi"], Some(256)),
                Ok(json!({"inputText": "hi", "dimensions": 256})),
            ),
            ("amazon.titan-embed-text-v1", input(&["hi"], Some(256)), Err("dimensions")),
            (
                "amazon.titan-embed-text-v2:0",
                input(&["a", "b"], None),
                Err("input (a list of several texts: Titan embeds one text per request)"),
            ),
            (
                "cohere.embed-english-v3",
                input(&["a", "b"], None),
                Ok(json!({"texts": ["a", "b"], "input_type": "search_document"})),
            ),
            ("cohere.embed-multilingual-v3", input(&["a"], Some(256)), Err("dimensions")),
            (
                "us.cohere.embed-v4:0",
                input(&["a"], Some(512)),
                Ok(json!({"texts": ["a"], "input_type": "search_document", "output_dimension": 512})),
            ),
            (
                "anthropic.claude-3-haiku-20240307-v1:0",
                input(&["a"], None),
                Err("embeddings (only Amazon Titan and Cohere embedding models on Bedrock)"),
            ),
        ];
        for (model, input, want) in cases {
            let got = body(input, model).map_err(|e| e.param);
            assert_eq!(got, want.clone().map_err(str::to_owned), "{model}");
        }
    }

    #[test]
    fn responses_of_both_families() {
        let titan =
            decode(br#"{"embedding":[0.1,-0.2],"inputTextTokenCount":3}"#).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(titan, Embeddings { vectors: vec![vec![0.1, -0.2]], prompt_tokens: Some(3) });
        let cohere =
            decode(br#"{"embeddings":[[0.5],[0.25]],"id":"x","response_type":"embeddings_floats","texts":["a","b"]}"#)
                .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cohere, Embeddings { vectors: vec![vec![0.5], vec![0.25]], prompt_tokens: None });
        let typed = decode(br#"{"embeddings":{"float":[[1.0]]},"response_type":"embeddings_by_type"}"#)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(typed.vectors, vec![vec![1.0]]);
        for bad in ["", "{}", r#"{"embedding":"x"}"#, r#"{"embeddings":{"int8":[[1]]}}"#] {
            assert!(decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
