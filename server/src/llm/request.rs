//! Parses an OpenAI request body once, keeping every field as borrowed raw JSON.
//!
//! Hostile input is normal input: parsing is linear in the body (one depth scan, one serde pass, duplicate keys
//! found with a hash set once an object is large), and nesting deeper than [`MAX_DEPTH`] is refused before
//! serde sees the body. `fuzz/` holds the fuzz target for this parser (`scripts/fuzz.sh`).
//!
//! Only what the gateway decides on (`model`, `stream`, `stream_options`) is decoded; everything else stays as the
//! caller's exact bytes so unknown fields reach OpenAI-dialect upstreams untouched and in order. Rewriting a field
//! (the upstream model name, a renamed parameter) is a splice, not a re-serialisation of the whole body.

use std::{borrow::Cow, collections::HashSet, fmt};

use serde::{
    de::{self, MapAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::value::RawValue;

/// Deepest nesting of arrays and objects a request body may have. Real requests (messages, tool schemas) stay far
/// below it; serde_json's own limit for typed parsing is 128, so anything accepted here can also be parsed typed.
pub const MAX_DEPTH: usize = 100;

/// Objects with more keys than this check duplicates with a hash set instead of a scan of the keys so far.
const LINEAR_DUPLICATE_SCAN: usize = 16;

/// Why a request body was refused; mapped to a 400 once, in `error.rs`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body nests arrays and objects deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{message}")]
    InvalidField { param: &'static str, message: String },
}

/// A JSON object as an ordered list of (key, raw value) pairs borrowed from the body.
#[derive(Debug)]
pub struct RawObject<'a> {
    /// Keys borrow from the body unless they contain escapes (then they are decoded copies).
    pub fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::with_capacity(map.size_hint().unwrap_or(8));
                // Why: a scan of the keys so far is quadratic in the key count (300,000 keys kept a worker busy
                // for minutes); past a few keys, a hash set keeps the whole parse linear.
                let mut seen: Option<HashSet<Cow<'a, str>>> = None;
                while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
                    let duplicate = match &mut seen {
                        Some(set) => !set.insert(key.clone()),
                        None if fields.len() < LINEAR_DUPLICATE_SCAN => fields.iter().any(|(k, _)| *k == key),
                        None => {
                            let mut set: HashSet<Cow<'a, str>> = fields.iter().map(|(k, _)| k.clone()).collect();
                            let duplicate = !set.insert(key.clone());
                            seen = Some(set);
                            duplicate
                        }
                    };
                    if duplicate {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    let value: &'a RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(RawObject { fields })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// An object key, borrowed from the body when it has no escapes: no allocation per field on the request path.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl<'a> RawObject<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        check_depth(body)?;
        serde_json::from_slice(body).map_err(|e| RequestError::MalformedJson(e.to_string()))
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Decodes one field; `null` counts as absent, as in OpenAI's API.
    fn decode<T: Deserialize<'a>>(&self, key: &'static str, expected: &str) -> Result<Option<T>, RequestError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get())
                .map(Some)
                .map_err(|_| RequestError::InvalidField { param: key, message: format!("`{key}` must be {expected}") }),
        }
    }

    /// Writes the object back, replacing or renaming fields as `edit` says, and appending `extra` fields.
    pub fn write<'e>(
        &self,
        capacity_hint: usize,
        mut edit: impl FnMut(&str) -> Edit<'e>,
        extra: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(capacity_hint + 64);
        out.push(b'{');
        let mut first = true;
        let mut push_field = |out: &mut Vec<u8>, key: &str, raw: &str| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_json_string(out, key);
            out.push(b':');
            out.extend_from_slice(raw.as_bytes());
        };
        for (key, value) in &self.fields {
            match edit(key) {
                Edit::Keep => push_field(&mut out, key, value.get()),
                Edit::Drop => {}
                Edit::Replace(raw) => push_field(&mut out, key, &raw),
                Edit::Rename(new_key) => push_field(&mut out, new_key, value.get()),
            }
        }
        for (key, raw) in extra {
            push_field(&mut out, key, raw);
        }
        out.push(b'}');
        out
    }
}

/// What `RawObject::write` does with one field.
pub enum Edit<'e> {
    Keep,
    Drop,
    /// New raw JSON for the value.
    Replace(String),
    Rename(&'e str),
}

/// Refuses bodies nested deeper than [`MAX_DEPTH`], in one pass over the bytes. Brackets inside strings do not
/// count; malformed JSON is left for serde to report.
fn check_depth(body: &[u8]) -> Result<(), RequestError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(RequestError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json's string escaping; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions`, decoded as far as the gateway needs.
#[derive(Debug)]
pub struct ChatRequest<'a> {
    pub body: RawObject<'a>,
    pub model: String,
    pub stream: bool,
    /// The caller asked for the final usage chunk. tollgate always asks the upstream for usage (to count tokens
    /// and cost) and strips that chunk again when the caller did not ask.
    pub include_usage: bool,
    pub messages: &'a RawValue,
    /// LiteLLM's request-level routing fields: groups to fall back to, or none at all. Read by tollgate, never sent
    /// upstream ([`ROUTING_FIELDS`]).
    pub fallbacks: Option<Vec<String>>,
    pub disable_fallbacks: bool,
}

/// Fields of an OpenAI request that are for the gateway, not the provider.
pub const ROUTING_FIELDS: [&str; 2] = ["fallbacks", "disable_fallbacks"];

impl<'a> ChatRequest<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RequestError> {
        let body = RawObject::parse(bytes)?;
        let model = required_model(&body)?;
        let messages = body
            .get("messages")
            .ok_or(RequestError::InvalidField { param: "messages", message: "`messages` is required".into() })?;
        let trimmed = messages.get().trim_start();
        if !trimmed.starts_with('[') {
            return Err(RequestError::InvalidField {
                param: "messages",
                message: "`messages` must be an array".into(),
            });
        }
        if trimmed[1..].trim_start().starts_with(']') {
            return Err(RequestError::InvalidField {
                param: "messages",
                message: "`messages` must contain at least one message".into(),
            });
        }
        let (stream, include_usage) = stream_flags(&body)?;
        let fallbacks = body.decode::<Vec<String>>("fallbacks", "an array of model names")?;
        let disable_fallbacks = body.decode::<bool>("disable_fallbacks", "a boolean")?.unwrap_or(false);
        Ok(Self { include_usage, body, model, stream, messages, fallbacks, disable_fallbacks })
    }
}

/// `stream` and `stream_options.include_usage`, as OpenAI's chat and text completions both take them.
fn stream_flags(body: &RawObject<'_>) -> Result<(bool, bool), RequestError> {
    let stream = body.decode::<bool>("stream", "a boolean")?.unwrap_or(false);
    let options = body.decode::<StreamOptions>("stream_options", "an object")?;
    if options.is_some() && !stream {
        return Err(RequestError::InvalidField {
            param: "stream_options",
            message: "`stream_options` is only allowed when `stream` is true".into(),
        });
    }
    Ok((stream, options.is_some_and(|o| o.include_usage)))
}

/// `POST /v1/completions` (OpenAI's legacy text completions), decoded as far as the gateway needs: like
/// [`ChatRequest`], plus the prompts, which any provider but an OpenAI `/completions` server needs as a chat.
#[derive(Debug)]
pub struct CompletionRequest<'a> {
    pub body: RawObject<'a>,
    pub model: String,
    pub stream: bool,
    /// The caller asked for the final usage chunk (see [`ChatRequest::include_usage`]).
    pub include_usage: bool,
    /// `prompt`: one string, or an array of strings (one completion each). Token-id prompts are refused: only
    /// OpenAI's own tokenizer could read them, and no other provider takes them.
    pub prompts: Vec<String>,
}

impl<'a> CompletionRequest<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RequestError> {
        let body = RawObject::parse(bytes)?;
        let model = required_model(&body)?;
        let prompts = prompts(body.get("prompt"))?;
        let (stream, include_usage) = stream_flags(&body)?;
        Ok(Self { body, model, stream, include_usage, prompts })
    }
}

/// A completions `prompt`: a string or a non-empty array of strings.
fn prompts(raw: Option<&RawValue>) -> Result<Vec<String>, RequestError> {
    let invalid = |message: &str| RequestError::InvalidField { param: "prompt", message: message.into() };
    let shape = || invalid("`prompt` must be a string or an array of strings");
    let tokens = || {
        invalid(
            "`prompt` as token ids is not supported: send the text, as a string or an array of strings (token ids \
             mean something only to the tokenizer of one model)",
        )
    };
    let raw = raw.filter(|v| v.get() != "null").ok_or_else(|| invalid("`prompt` is required"))?;
    let text = |item: &RawValue| match item.get().trim_start().as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(item.get()).map_err(|_| shape()),
        Some(b'[' | b'-' | b'0'..=b'9') => Err(tokens()),
        _ => Err(shape()),
    };
    match raw.get().trim_start().as_bytes().first() {
        Some(b'[') => {}
        Some(b'"') => return Ok(vec![text(raw)?]),
        _ => return Err(shape()),
    }
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| shape())?;
    if items.is_empty() {
        return Err(invalid("`prompt` must contain at least one string"));
    }
    items.into_iter().map(text).collect()
}

/// `POST /v1/embeddings`.
#[derive(Debug)]
pub struct EmbeddingsRequest<'a> {
    pub body: RawObject<'a>,
    pub model: String,
    pub input: &'a RawValue,
}

impl<'a> EmbeddingsRequest<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RequestError> {
        let body = RawObject::parse(bytes)?;
        let model = required_model(&body)?;
        let input = body
            .get("input")
            .filter(|v| v.get() != "null")
            .ok_or(RequestError::InvalidField { param: "input", message: "`input` is required".into() })?;
        let first = input.get().trim_start().chars().next();
        if !matches!(first, Some('"' | '[')) {
            return Err(RequestError::InvalidField {
                param: "input",
                message: "`input` must be a string, an array of strings or an array of token arrays".into(),
            });
        }
        Ok(Self { body, model, input })
    }
}

/// `POST /v1/messages` (Anthropic's Messages API), decoded as far as the gateway needs.
#[derive(Debug)]
pub struct MessagesRequest<'a> {
    pub body: RawObject<'a>,
    pub model: String,
    pub stream: bool,
}

impl<'a> MessagesRequest<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RequestError> {
        Self::parse_with(bytes, true)
    }

    /// `POST /v1/messages/count_tokens`: the same body, where `max_tokens` is not required (nothing is generated).
    pub fn parse_count(bytes: &'a [u8]) -> Result<Self, RequestError> {
        Self::parse_with(bytes, false)
    }

    fn parse_with(bytes: &'a [u8], max_tokens_required: bool) -> Result<Self, RequestError> {
        let body = RawObject::parse(bytes)?;
        let model = required_model(&body)?;
        let non_empty_array = body.get("messages").is_some_and(|m| {
            let t = m.get().trim_start();
            t.starts_with('[') && !t[1..].trim_start().starts_with(']')
        });
        if !non_empty_array {
            return Err(RequestError::InvalidField {
                param: "messages",
                message: "`messages` must be a non-empty array".into(),
            });
        }
        match body.decode::<u64>("max_tokens", "a positive integer")? {
            Some(n) if n > 0 => {}
            None if !max_tokens_required => {}
            Some(_) => {
                return Err(RequestError::InvalidField {
                    param: "max_tokens",
                    message: "`max_tokens` must be a positive integer".into(),
                })
            }
            None => {
                return Err(RequestError::InvalidField {
                    param: "max_tokens",
                    message: "`max_tokens` is required".into(),
                })
            }
        }
        let stream = body.decode::<bool>("stream", "a boolean")?.unwrap_or(false);
        Ok(Self { body, model, stream })
    }
}

/// A chat request in the dialect the caller spoke.
#[derive(Debug)]
pub enum Inbound<'a> {
    /// `POST /v1/chat/completions`.
    OpenAi(ChatRequest<'a>),
    /// `POST /v1/messages`.
    Anthropic(MessagesRequest<'a>),
    /// `POST /v1/completions` (OpenAI's legacy text completions).
    Completions(CompletionRequest<'a>),
}

impl Inbound<'_> {
    pub fn stream(&self) -> bool {
        match self {
            Self::OpenAi(r) => r.stream,
            Self::Anthropic(r) => r.stream,
            Self::Completions(r) => r.stream,
        }
    }
}

fn required_model(body: &RawObject<'_>) -> Result<String, RequestError> {
    match body.decode::<String>("model", "a string")? {
        Some(m) if !m.trim().is_empty() => Ok(m),
        _ => Err(RequestError::InvalidField { param: "model", message: "`model` is required".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(r: Result<ChatRequest<'_>, RequestError>) -> Option<&'static str> {
        match r {
            Err(RequestError::InvalidField { param, .. }) => Some(param),
            Err(RequestError::MalformedJson(_)) => Some("<json>"),
            _ => None,
        }
    }

    #[test]
    fn chat_validation_names_the_field() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#, None),
            (r#"{"messages":[{"role":"user","content":"hi"}]}"#, Some("model")),
            (r#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#, Some("model")),
            (r#"{"model":7,"messages":[{"role":"user","content":"hi"}]}"#, Some("model")),
            (r#"{"model":"m"}"#, Some("messages")),
            (r#"{"model":"m","messages":"hi"}"#, Some("messages")),
            (r#"{"model":"m","messages":[ ]}"#, Some("messages")),
            (r#"{"model":"m","messages":[{}],"stream":"yes"}"#, Some("stream")),
            (r#"{"model":"m","messages":[{}],"stream_options":{"include_usage":true}}"#, Some("stream_options")),
            (r#"{"model":"m","messages":[{}],"stream":true,"stream_options":5}"#, Some("stream_options")),
            (r#"{"model":"m","messages":[{}],"model":"n"}"#, Some("<json>")),
            (r#"{"model":"m","messages":[{}]"#, Some("<json>")),
            (r#"[1,2]"#, Some("<json>")),
            (r#"{"model":"m","messages":[{}],"stream":null}"#, None),
        ];
        for (body, want) in cases {
            assert_eq!(param_of(ChatRequest::parse(body.as_bytes())), *want, "body {body}");
        }
    }

    #[test]
    fn nesting_is_bounded_and_strings_do_not_count() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let body = |messages: &str| format!(r#"{{"model":"m","messages":[{{"x":{messages}}}]}}"#);
        // The messages array and its object take two levels.
        let ok = body(&nested(MAX_DEPTH - 3));
        assert!(ChatRequest::parse(ok.as_bytes()).is_ok());
        let deep = body(&nested(MAX_DEPTH - 1));
        assert!(matches!(ChatRequest::parse(deep.as_bytes()), Err(RequestError::TooDeep)));
        let unclosed = "[".repeat(1_000_000);
        assert!(matches!(RawObject::parse(unclosed.as_bytes()), Err(RequestError::TooDeep)));
        let in_string =
            format!(r#"{{"model":"m","messages":[{{"content":"{}\"{}"}}]}}"#, "[".repeat(500), "{".repeat(500));
        assert!(ChatRequest::parse(in_string.as_bytes()).is_ok(), "brackets inside strings are text");
    }

    #[test]
    fn many_keys_parse_in_linear_time() {
        // 200,000 distinct keys: quadratic duplicate detection would take hours here; a hash set takes milliseconds.
        let mut body = String::from(r#"{"model":"m","messages":[{}]"#);
        for i in 0..200_000 {
            body.push_str(&format!(r#","k{i}":0"#));
        }
        body.push('}');
        let parsed = ChatRequest::parse(body.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(parsed.body.fields.len(), 200_002);
        let duplicate = body.replace(r#""k199999":0}"#, r#""k7":1}"#);
        assert!(
            matches!(ChatRequest::parse(duplicate.as_bytes()), Err(RequestError::MalformedJson(m)) if m.contains("duplicate field `k7`"))
        );
    }

    #[test]
    fn reads_stream_flags() {
        let b = br#"{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}"#;
        let r = ChatRequest::parse(b).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(r.stream && r.include_usage);
        let b = br#"{"model":"m","messages":[{}],"stream":true}"#;
        let r = ChatRequest::parse(b).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(r.stream && !r.include_usage);
    }

    #[test]
    fn keys_borrow_unless_escaped() {
        let b = br#"{"model":"m","messages":[{}],"a\u0062c":1,"d\"e":2}"#;
        let r = ChatRequest::parse(b).unwrap_or_else(|e| unreachable!("{e}"));
        let kinds: Vec<(&str, bool)> =
            r.body.fields.iter().map(|(k, _)| (k.as_ref(), matches!(k, Cow::Borrowed(_)))).collect();
        assert_eq!(kinds, [("model", true), ("messages", true), ("abc", false), ("d\"e", false)]);
        let dup = br#"{"model":"m","messages":[{}],"model":"n"}"#;
        assert!(matches!(ChatRequest::parse(dup), Err(RequestError::MalformedJson(_))));
        let escaped_dup = br#"{"model":"m","messages":[{}],"mod\u0065l":"n"}"#;
        assert!(
            matches!(ChatRequest::parse(escaped_dup), Err(RequestError::MalformedJson(_))),
            "escapes do not hide duplicates"
        );
    }

    #[test]
    fn write_keeps_unknown_fields_and_order() {
        let b = br#"{"model":"group","messages":[{"role":"user","content":"h\u00e9"}],"x_custom":{"a":[1,2]},"max_completion_tokens":5}"#;
        let r = ChatRequest::parse(b).unwrap_or_else(|e| unreachable!("{e}"));
        let out = r.body.write(
            b.len(),
            |k| match k {
                "model" => Edit::Replace("\"upstream\"".into()),
                "max_completion_tokens" => Edit::Rename("max_tokens"),
                _ => Edit::Keep,
            },
            &[("stream_options", r#"{"include_usage":true}"#)],
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"model":"upstream","messages":[{"role":"user","content":"h\u00e9"}],"x_custom":{"a":[1,2]},"max_tokens":5,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn completion_prompts_are_strings() {
        let prompts = |body: &str| CompletionRequest::parse(body.as_bytes()).map(|r| r.prompts);
        let invalid = |param: &'static str, message: &str| {
            Err::<Vec<String>, _>(RequestError::InvalidField { param, message: message.into() })
        };
        let tokens = "`prompt` as token ids is not supported: send the text, as a string or an array of strings \
                      (token ids mean something only to the tokenizer of one model)";
        let shape = "`prompt` must be a string or an array of strings";
        let cases: &[(&str, Result<Vec<String>, RequestError>)] = &[
            (r#"{"model":"m","prompt":"Say \"hi\""}"#, Ok(vec!["Say \"hi\"".into()])),
            (r#"{"model":"m","prompt":["a","b"]}"#, Ok(vec!["a".into(), "b".into()])),
            (r#"{"model":"m","prompt":""}"#, Ok(vec![String::new()])),
            (r#"{"model":"m"}"#, invalid("prompt", "`prompt` is required")),
            (r#"{"model":"m","prompt":null}"#, invalid("prompt", "`prompt` is required")),
            (r#"{"model":"m","prompt":[]}"#, invalid("prompt", "`prompt` must contain at least one string")),
            (r#"{"model":"m","prompt":[1,2,3]}"#, invalid("prompt", tokens)),
            (r#"{"model":"m","prompt":[[1,2],[3]]}"#, invalid("prompt", tokens)),
            (r#"{"model":"m","prompt":["a",[1]]}"#, invalid("prompt", tokens)),
            (r#"{"model":"m","prompt":5}"#, invalid("prompt", shape)),
            (r#"{"model":"m","prompt":{"text":"a"}}"#, invalid("prompt", shape)),
            (r#"{"model":"m","prompt":[true]}"#, invalid("prompt", shape)),
            (r#"{"prompt":"a"}"#, invalid("model", "`model` is required")),
            (
                r#"{"model":"m","prompt":"a","stream_options":{"include_usage":true}}"#,
                invalid("stream_options", "`stream_options` is only allowed when `stream` is true"),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(&prompts(body), want, "{body}");
        }
        let r = CompletionRequest::parse(
            br#"{"model":"m","prompt":"a","stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(r.stream && r.include_usage);
    }

    #[test]
    fn count_tokens_bodies_need_no_max_tokens() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert!(MessagesRequest::parse_count(body).is_ok());
        assert!(matches!(MessagesRequest::parse(body), Err(RequestError::InvalidField { param: "max_tokens", .. })));
        let empty = br#"{"model":"m","messages":[]}"#;
        assert!(matches!(
            MessagesRequest::parse_count(empty),
            Err(RequestError::InvalidField { param: "messages", .. })
        ));
    }

    #[test]
    fn embeddings_validation() {
        let ok = EmbeddingsRequest::parse(br#"{"model":"e","input":["a","b"]}"#);
        assert!(ok.is_ok());
        for body in [r#"{"model":"e"}"#, r#"{"model":"e","input":null}"#, r#"{"model":"e","input":5}"#] {
            assert!(
                matches!(
                    EmbeddingsRequest::parse(body.as_bytes()),
                    Err(RequestError::InvalidField { param: "input", .. })
                ),
                "{body}"
            );
        }
    }
}
