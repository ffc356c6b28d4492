//! Whole v2 chat replies and embed responses as canonical types, and the pieces streams share with them:
//! finish reasons and usage (providers.md 6.3, 6.5, 9.1, 9.2).

use serde::{de::Error as _, Deserialize, Deserializer};

use crate::llm::{
    chat::{DecodeError, Finish, Part, Reply, ToolCall},
    embed::Embeddings,
    Usage,
};

/// How a v2 generation ended: a canonical finish reason, or a failure the caller must see as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    Finish(Finish),
    /// `ERROR`: the generation failed part-way. LiteLLM reports it as `stop`, which bills and presents a broken
    /// answer as a complete one.
    Error,
}

/// v2's `finish_reason` (cohere-python `ChatFinishReason`). LiteLLM's table gets `MAX_TOKENS` and `TOOL_CALL`
/// wrong; these are exact.
pub(super) fn ending(reason: &str) -> Ending {
    match reason {
        "COMPLETE" => Ending::Finish(Finish::Stop),
        // v2 does not say which sequence matched, so this is plain `stop`.
        "STOP_SEQUENCE" => Ending::Finish(Finish::Stop),
        "MAX_TOKENS" => Ending::Finish(Finish::Length),
        "TOOL_CALL" => Ending::Finish(Finish::ToolCalls),
        // Cohere cut the generation at its own time limit: the text so far is real but incomplete, which OpenAI
        // clients recognise as `length`.
        "TIMEOUT" => Ending::Finish(Finish::Length),
        // v1-era safety stop; kept because some deployments still send it.
        "ERROR_TOXIC" => Ending::Finish(Finish::ContentFilter),
        "ERROR" => Ending::Error,
        other => {
            // providers.md 9.1: unknown values are logged and reported as `stop` (LiteLLM's default).
            tracing::warn!(finish_reason = other, "unknown Cohere finish_reason, reported as stop");
            Ending::Finish(Finish::Stop)
        }
    }
}

/// A token count: v2 sometimes serialises counts as floats (`20.0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        n.as_u64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.round() as u64))
            .map(Count)
            .ok_or_else(|| D::Error::custom(format!("token count {n} is not a non-negative number")))
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Counts {
    input_tokens: Option<Count>,
    output_tokens: Option<Count>,
}

/// v2's `usage` (chat) object.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WireUsage {
    billed_units: Option<Counts>,
    tokens: Option<Counts>,
    cached_tokens: Option<Count>,
}

impl WireUsage {
    /// The canonical usage, or `None` when v2 reported no counts at all.
    ///
    /// Which counts: `billed_units`, what Cohere charges for, with `tokens` only for a count `billed_units` lacks.
    /// `tokens` is what the model processed, including Cohere's own prompt template and preamble (hundreds of
    /// tokens the customer does not pay for: 520 processed against 20 billed in providers.md 6.3), so costing it
    /// at the per-token list price would overcharge every call. providers.md 6.3 and 9.2 recommend
    /// `billed_units`; LiteLLM reads `tokens` and so overstates Cohere spend.
    ///
    /// `cached_tokens` ("prompt tokens that hit the inference cache") is reported as cache reads, capped at the
    /// prompt count: canonical cache reads are a part of the prompt, and Cohere counts hits against the processed
    /// prompt, which may exceed the billed one.
    pub(super) fn canonical(&self) -> Option<Usage> {
        let pick = |f: fn(&Counts) -> Option<Count>| {
            self.billed_units.as_ref().and_then(f).or_else(|| self.tokens.as_ref().and_then(f)).map(|c| c.0)
        };
        let (input, output) = (pick(|c| c.input_tokens), pick(|c| c.output_tokens));
        if input.is_none() && output.is_none() {
            return None;
        }
        let prompt = input.unwrap_or(0);
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: output.unwrap_or(0),
            cache_read_tokens: self.cached_tokens.map_or(0, |c| c.0.min(prompt)),
            cache_write_tokens: 0,
            // v2 folds reasoning into the output count and reports no split.
            reasoning_tokens: 0,
        })
    }
}

#[derive(Deserialize)]
struct WireReply {
    #[serde(default)]
    id: Option<String>,
    finish_reason: Option<String>,
    message: Option<WireMessage>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireMessage {
    tool_plan: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
    content: Option<Vec<WireContent>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
}

/// Arguments as JSON text; a call without arguments gets `{}`, which every client parses (an empty string is not
/// JSON, and OpenAI sends `{}` for argument-less calls).
pub(super) fn arguments_or_empty_object(arguments: String) -> String {
    if arguments.trim().is_empty() {
        "{}".to_owned()
    } else {
        arguments
    }
}

/// A whole `/v2/chat` reply. `finish_reason: ERROR` is an error, not a reply.
pub(super) fn decode_reply(body: &[u8], model: &str) -> Result<Reply, DecodeError> {
    let wire: WireReply =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("Cohere chat reply is not valid: {e}")))?;
    let finish = match wire.finish_reason.as_deref().map(ending) {
        Some(Ending::Error) => {
            return Err(DecodeError::new("Cohere reported an error during generation (finish_reason ERROR)"))
        }
        Some(Ending::Finish(f)) => Some(f),
        None => None,
    };
    let mut parts = Vec::new();
    if let Some(message) = wire.message {
        if let Some(plan) = message.tool_plan.filter(|p| !p.is_empty()) {
            parts.push(Part::Reasoning { text: plan, signature: None });
        }
        for item in message.content.into_iter().flatten() {
            match (item.kind.as_deref(), item.text, item.thinking) {
                (Some("thinking"), _, Some(thinking)) => {
                    parts.push(Part::Reasoning { text: thinking, signature: None })
                }
                (Some("text") | None, Some(text), _) => parts.push(Part::Text(text)),
                // Other item types (none documented yet) carry nothing the canonical reply has a place for.
                _ => {}
            }
        }
        for call in message.tool_calls.into_iter().flatten() {
            let function = call.function.ok_or_else(|| DecodeError::new("Cohere tool call without a function"))?;
            let name = function.name.ok_or_else(|| DecodeError::new("Cohere tool call without a name"))?;
            parts.push(Part::ToolCall(ToolCall {
                id: call.id.unwrap_or_default(),
                name,
                arguments: arguments_or_empty_object(function.arguments.unwrap_or_default()),
            }));
        }
    }
    Ok(Reply {
        id: wire.id.unwrap_or_default(),
        model: model.to_owned(),
        parts,
        finish,
        usage: wire.usage.as_ref().and_then(WireUsage::canonical),
    })
}

#[derive(Deserialize)]
struct WireEmbed {
    embeddings: WireEmbeddings,
    meta: Option<WireMeta>,
}

#[derive(Deserialize)]
struct WireEmbeddings {
    float: Option<Vec<Vec<f32>>>,
}

#[derive(Deserialize)]
struct WireMeta {
    billed_units: Option<Counts>,
    tokens: Option<Counts>,
}

/// A `/v2/embed` response: the float vectors, and the billed input tokens (as for chat, what Cohere charges).
pub(super) fn decode_embeddings(body: &[u8]) -> Result<Embeddings, DecodeError> {
    let wire: WireEmbed =
        serde_json::from_slice(body).map_err(|e| DecodeError::new(format!("Cohere embed reply is not valid: {e}")))?;
    let vectors = wire.embeddings.float.ok_or_else(|| DecodeError::new("Cohere embed reply has no float vectors"))?;
    let prompt_tokens = wire.meta.and_then(|m| {
        let billed = m.billed_units.and_then(|b| b.input_tokens);
        billed.or_else(|| m.tokens.and_then(|t| t.input_tokens)).map(|c| c.0)
    });
    Ok(Embeddings { vectors, prompt_tokens })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn usage(prompt: u64, completion: u64, cached: u64) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cache_read_tokens: cached,
            ..Usage::default()
        })
    }

    fn decode(v: serde_json::Value) -> Result<Reply, DecodeError> {
        decode_reply(v.to_string().as_bytes(), "command-a")
    }

    #[test]
    fn every_finish_reason_maps_exactly() {
        let cases = [
            ("COMPLETE", Ending::Finish(Finish::Stop)),
            ("STOP_SEQUENCE", Ending::Finish(Finish::Stop)),
            ("MAX_TOKENS", Ending::Finish(Finish::Length)),
            ("TOOL_CALL", Ending::Finish(Finish::ToolCalls)),
            ("TIMEOUT", Ending::Finish(Finish::Length)),
            ("ERROR_TOXIC", Ending::Finish(Finish::ContentFilter)),
            ("ERROR", Ending::Error),
            ("SOMETHING_NEW", Ending::Finish(Finish::Stop)),
        ];
        for (reason, want) in cases {
            assert_eq!(ending(reason), want, "{reason}");
        }
    }

    #[test]
    fn replies_decode_with_their_finish_reason() {
        let text_reply = |reason: &str| {
            json!({"id": "c1", "finish_reason": reason,
                "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                "usage": {"billed_units": {"input_tokens": 20, "output_tokens": 12}, "tokens": {"input_tokens": 520, "output_tokens": 13}}})
        };
        let cases = [
            ("COMPLETE", Finish::Stop, "stop"),
            ("STOP_SEQUENCE", Finish::Stop, "stop"),
            ("MAX_TOKENS", Finish::Length, "length"),
            ("TOOL_CALL", Finish::ToolCalls, "tool_calls"),
            ("ERROR_TOXIC", Finish::ContentFilter, "content_filter"),
        ];
        for (reason, finish, openai) in cases {
            let r = decode(text_reply(reason)).unwrap_or_else(|e| unreachable!("{reason}: {e}"));
            assert_eq!(r.finish.as_ref(), Some(&finish), "{reason}");
            assert_eq!(r.finish.as_ref().map(Finish::openai), Some(openai));
            assert_eq!((r.id.as_str(), r.model.as_str()), ("c1", "command-a"));
            assert_eq!(r.parts, [Part::Text("Hello".into())]);
            assert_eq!(r.usage, usage(20, 12, 0), "billed units, not processed tokens");
        }
        let error = decode(text_reply("ERROR")).map(|_| ());
        assert!(error.as_ref().is_err_and(|e| e.0.contains("ERROR")), "{error:?}");
    }

    #[test]
    fn tool_calls_plans_and_thinking_decode_in_order() {
        let r = decode(json!({
            "id": "c2", "finish_reason": "TOOL_CALL",
            "message": {"role": "assistant", "tool_plan": "I will call get_weather.",
                "tool_calls": [
                    {"id": "get_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "now_2", "type": "function", "function": {"name": "now", "arguments": ""}},
                ],
                "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "ok"}],
                "citations": []},
            "usage": {"billed_units": {"input_tokens": 20.0, "output_tokens": 12.0}, "cached_tokens": 4},
        }))
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            r.parts,
            [
                Part::Reasoning { text: "I will call get_weather.".into(), signature: None },
                Part::Reasoning { text: "hmm".into(), signature: None },
                Part::Text("ok".into()),
                Part::ToolCall(ToolCall {
                    id: "get_weather_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into()
                }),
                Part::ToolCall(ToolCall { id: "now_2".into(), name: "now".into(), arguments: "{}".into() }),
            ]
        );
        assert_eq!(r.finish, Some(Finish::ToolCalls));
        assert_eq!(r.usage, usage(20, 12, 4), "float counts and cached tokens");
    }

    #[test]
    fn usage_prefers_billed_units_field_by_field() {
        let cases = [
            (
                json!({"billed_units": {"input_tokens": 5, "output_tokens": 418}, "tokens": {"input_tokens": 71, "output_tokens": 418}}),
                usage(5, 418, 0),
            ),
            (json!({"tokens": {"input_tokens": 71, "output_tokens": 9}}), usage(71, 9, 0)),
            (
                json!({"billed_units": {"input_tokens": 5}, "tokens": {"input_tokens": 71, "output_tokens": 9}}),
                usage(5, 9, 0),
            ),
            // Cache hits are counted against the processed prompt; canonical cache reads stay within the prompt.
            (json!({"billed_units": {"input_tokens": 5, "output_tokens": 1}, "cached_tokens": 64}), usage(5, 1, 5)),
            (
                json!({"billed_units": {"input_tokens": 50, "output_tokens": 1}, "cached_tokens": 32.0}),
                usage(50, 1, 32),
            ),
            (json!({}), None),
            (json!({"billed_units": {}, "tokens": null}), None),
        ];
        for (wire, want) in cases {
            let parsed: WireUsage = serde_json::from_value(wire.clone()).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(parsed.canonical(), want, "{wire}");
        }
        assert!(serde_json::from_value::<WireUsage>(json!({"tokens": {"input_tokens": -1}})).is_err());
    }

    #[test]
    fn malformed_replies_are_decode_errors() {
        for body in ["", "{", "[]", r#"{"message":{"tool_calls":[{"id":"x","function":{"arguments":"{}"}}]}}"#] {
            assert!(decode_reply(body.as_bytes(), "m").is_err(), "{body}");
        }
        // No usage at all is not an error here; the pipeline counts it as an accounting gap.
        let r = decode(json!({"id": "c", "finish_reason": "COMPLETE", "message": {"content": []}}));
        assert!(r.is_ok_and(|r| r.usage.is_none() && r.parts.is_empty()));
    }

    #[test]
    fn embeddings_decode_vectors_and_billed_tokens() {
        let body = json!({"id": "e", "embeddings": {"float": [[0.5, -0.25], [1.0, 0.0]]}, "texts": ["a", "b"],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 4}}, "response_type": "embeddings_by_type"});
        let e = decode_embeddings(body.to_string().as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(e, Embeddings { vectors: vec![vec![0.5, -0.25], vec![1.0, 0.0]], prompt_tokens: Some(4) });
        let no_meta = json!({"embeddings": {"float": []}});
        assert_eq!(decode_embeddings(no_meta.to_string().as_bytes()).map(|e| e.prompt_tokens), Ok(None));
        let int8_only = json!({"embeddings": {"int8": [[1, 2]]}});
        assert!(decode_embeddings(int8_only.to_string().as_bytes()).is_err());
    }
}
