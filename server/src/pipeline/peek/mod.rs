//! What the relays read of OpenAI-shaped response bodies and stream chunks: usage, the answering model, finish
//! reasons, and an `error` object hiding in a 2xx body. Everything else is skipped unparsed ([`skim`]); strings
//! are borrowed from the body where they need no unescaping.
//!
//! The reading is serde_json's, field for field, of the struct [`oracle::Peek`] (which the unit tests and the
//! `response_peek` fuzz target hold it to): a body that is not JSON, a duplicate field, or a field of the wrong
//! type gives no peek at all, as `serde_json::from_slice` would fail.

mod skim;

use std::borrow::Cow;

use serde::Deserialize;

use self::skim::{decode_escaped, Malformed, RawString, Skim};
use crate::{
    llm::Usage,
    providers::openai::reply::{CompletionDetails, PromptDetails, WireUsage},
};

#[derive(Debug, Default)]
pub struct Peek<'a> {
    usage: Option<WireUsage>,
    model: Option<Cow<'a, str>>,
    /// Each choice's `finish_reason`; `None` without a `choices` field (or with `null`).
    choices: Option<Vec<Option<Cow<'a, str>>>>,
    /// An `error` field other than `null`.
    error: bool,
    /// Groq put stream usage in `x_groq.usage` before it moved to the top level.
    x_groq_usage: Option<WireUsage>,
}

/// The top-level fields read.
const FIELDS: [&str; 5] = ["usage", "model", "choices", "error", "x_groq"];

impl<'a> Peek<'a> {
    pub fn parse(json: &'a [u8]) -> Option<Self> {
        let mut skim = Skim::new(json);
        if skim.peek() != Some(b'{') {
            // A struct from a JSON array (serde's sequence form) or not an object at all: rare enough for serde.
            return oracle::Peek::parse(json).map(Peek::from);
        }
        let mut peek = Peek::default();
        struct_fields(&mut skim, &FIELDS, |skim, field| {
            match field {
                0 => peek.usage = usage(skim)?,
                1 => peek.model = optional_string(skim)?,
                2 => peek.choices = choices(skim)?,
                3 => {
                    peek.error = !skim.null() && {
                        skim.value()?;
                        true
                    }
                }
                _ => peek.x_groq_usage = typed::<Option<oracle::GroqExtra>>(skim)?.and_then(|g| g.usage),
            }
            Ok(())
        })
        .ok()?;
        skim.end().ok()?;
        Some(peek)
    }

    /// The model the body or chunk names.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The finish reasons of the choices that finished here.
    pub fn finish_reasons(&self) -> impl Iterator<Item = &str> {
        self.choices.iter().flatten().filter_map(|c| c.as_deref())
    }

    /// Consumes the usage object (read once per body or chunk).
    pub fn take_usage(&mut self) -> Option<Usage> {
        self.usage.take().or_else(|| self.x_groq_usage.take()).map(Usage::from)
    }

    /// Some choice of this chunk finished.
    pub fn finishes(&self) -> bool {
        self.choices.iter().flatten().any(Option::is_some)
    }

    /// OpenAI's final `include_usage` chunk: empty `choices`, usage filled.
    pub fn is_usage_only(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_some_and(Vec::is_empty)
    }

    /// An `error` object and no choices: the upstream reported a failure inside a 2xx response.
    pub fn is_error(&self) -> bool {
        self.error && self.choices.as_ref().is_none_or(Vec::is_empty)
    }
}

/// Which of `names` `key` is, if any. A key is checked as UTF-8 as serde checks every key of a struct (an
/// unknown key too): ASCII first, the common case, without the decoder.
fn known_key(key: RawString<'_>, names: &[&str]) -> Result<Option<usize>, Malformed> {
    if key.escaped {
        let decoded = decode_escaped(key.raw).ok_or(Malformed)?;
        return Ok(names.iter().position(|n| *n == decoded));
    }
    if !key.raw.is_ascii() && std::str::from_utf8(key.raw).is_err() {
        return Err(Malformed);
    }
    Ok(names.iter().position(|n| n.as_bytes() == key.raw))
}

/// The value at the cursor, read by serde: a struct in serde's sequence form, and `x_groq`.
fn typed<T: for<'de> Deserialize<'de>>(skim: &mut Skim<'_>) -> Result<T, Malformed> {
    serde_json::from_slice(skim.value()?).map_err(|_| Malformed)
}

/// A string or `null`; a string without escapes is borrowed, after the UTF-8 check serde makes.
fn optional_string<'a>(skim: &mut Skim<'a>) -> Result<Option<Cow<'a, str>>, Malformed> {
    if skim.null() {
        return Ok(None);
    }
    let s = skim.string()?;
    if s.escaped {
        return decode_escaped(s.raw).map(|d| Some(Cow::Owned(d))).ok_or(Malformed);
    }
    std::str::from_utf8(s.raw).map(|s| Some(Cow::Borrowed(s))).map_err(|_| Malformed)
}

/// `usage` (and its two details objects): `null`, or an object of counts. Read by hand: through serde it was a
/// fifth of the whole reading.
fn usage(skim: &mut Skim<'_>) -> Result<Option<WireUsage>, Malformed> {
    const FIELDS: [&str; 6] = [
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "prompt_cache_hit_tokens",
        "cache_creation_input_tokens",
    ];
    optional_struct(skim, &FIELDS, |u: &mut WireUsage, skim, field| {
        match field {
            0 => u.prompt_tokens = count(skim)?,
            1 => u.completion_tokens = count(skim)?,
            2 => u.prompt_tokens_details = prompt_details(skim)?,
            3 => u.completion_tokens_details = completion_details(skim)?,
            4 => u.prompt_cache_hit_tokens = count(skim)?,
            _ => u.cache_creation_input_tokens = count(skim)?,
        }
        Ok(())
    })
}

fn prompt_details(skim: &mut Skim<'_>) -> Result<Option<PromptDetails>, Malformed> {
    optional_struct(skim, &["cached_tokens", "cache_write_tokens"], |d: &mut PromptDetails, skim, field| {
        match field {
            0 => d.cached_tokens = count(skim)?,
            _ => d.cache_write_tokens = count(skim)?,
        }
        Ok(())
    })
}

fn completion_details(skim: &mut Skim<'_>) -> Result<Option<CompletionDetails>, Malformed> {
    optional_struct(skim, &["reasoning_tokens"], |d: &mut CompletionDetails, skim, _| {
        d.reasoning_tokens = count(skim)?;
        Ok(())
    })
}

/// `null`, or a struct of `fields` read by `read` into its default ([`struct_fields`]); a struct written as an
/// array (serde's sequence form) goes to serde.
fn optional_struct<'a, T: Default + for<'de> Deserialize<'de>>(
    skim: &mut Skim<'a>,
    fields: &[&str],
    mut read: impl FnMut(&mut T, &mut Skim<'a>, usize) -> Result<(), Malformed>,
) -> Result<Option<T>, Malformed> {
    if skim.null() {
        return Ok(None);
    }
    if skim.peek() == Some(b'[') {
        return typed(skim);
    }
    let mut value = T::default();
    struct_fields(skim, fields, |skim, field| read(&mut value, skim, field))?;
    Ok(Some(value))
}

/// Walks an object of at most 8 known `fields` as serde's derive reads a struct: `read` gets each known one (by
/// index) once, a second occurrence is an error, other keys are skipped.
fn struct_fields<'a>(
    skim: &mut Skim<'a>,
    fields: &[&str],
    mut read: impl FnMut(&mut Skim<'a>, usize) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    let mut seen = 0u8;
    skim.object(|skim, key| {
        let Some(field) = known_key(key, fields)? else { return skim.value().map(drop) };
        if seen & (1 << field) != 0 {
            return Err(Malformed);
        }
        seen |= 1 << field;
        read(skim, field)
    })
}

/// A token count: `null`, or a JSON integer in u64's range. serde reads `-1`, `1.0`, `1e2` and integers past u64
/// as other types and refuses them for a u64, and so does this.
fn count(skim: &mut Skim<'_>) -> Result<Option<u64>, Malformed> {
    if skim.null() {
        return Ok(None);
    }
    let raw = skim.value()?;
    if raw.first().is_some_and(u8::is_ascii_digit) && raw.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(raw).ok().and_then(|d| d.parse().ok()).map(Some).ok_or(Malformed)
    } else {
        Err(Malformed)
    }
}

/// `choices`: `null`, or an array of choices, each an object (its `finish_reason`) or, as serde reads a struct,
/// an array of at most one element (the `finish_reason`).
fn choices<'a>(skim: &mut Skim<'a>) -> Result<Option<Vec<Option<Cow<'a, str>>>>, Malformed> {
    if skim.null() {
        return Ok(None);
    }
    let mut reasons = Vec::new();
    skim.array(|skim| {
        let mut reason = None;
        if skim.peek() == Some(b'[') {
            let mut elements = 0;
            skim.array(|skim| {
                elements += 1;
                if elements > 1 {
                    return Err(Malformed);
                }
                reason = optional_string(skim)?;
                Ok(())
            })?;
        } else {
            struct_fields(skim, &["finish_reason"], |skim, _| {
                reason = optional_string(skim)?;
                Ok(())
            })?;
        }
        reasons.push(reason);
        Ok(())
    })?;
    Ok(Some(reasons))
}

impl<'a> From<oracle::Peek<'a>> for Peek<'a> {
    fn from(p: oracle::Peek<'a>) -> Self {
        Peek {
            usage: p.usage,
            model: p.model,
            choices: p.choices.map(|cs| cs.into_iter().map(|c| c.finish_reason).collect()),
            error: p.error.is_some(),
            x_groq_usage: p.x_groq.and_then(|g| g.usage),
        }
    }
}

/// The same reading through serde's derive: the reference the skimming reader is held to, and its path for a
/// body that is a JSON array.
pub(crate) mod oracle {
    use std::borrow::Cow;

    use serde::Deserialize;

    use crate::providers::openai::reply::WireUsage;

    #[derive(Debug, Default, Deserialize)]
    pub struct Peek<'a> {
        #[serde(default)]
        pub usage: Option<WireUsage>,
        #[serde(default, borrow)]
        pub model: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub choices: Option<Vec<ChoicePeek<'a>>>,
        #[serde(default)]
        pub error: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        pub x_groq: Option<GroqExtra>,
    }

    #[derive(Debug, Default, Deserialize)]
    pub struct GroqExtra {
        #[serde(default)]
        pub usage: Option<WireUsage>,
    }

    #[derive(Debug, Default, Deserialize)]
    pub struct ChoicePeek<'a> {
        #[serde(default, borrow)]
        pub finish_reason: Option<Cow<'a, str>>,
    }

    impl<'a> Peek<'a> {
        pub fn parse(json: &'a [u8]) -> Option<Self> {
            serde_json::from_slice(json).ok()
        }
    }
}

/// Whether [`Peek::parse`] reads `json` as serde's derive does ([`oracle::Peek`]): the same peek or none, and
/// the same usage, model, finish reasons and verdicts from it.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn agrees_with_serde(json: &[u8]) -> Result<(), String> {
    type View = (Option<Usage>, Option<String>, Vec<String>, bool, bool, bool);
    fn view(p: Option<Peek<'_>>) -> Option<View> {
        let mut p = p?;
        let reasons = p.finish_reasons().map(str::to_owned).collect();
        let verdicts = (p.finishes(), p.is_usage_only(), p.is_error());
        Some((p.take_usage(), p.model().map(str::to_owned), reasons, verdicts.0, verdicts.1, verdicts.2))
    }
    let skimmed = view(Peek::parse(json));
    let derived = view(oracle::Peek::parse(json).map(Peek::from));
    if skimmed == derived {
        Ok(())
    } else {
        Err(format!("skimmed {skimmed:?}, serde {derived:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_serde_does_whatever_the_shape() {
        let cases: &[&[u8]] = &[
            br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi \"there\"\n"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15},"system_fingerprint":null}"#,
            b" \t\r\n{ \"model\" : \"m\" , \"choices\" : [ ] , \"usage\" : { \"prompt_tokens\" : 1 } } \n",
            // Duplicates: of a read field an error, of another field not.
            br#"{"model":"a","model":"b"}"#,
            br#"{"model":null,"model":"b"}"#,
            br#"{"other":1,"other":2,"model":"m"}"#,
            br#"{"choices":[{"finish_reason":"stop","finish_reason":"length"}]}"#,
            // Escaped keys and values; a lone surrogate; bad escapes.
            br#"{"mod\u0065l":"m\u00e9","choices":[{"finish_re\u0061son":"st\/op"}]}"#,
            br#"{"model":"\ud800"}"#,
            br#"{"x\ud800":1}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"model":"\uZZZZ"}"#,
            br#"{"model":"\q"}"#,
            // Invalid UTF-8 in an unknown key (serde checks every key), in an ignored value (it does not), in a
            // read value; a raw control character.
            b"{\"\xff\":1}",
            b"{\"a\":\"\xff\"}",
            b"{\"model\":\"\xff\"}",
            b"{\"model\":\"a\x01b\"}",
            b"{\"a\":\"a\x1fb\"}",
            // Types.
            br#"{"model":1}"#,
            br#"{"choices":{}}"#,
            br#"{"choices":null,"error":{"message":"x"}}"#,
            br#"{"choices":[],"error":null}"#,
            br#"{"error":[1,{"a":[true,false,null]}]}"#,
            br#"{"choices":[1]}"#,
            br#"{"choices":[[]]}"#,
            br#"{"choices":[["stop"]]}"#,
            br#"{"choices":[["stop",null]]}"#,
            br#"{"choices":[[null]],"usage":null}"#,
            br#"{"usage":{"prompt_tokens":-1}}"#,
            br#"{"usage":{"prompt_tokens":1.5}}"#,
            br#"{"usage":"x"}"#,
            br#"{"usage":{"prompt_tokens":-0}}"#,
            br#"{"usage":{"prompt_tokens":1e2}}"#,
            br#"{"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":0}}"#,
            br#"{"usage":{"prompt_tokens":18446744073709551616}}"#,
            br#"{"usage":{"prompt_tokens":true}}"#,
            br#"{"usage":{"prompt_tokens":"1"}}"#,
            br#"{"usage":{"prompt_tokens":1,"prompt_tokens":1}}"#,
            br#"{"usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":"x"}}"#,
            br#"{"usage":{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}}"#,
            br#"{"usage":{"prompt_tokens_details":[3,4],"completion_tokens_details":[5]}}"#,
            br#"{"usage":{"prompt_tokens_details":[3,4,5]}}"#,
            br#"{"usage":{"completion_tokens_details":{"reasoning_tokens":7,"x":[{}]},"prompt_cache_hit_tokens":2}}"#,
            br#"{"usage":{"cache_creation_input_tokens":3,"prompt_tokens_details":null,"completion_tokens_details":{}}}"#,
            br#"{"usage":[1,2,null,null,3,4]}"#,
            br#"{"usage":{"pr\u006fmpt_tokens":5}}"#,
            b"{\"usage\":{\"\xfe\":1}}",
            br#"{"x_groq":{"usage":{"prompt_tokens":4,"completion_tokens":5}},"choices":[{"delta":{}}]}"#,
            br#"{"x_groq":null}"#,
            br#"{"x_groq":[{"prompt_tokens":2}]}"#,
            // Grammar.
            br#"{"a":01}"#,
            br#"{"a":-0.5e+10,"b":1E2,"c":-0}"#,
            br#"{"a":1.}"#,
            br#"{"a":-}"#,
            br#"{"a":.5}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":1,}"#,
            br#"{"a" 1}"#,
            br#"{"a":[}"#,
            br#"{"a":{]}"#,
            br#"{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
            br#"{"a":tru}"#,
            br#"{"a":nulll}"#,
            br#"{"model":"m"} x"#,
            br#"{"model":"m"}}"#,
            br#"{"model":"m""#,
            b"",
            b"   ",
            b"null",
            b"\"s\"",
            // A struct from an array, as serde allows at the top.
            br#"[{"prompt_tokens":1,"completion_tokens":2},"m",[],null,null]"#,
            br#"[]"#,
        ];
        for json in cases {
            let agreed = agrees_with_serde(json);
            assert!(agreed.is_ok(), "{}: {agreed:?}", String::from_utf8_lossy(json));
        }
        // Agreeing because both read, not only because both refuse.
        let read = |json: &[u8]| Peek::parse(json).map(|p| p.model().map(str::to_owned));
        assert_eq!(read(br#"{"a":-0.5e+10,"b":1E2,"c":-0,"d":[[[]]],"model":"m"}"#), Some(Some("m".into())));
        assert_eq!(read(b"{\"a\":\"\xff\",\"model\":\"m\\u00e9\"}"), Some(Some("m\u{e9}".into())));
    }

    fn usage(prompt: u64, completion: u64, cache_read: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cache_read_tokens: cache_read,
            cache_write_tokens: 0,
            reasoning_tokens: reasoning,
        }
    }

    #[test]
    fn peeks_at_usage_in_every_position() {
        let cases: &[(&str, Option<Usage>, bool)] = &[
            (
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
                Some(usage(9, 2, 0, 0)),
                true,
            ),
            (r#"{"choices":[{"index":0,"delta":{}}],"usage":null}"#, None, false),
            (
                r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":1}}}"#,
                Some(usage(1, 1, 1, 0)),
                false,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":500,"completion_tokens_details":{"reasoning_tokens":448},"prompt_tokens_details":{"cached_tokens":null}}}"#,
                Some(usage(30, 500, 0, 448)),
                true,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":64,"completion_tokens":8,"prompt_cache_hit_tokens":32,"prompt_cache_miss_tokens":32}}"#,
                Some(usage(64, 8, 32, 0)),
                true,
            ),
            (
                r#"{"choices":[{"delta":{}}],"x_groq":{"id":"r","usage":{"prompt_tokens":4,"completion_tokens":5}}}"#,
                Some(usage(4, 5, 0, 0)),
                false,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":0,"prompt_tokens_details":null}}"#,
                Some(usage(3, 0, 0, 0)),
                true,
            ),
            // Cache writes, in the OpenAI SDK's newer field and in LiteLLM's: the same-dialect relays price them as
            // writes, not as plain input.
            (
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2,"cache_write_tokens":5}}}"#,
                Some(Usage { cache_write_tokens: 5, ..usage(9, 1, 2, 0) }),
                true,
            ),
            (
                r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"cache_creation_input_tokens":3}}"#,
                Some(Usage { cache_write_tokens: 3, ..usage(9, 1, 0, 0) }),
                true,
            ),
        ];
        for (json, want, usage_only) in cases {
            let mut p = Peek::parse(json.as_bytes()).unwrap_or_default();
            assert_eq!(p.is_usage_only(), *usage_only, "{json}");
            assert_eq!(p.take_usage(), *want, "{json}");
        }
    }

    #[test]
    fn recognises_errors_in_success_bodies() {
        let cases = [
            (r#"{"error":{"message":"overloaded","type":"server_error"}}"#, true),
            (r#"{"error":"boom","choices":[]}"#, true),
            (r#"{"choices":[{"message":{"content":"hi"}}],"error":null}"#, false),
            (r#"{"choices":[{"message":{"content":"hi"}}]}"#, false),
        ];
        for (json, want) in cases {
            assert_eq!(Peek::parse(json.as_bytes()).unwrap_or_default().is_error(), want, "{json}");
        }
    }

    #[test]
    fn reads_the_answering_model_and_finish_reasons_escaped_or_not() {
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            (
                r#"{"model":"gpt-4o-2024-08-06","choices":[{"finish_reason":"stop"}]}"#,
                Some("gpt-4o-2024-08-06"),
                &["stop"],
            ),
            (
                r#"{"model":"a\/b","choices":[{"finish_reason":null},{"finish_reason":"length"}]}"#,
                Some("a/b"),
                &["length"],
            ),
            (r#"{"choices":[{"delta":{"content":"x"}}]}"#, None, &[]),
        ];
        for (json, model, reasons) in cases {
            let p = Peek::parse(json.as_bytes()).unwrap_or_default();
            assert_eq!(p.model(), *model, "{json}");
            assert_eq!(p.finish_reasons().collect::<Vec<_>>(), *reasons, "{json}");
        }
    }
}
