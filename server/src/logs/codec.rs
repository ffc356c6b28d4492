//! The journal's record encoding: a [`LogRecord`] as compact binary, field by field in declaration order. Numbers
//! are LEB128 varints (signed ones zigzagged), strings a length and UTF-8 bytes, options a 0/1 tag, lists a count.
//! The first byte is the encoding's version; every version still decodes (version 1 lacks `overhead_us`).
//!
//! Why not JSON (the journal's first format, still read: `journal`): decoding 33 named fields made the log
//! writer match every key by string, and the request path escaped every string; this is a copy per field.
//!
//! Hostile input: a journal file is ours, but a disk can corrupt it; decoding checks every length against what is
//! left, validates UTF-8 and fails with an error, never a panic (fuzzed: `fuzz_targets/journal_record.rs`).

use super::LogRecord;
use crate::trace_context::SpanIds;

pub const VERSION: u8 = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("journal record of unknown encoding version {0}")]
    Version(u8),
    #[error("journal record cut short")]
    Short,
    #[error("journal record holds a number out of range")]
    Range,
    #[error("journal record holds text that is not UTF-8")]
    Utf8,
    #[error("journal record has {0} bytes after its last field")]
    Trailing(usize),
}

/// Appends `v` as an unsigned LEB128 varint (protobuf's varint too: `callback::otlp` writes with it).
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u(&mut self, v: u64) {
        varint(self.0, v);
    }

    fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }

    fn b(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }

    fn s(&mut self, v: &str) {
        self.u(v.len() as u64);
        self.0.extend_from_slice(v.as_bytes());
    }

    fn os(&mut self, v: &Option<String>) {
        self.b(v.is_some());
        if let Some(v) = v {
            self.s(v);
        }
    }

    fn ou(&mut self, v: Option<u64>) {
        self.b(v.is_some());
        if let Some(v) = v {
            self.u(v);
        }
    }

    fn oi(&mut self, v: Option<i64>) {
        self.b(v.is_some());
        if let Some(v) = v {
            self.i(v);
        }
    }

    fn list(&mut self, v: &[String]) {
        self.u(v.len() as u64);
        for s in v {
            self.s(s);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let (&first, rest) = self.0.split_first().ok_or(CodecError::Short)?;
        self.0 = rest;
        Ok(first)
    }

    fn u(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let part = u64::from(byte & 0x7f);
            if shift == 63 && part > 1 {
                return Err(CodecError::Range);
            }
            v |= part << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Range)
    }

    fn i(&mut self) -> Result<i64, CodecError> {
        let v = self.u()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        u32::try_from(self.u()?).map_err(|_| CodecError::Range)
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        u16::try_from(self.u()?).map_err(|_| CodecError::Range)
    }

    fn b(&mut self) -> Result<bool, CodecError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::Range),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8], CodecError> {
        if n > self.0.len() {
            return Err(CodecError::Short);
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn s(&mut self) -> Result<String, CodecError> {
        let n = usize::try_from(self.u()?).map_err(|_| CodecError::Range)?;
        let bytes = self.bytes(n)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| CodecError::Utf8)
    }

    fn os(&mut self) -> Result<Option<String>, CodecError> {
        self.b()?.then(|| self.s()).transpose()
    }

    fn ou(&mut self) -> Result<Option<u64>, CodecError> {
        self.b()?.then(|| self.u()).transpose()
    }

    fn oi(&mut self) -> Result<Option<i64>, CodecError> {
        self.b()?.then(|| self.i()).transpose()
    }

    /// A count of items each at least one byte long: never more than the bytes left (no huge preallocation).
    fn count(&mut self) -> Result<usize, CodecError> {
        let n = usize::try_from(self.u()?).map_err(|_| CodecError::Range)?;
        if n > self.0.len() {
            return Err(CodecError::Short);
        }
        Ok(n)
    }

    fn list(&mut self) -> Result<Vec<String>, CodecError> {
        let n = self.count()?;
        (0..n).map(|_| self.s()).collect()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        self.bytes(N)?.try_into().map_err(|_| CodecError::Short)
    }
}

/// Appends `record`'s encoding to `out`.
pub fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    // Destructured without `..`: a field added to `LogRecord` does not compile until it is encoded here.
    let LogRecord {
        request_id,
        started_at_ms,
        first_byte_at_ms,
        ended_at_ms,
        key_hash,
        key_alias,
        team_id,
        user_id,
        end_user,
        model_group,
        deployment,
        provider,
        api_base,
        route,
        streamed,
        status,
        error_class,
        error_message,
        prompt_tokens,
        completion_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        cost_nanos,
        accounting,
        attempts,
        fallback,
        tags,
        client_ip,
        budget_periods,
        response_model,
        finish_reasons,
        overhead_us,
        trace,
    } = record;
    out.push(VERSION);
    let mut w = Writer(out);
    w.s(request_id);
    w.i(*started_at_ms);
    w.oi(*first_byte_at_ms);
    w.i(*ended_at_ms);
    for v in [key_hash, key_alias, team_id, user_id, end_user] {
        w.os(v);
    }
    w.s(model_group);
    for v in [deployment, provider, api_base] {
        w.os(v);
    }
    w.s(route);
    w.b(*streamed);
    w.u(u64::from(*status));
    w.os(error_class);
    w.os(error_message);
    for v in [prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens] {
        w.u(*v);
    }
    w.ou(*cost_nanos);
    w.s(accounting);
    w.u(u64::from(*attempts));
    w.os(fallback);
    w.list(tags);
    w.os(client_ip);
    w.u(budget_periods.len() as u64);
    for (kind, start) in budget_periods {
        w.s(kind);
        w.i(*start);
    }
    w.os(response_model);
    w.list(finish_reasons);
    w.ou(*overhead_us);
    w.b(trace.is_some());
    if let Some(t) = trace {
        w.0.extend_from_slice(&t.trace_id);
        w.0.extend_from_slice(&t.span_id);
        w.b(t.parent_span_id.is_some());
        if let Some(parent) = &t.parent_span_id {
            w.0.extend_from_slice(parent);
        }
    }
}

/// The record `bytes` hold, all of them.
pub fn decode(bytes: &[u8]) -> Result<LogRecord, CodecError> {
    let mut r = Reader(bytes);
    let version = match r.byte()? {
        v @ 1..=VERSION => v,
        other => return Err(CodecError::Version(other)),
    };
    let record = LogRecord {
        request_id: r.s()?,
        started_at_ms: r.i()?,
        first_byte_at_ms: r.oi()?,
        ended_at_ms: r.i()?,
        key_hash: r.os()?,
        key_alias: r.os()?,
        team_id: r.os()?,
        user_id: r.os()?,
        end_user: r.os()?,
        model_group: r.s()?,
        deployment: r.os()?,
        provider: r.os()?,
        api_base: r.os()?,
        route: r.s()?,
        streamed: r.b()?,
        status: r.u16()?,
        error_class: r.os()?,
        error_message: r.os()?,
        prompt_tokens: r.u()?,
        completion_tokens: r.u()?,
        cache_read_tokens: r.u()?,
        cache_write_tokens: r.u()?,
        reasoning_tokens: r.u()?,
        cost_nanos: r.ou()?,
        accounting: r.s()?,
        attempts: r.u32()?,
        fallback: r.os()?,
        tags: r.list()?,
        client_ip: r.os()?,
        budget_periods: {
            let n = r.count()?;
            (0..n).map(|_| Ok((r.s()?, r.i()?))).collect::<Result<_, CodecError>>()?
        },
        response_model: r.os()?,
        finish_reasons: r.list()?,
        overhead_us: if version >= 2 { r.ou()? } else { None },
        trace: if r.b()? {
            let trace_id = r.array::<16>()?;
            let span_id = r.array::<8>()?;
            let parent_span_id = if r.b()? { Some(r.array::<8>()?) } else { None };
            Some(SpanIds { trace_id, span_id, parent_span_id })
        } else {
            None
        },
    };
    match r.0.len() {
        0 => Ok(record),
        n => Err(CodecError::Trailing(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> LogRecord {
        LogRecord {
            request_id: "019ad2f0-7c1e-7000-8000-000000000001".into(),
            started_at_ms: 1_764_500_000_000,
            first_byte_at_ms: Some(1_764_500_000_120),
            ended_at_ms: 1_764_500_000_500,
            key_hash: Some("ab".repeat(32)),
            key_alias: Some("ci ✓".into()),
            team_id: Some("team-1".into()),
            user_id: Some("u".into()),
            end_user: Some("".into()),
            model_group: "gpt-4o".into(),
            deployment: Some("gpt-4o#0".into()),
            provider: Some("openai".into()),
            api_base: Some("https://api.openai.com/v1".into()),
            route: "/v1/chat/completions".into(),
            streamed: true,
            status: 599,
            error_class: Some("stream_broken".into()),
            error_message: Some("line\nbreak \"quoted\"".into()),
            prompt_tokens: u64::MAX,
            completion_tokens: 0,
            cache_read_tokens: 127,
            cache_write_tokens: 128,
            reasoning_tokens: 16_384,
            cost_nanos: Some(0),
            accounting: "exact".into(),
            attempts: u32::MAX,
            fallback: Some("claude".into()),
            tags: vec!["a".into(), "".into(), "ü".into()],
            client_ip: Some("::1".into()),
            budget_periods: vec![("key".into(), i64::MIN), ("team".into(), -1)],
            response_model: Some("gpt-4o-2024-08-06".into()),
            finish_reasons: vec!["stop".into(), "length".into()],
            overhead_us: Some(312),
            trace: Some(SpanIds { trace_id: [7; 16], span_id: [9; 8], parent_span_id: Some([1; 8]) }),
        }
    }

    #[test]
    fn journal_records_round_trip_whatever_their_fields_hold() {
        let cases = [
            LogRecord::default(),
            full(),
            LogRecord { trace: Some(SpanIds { trace_id: [1; 16], span_id: [2; 8], parent_span_id: None }), ..full() },
            LogRecord { started_at_ms: i64::MIN, ended_at_ms: i64::MAX, first_byte_at_ms: Some(-5), ..full() },
            LogRecord { cost_nanos: None, first_byte_at_ms: None, trace: None, ..full() },
        ];
        for record in cases {
            let mut bytes = Vec::new();
            encode(&record, &mut bytes);
            assert_eq!(decode(&bytes), Ok(record.clone()), "{record:?}");
            // Every cut is an error, never a panic or a different record.
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            bytes.push(0);
            assert_eq!(decode(&bytes), Err(CodecError::Trailing(1)));
        }
    }

    #[test]
    fn version_1_records_still_decode_without_the_overhead() {
        // Version 1's layout is version 2's without `overhead_us` (between `finish_reasons` and `trace`).
        let record = LogRecord { overhead_us: None, ..full() };
        let mut v2 = Vec::new();
        encode(&record, &mut v2);
        // Version 2 wrote `overhead_us` as the tag 0 just before the trace: the trace is 1 + 16 + 8 + 1 + 8 bytes.
        let trace_len = 1 + 16 + 8 + 1 + 8;
        let at = v2.len() - trace_len - 1;
        assert_eq!(v2[at], 0);
        let v1 = [&[1u8][..], &v2[1..at], &v2[at + 1..]].concat();
        assert_eq!(decode(&v1), Ok(record));
    }

    #[test]
    fn journal_records_refuse_bad_bytes() {
        let cases: &[(&[u8], CodecError)] = &[
            (&[], CodecError::Short),
            (&[3], CodecError::Version(3)),
            (&[0], CodecError::Version(0)),
            // request_id of 5 bytes, 1 present.
            (&[1, 5, b'a'], CodecError::Short),
            (&[1, 2, 0xff, 0xfe], CodecError::Utf8),
            // A varint of 11 bytes.
            (&[1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], CodecError::Range),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode(bytes).err().as_ref(), Some(want), "{bytes:?}");
        }
        // A list claiming more items than bytes are left is refused before anything is allocated for it.
        let mut bytes = Vec::new();
        encode(&LogRecord::default(), &mut bytes);
        const TAGS_COUNT_AT: usize = 28;
        assert_eq!(bytes[TAGS_COUNT_AT], 0);
        let huge = [&bytes[..TAGS_COUNT_AT], &[0xff, 0xff, 0xff, 0xff, 0x0f][..], &bytes[TAGS_COUNT_AT + 1..]].concat();
        assert_eq!(decode(&huge), Err(CodecError::Short));
    }
}
