//! Token usage as OpenAI reports it, read from a finished body or from the final stream chunk.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// Cached input tokens, a subset of `prompt_tokens` in OpenAI's accounting.
    #[serde(default, rename = "prompt_tokens_details", deserialize_with = "cached_tokens")]
    pub cached_tokens: u64,
}

fn cached_tokens<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    struct Details {
        #[serde(default)]
        cached_tokens: Option<u64>,
    }
    Ok(Option::<Details>::deserialize(d)?.and_then(|x| x.cached_tokens).unwrap_or(0))
}

/// The parts of a response body or stream chunk the gateway reads; everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct Peek {
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub choices: Option<Vec<ChoicePeek>>,
    #[serde(default)]
    pub error: Option<serde::de::IgnoredAny>,
    /// Groq put stream usage here before it moved to the top level.
    #[serde(default)]
    pub x_groq: Option<GroqExtra>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChoicePeek {
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct GroqExtra {
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl Peek {
    pub fn parse(json: &[u8]) -> Option<Self> {
        serde_json::from_slice(json).ok()
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.or_else(|| self.x_groq.as_ref().and_then(|g| g.usage))
    }

    /// Some choice of this chunk finished.
    pub fn finishes(&self) -> bool {
        self.choices.iter().flatten().any(|c| c.finish_reason.is_some())
    }

    /// OpenAI's final `include_usage` chunk: empty `choices`, usage filled.
    pub fn is_usage_only(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_some_and(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_at_usage_in_every_position() {
        let cases: &[(&str, Option<Usage>, bool)] = &[
            (
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
                Some(Usage { prompt_tokens: 9, completion_tokens: 2, cached_tokens: 0 }),
                true,
            ),
            (r#"{"choices":[{"index":0,"delta":{}}],"usage":null}"#, None, false),
            (
                r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":1}}}"#,
                Some(Usage { prompt_tokens: 1, completion_tokens: 1, cached_tokens: 1 }),
                false,
            ),
            (
                r#"{"choices":[{"delta":{}}],"x_groq":{"id":"r","usage":{"prompt_tokens":4,"completion_tokens":5}}}"#,
                Some(Usage { prompt_tokens: 4, completion_tokens: 5, cached_tokens: 0 }),
                false,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":0,"prompt_tokens_details":null}}"#,
                Some(Usage { prompt_tokens: 3, completion_tokens: 0, cached_tokens: 0 }),
                true,
            ),
        ];
        for (json, usage, usage_only) in cases {
            let p = Peek::parse(json.as_bytes()).unwrap_or_default();
            assert_eq!((p.usage(), p.is_usage_only()), (*usage, *usage_only), "{json}");
        }
    }
}
