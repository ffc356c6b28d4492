//! W3C Trace Context: the caller's `traceparent` / `tracestate`, validated, and tollgate's own span for a request
//! when spans are exported (the `otel` callback, `logs::callback::otlp`).
//!
//! Without export, upstream calls carry the caller's `traceparent` as it came, so a provider's spans join the
//! caller's trace directly. With export, tollgate's span is a child of the caller's (or the root of a new trace
//! when the caller sent none) and upstream calls name tollgate's span as their parent: caller → tollgate →
//! provider. The sampled flag is the caller's (parent-based sampling); a new trace is sampled.
//!
//! A leaf: pure parsing and formatting, no clock, no I/O; ids come from the caller.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `tracestate` longer than this is dropped (W3C: at most 32 members; 512 bytes is what a vendor must propagate).
pub const TRACESTATE_MAX: usize = 512;

/// A request's trace context, as its upstream calls forward it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent` as upstream calls carry it.
    pub traceparent: Arc<str>,
    pub tracestate: Option<Arc<str>>,
    /// tollgate's span for the request, when spans are exported.
    pub span: Option<SpanIds>,
    /// The caller's trace, parent span and flags, when it sent a valid `traceparent`.
    caller: Option<Parent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// tollgate's span of one request: what the exporter writes and what upstream calls name as their parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanIds {
    #[serde(with = "hex_bytes")]
    pub trace_id: [u8; 16],
    #[serde(with = "hex_bytes")]
    pub span_id: [u8; 8],
    /// The caller's span; `None` for a trace tollgate started.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_option")]
    pub parent_span_id: Option<[u8; 8]>,
}

const SAMPLED: u8 = 0x01;

impl TraceContext {
    /// The trace context of `traceparent` and `tracestate` header values; `None` when `traceparent` is not a
    /// valid W3C trace parent (version `00`'s layout, ids in lowercase hex and not all zeros; a later version may
    /// append fields; version `ff` is invalid). A bad `tracestate` is dropped, keeping the parent.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let t = traceparent.trim();
        let mut parts = t.split('-');
        let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let version = byte_array::<1>(version)?[0];
        let (trace_id, span_id, flags) = (byte_array::<16>(trace_id)?, byte_array::<8>(parent_id)?, flags);
        let flags = byte_array::<1>(flags)?[0];
        let valid = version != 0xff
            && (version != 0 || parts.next().is_none())
            && trace_id.iter().any(|&b| b != 0)
            && span_id.iter().any(|&b| b != 0);
        if !valid {
            return None;
        }
        let tracestate = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= TRACESTATE_MAX && s.bytes().all(|b| (0x20..0x7f).contains(&b)));
        Some(TraceContext {
            traceparent: Arc::from(t),
            tracestate: tracestate.map(Arc::from),
            span: None,
            caller: Some(Parent { trace_id, span_id, flags }),
        })
    }

    /// The context of a request whose span tollgate exports: a child of `caller`'s span, or, without a caller
    /// context, the root of the trace `new_trace_id`. `span_id` is the new span's (random, from the caller of
    /// this function); upstream calls get a `traceparent` naming it, with the caller's flags (version `00`).
    pub fn exported(caller: Option<TraceContext>, new_trace_id: [u8; 16], span_id: [u8; 8]) -> TraceContext {
        let span_id = nonzero(span_id);
        let (parent, tracestate) = match caller {
            Some(TraceContext { caller: Some(parent), tracestate, .. }) => (Some(parent), tracestate),
            _ => (None, None),
        };
        let (trace_id, flags) = parent.map_or((nonzero(new_trace_id), SAMPLED), |p| (p.trace_id, p.flags));
        let mut traceparent = String::with_capacity(55);
        traceparent.push_str("00-");
        crate::hex::push(&mut traceparent, &trace_id);
        traceparent.push('-');
        crate::hex::push(&mut traceparent, &span_id);
        traceparent.push('-');
        crate::hex::push(&mut traceparent, &[flags]);
        TraceContext {
            traceparent: Arc::from(traceparent),
            tracestate,
            span: Some(SpanIds { trace_id, span_id, parent_span_id: parent.map(|p| p.span_id) }),
            caller: parent,
        }
    }

    /// The span to export: tollgate's, unless the caller's trace is not sampled.
    pub fn sampled_span(&self) -> Option<SpanIds> {
        let sampled = self.caller.is_none_or(|p| p.flags & SAMPLED != 0);
        self.span.filter(|_| sampled)
    }
}

/// An all-zero id is invalid in W3C trace context; a random one is zero with probability 2^-64 or less.
fn nonzero<const N: usize>(mut id: [u8; N]) -> [u8; N] {
    if id.iter().all(|&b| b == 0) {
        id[N - 1] = 1;
    }
    id
}

/// Lowercase hex of exactly `2 * N` digits into bytes (W3C: uppercase is invalid).
fn byte_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = value(pair[0])? << 4 | value(pair[1])?;
    }
    Some(out)
}

/// Ids as lowercase hex strings in the journal (and in OTLP/JSON).
mod hex_bytes {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        byte_array::<N>(&text).ok_or_else(|| serde::de::Error::custom(format!("not {} hex digits", 2 * N)))
    }
}

mod hex_option {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(bytes: &Option<[u8; N]>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => hex_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<Option<[u8; N]>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        text.map(|t| byte_array::<N>(&t).ok_or_else(|| serde::de::Error::custom(format!("not {} hex digits", 2 * N))))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn trace_parents_are_forwarded_only_when_valid() {
        let cases: &[(&str, bool)] = &[
            (GOOD, true),
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", true),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", false),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", false),
            ("00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false),
            ("garbage", false),
        ];
        for (value, ok) in cases {
            assert_eq!(TraceContext::parse(value, None).is_some(), *ok, "{value}");
        }
        let with_state = TraceContext::parse(GOOD, Some("vendor=abc")).and_then(|t| t.tracestate);
        assert_eq!(with_state.as_deref(), Some("vendor=abc"));
        let long = "x".repeat(TRACESTATE_MAX + 1);
        assert_eq!(TraceContext::parse(GOOD, Some(&long)).map(|t| t.tracestate.is_none()), Some(true));
        assert_eq!(TraceContext::parse(GOOD, None).and_then(|t| t.span), None, "no span of tollgate's own");
    }

    #[test]
    fn an_exported_span_is_the_callers_child_and_the_upstreams_parent() {
        let span_id = [0xab; 8];
        // (caller's traceparent, traceparent sent upstream, parent span, exported)
        let cases: &[(Option<&str>, &str, Option<[u8; 8]>, bool)] = &[
            (
                Some(GOOD),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01",
                Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
                true,
            ),
            // Not sampled by the caller: the flag goes on upstream, the span is not exported.
            (
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-00",
                Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
                false,
            ),
            // A later version's extra fields are not passed on: tollgate speaks version 00.
            (
                Some("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01",
                Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
                true,
            ),
            (None, "00-11111111111111111111111111111111-abababababababab-01", None, true),
        ];
        for &(caller, upstream, parent, exported) in cases {
            let caller = caller.and_then(|c| TraceContext::parse(c, Some("k=v")));
            let had_caller = caller.is_some();
            let ctx = TraceContext::exported(caller, [0x11; 16], span_id);
            assert_eq!(&*ctx.traceparent, upstream);
            assert_eq!(
                TraceContext::parse(&ctx.traceparent, None).map(|t| t.traceparent),
                Some(ctx.traceparent.clone())
            );
            let span = ctx.span.unwrap_or_else(|| unreachable!("exported contexts have a span"));
            assert_eq!((span.span_id, span.parent_span_id), (span_id, parent));
            assert_eq!(ctx.sampled_span().is_some(), exported, "{upstream}");
            assert_eq!(ctx.tracestate.is_some(), had_caller, "tracestate travels with the caller's trace only");
        }
        let zero = TraceContext::exported(None, [0; 16], [0; 8]);
        assert_eq!(&*zero.traceparent, "00-00000000000000000000000000000001-0000000000000001-01");
    }

    #[test]
    fn span_ids_round_trip_through_the_journal_as_hex() {
        let span = SpanIds { trace_id: [0x4b; 16], span_id: [1, 2, 3, 4, 5, 6, 7, 8], parent_span_id: None };
        let text = serde_json::to_string(&span).unwrap_or_default();
        assert_eq!(text, r#"{"trace_id":"4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b","span_id":"0102030405060708"}"#);
        assert_eq!(serde_json::from_str::<SpanIds>(&text).ok(), Some(span));
        let child = SpanIds { parent_span_id: Some([9; 8]), ..span };
        let text = serde_json::to_string(&child).unwrap_or_default();
        assert_eq!(serde_json::from_str::<SpanIds>(&text).ok(), Some(child));
        assert!(serde_json::from_str::<SpanIds>(r#"{"trace_id":"zz","span_id":"0102030405060708"}"#).is_err());
    }
}
