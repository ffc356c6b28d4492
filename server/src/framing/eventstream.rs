//! AWS eventstream (`application/vnd.amazon.eventstream`), the binary framing of Bedrock's `ConverseStream` and
//! `InvokeModelWithResponseStream` (Smithy's "Amazon Event Stream Specification"; /work/shared/providers.md 5.6).
//!
//! A message is `total_len: u32 BE | headers_len: u32 BE | prelude_crc: u32 BE | headers | payload |
//! message_crc: u32 BE`, where `prelude_crc` is the CRC-32 (IEEE, as zlib and gzip) of the first 8 bytes and
//! `message_crc` the CRC-32 of everything before it. Both are checked; a mismatch, an impossible length or a
//! malformed header is a [`FrameError`], and the decoder then stays broken (every later call returns the same
//! error), because after a bad length nothing can tell where the next message starts.
//!
//! Each message becomes one [`Frame`], by its `:message-type` header:
//! - `event` → `event: Some(<:event-type>)`, `data`: the payload (JSON for Bedrock).
//! - `exception` (a modelled error, e.g. a throttling mid-stream) → `event: Some("exception:<:exception-type>")`,
//!   `data`: the payload (`{"message":..}`). The `exception:` prefix cannot clash with an event name, which is a
//!   plain identifier.
//! - `error` (an unmodelled error, which has no meaningful payload) → `event: Some("error:<:error-code>")`, `data`:
//!   `{"message": <:error-message>}` as JSON, so decoders read both kinds of failure the same way.
//!
//! Work is linear in the bytes fed: each byte is copied into the buffer once and each message is checked once,
//! when all of it has arrived. Memory is bounded by [`MAX_MESSAGE_LEN`]: a prelude announcing a longer message is
//! refused before its bytes are waited for.

use bytes::{Buf, Bytes, BytesMut};

use super::{Frame, FrameError};

/// The prelude: total length, headers length, prelude CRC.
const PRELUDE_LEN: usize = 12;
/// Prelude plus the trailing message CRC: a message with no headers and no payload.
const MIN_MESSAGE_LEN: usize = 16;
/// The specification's limits, which botocore enforces too: 128 KiB of encoded headers, 24 MiB of payload.
const MAX_HEADERS_LEN: usize = 128 * 1024;
const MAX_PAYLOAD_LEN: usize = 24 * 1024 * 1024;
/// The longest message accepted (the largest headers and payload the limits allow).
pub const MAX_MESSAGE_LEN: usize = MIN_MESSAGE_LEN + MAX_HEADERS_LEN + MAX_PAYLOAD_LEN;

#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
    /// Set by the first framing error; the stream cannot be read past it.
    broken: Option<FrameError>,
}

impl EventStreamDecoder {
    /// Bytes fed that no whole frame has taken yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.broken.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next whole message as a frame, `None` until all of its bytes have arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        match self.try_next() {
            Ok(frame) => Ok(frame),
            Err(e) => {
                self.buf.clear();
                self.broken = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The stream ended: an error if bytes of an unfinished message are left (the stream was cut mid-message).
    /// Messages still buffered whole are returned one per call, like [`EventStreamDecoder::next_frame`].
    pub fn finish(&mut self) -> Result<Option<Frame>, FrameError> {
        match self.next_frame()? {
            Some(frame) => Ok(Some(frame)),
            None if self.buf.is_empty() => Ok(None),
            None => {
                let e = FrameError(format!(
                    "the stream ended in the middle of an eventstream message ({} bytes of it arrived)",
                    self.buf.len()
                ));
                self.buf.clear();
                self.broken = Some(e.clone());
                Err(e)
            }
        }
    }

    fn try_next(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let total = be_u32(&self.buf[0..4]) as usize;
        let headers_len = be_u32(&self.buf[4..8]) as usize;
        let prelude_crc = be_u32(&self.buf[8..12]);
        if crc32(&self.buf[0..8]) != prelude_crc {
            return Err(FrameError("eventstream prelude CRC mismatch".into()));
        }
        if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&total) {
            return Err(FrameError(format!("eventstream message length {total} is out of range")));
        }
        if headers_len > MAX_HEADERS_LEN || headers_len > total - MIN_MESSAGE_LEN {
            return Err(FrameError(format!("eventstream headers length {headers_len} does not fit the message")));
        }
        if self.buf.len() < total {
            // Reserve once for the whole message, so a large one trickling in is not reallocated repeatedly.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let message_crc = be_u32(&self.buf[total - 4..total]);
        if crc32(&self.buf[..total - 4]) != message_crc {
            return Err(FrameError("eventstream message CRC mismatch".into()));
        }
        let mut message = self.buf.split_to(total).freeze();
        message.advance(PRELUDE_LEN);
        let headers = message.split_to(headers_len);
        message.truncate(message.len() - 4);
        frame_of(&Headers::parse(&headers)?, message).map(Some)
    }
}

/// The headers that say what a message is; any other header is skipped.
#[derive(Default)]
struct Headers {
    message_type: Option<String>,
    event_type: Option<String>,
    exception_type: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
}

impl Headers {
    fn parse(mut raw: &[u8]) -> Result<Self, FrameError> {
        let short = || FrameError("eventstream header runs past the headers block".into());
        let mut out = Self::default();
        while !raw.is_empty() {
            let (&name_len, rest) = raw.split_first().ok_or_else(short)?;
            let name_len = usize::from(name_len);
            if name_len == 0 || rest.len() < name_len + 1 {
                return Err(short());
            }
            let (name, rest) = rest.split_at(name_len);
            let (&kind, rest) = rest.split_first().ok_or_else(short)?;
            let value_len = match kind {
                // bool true, bool false: no value bytes.
                0 | 1 => 0,
                2 => 1,
                3 => 2,
                4 => 4,
                5 | 8 => 8,
                9 => 16,
                // byte array and string: u16 BE length, then the bytes.
                6 | 7 => {
                    if rest.len() < 2 {
                        return Err(short());
                    }
                    2 + usize::from(u16::from_be_bytes([rest[0], rest[1]]))
                }
                other => return Err(FrameError(format!("eventstream header of unknown type {other}"))),
            };
            if rest.len() < value_len {
                return Err(short());
            }
            let (value, rest) = rest.split_at(value_len);
            raw = rest;
            let slot = match name {
                b":message-type" => &mut out.message_type,
                b":event-type" => &mut out.event_type,
                b":exception-type" => &mut out.exception_type,
                b":error-code" => &mut out.error_code,
                b":error-message" => &mut out.error_message,
                _ => continue,
            };
            if kind != 7 {
                return Err(FrameError(format!(
                    "eventstream header {} is not a string",
                    String::from_utf8_lossy(name)
                )));
            }
            if slot.is_some() {
                return Err(FrameError(format!("eventstream header {} repeated", String::from_utf8_lossy(name))));
            }
            let text = std::str::from_utf8(&value[2..]).map_err(|_| {
                FrameError(format!("eventstream header {} is not UTF-8", String::from_utf8_lossy(name)))
            })?;
            *slot = Some(text.to_owned());
        }
        Ok(out)
    }
}

fn frame_of(headers: &Headers, payload: Bytes) -> Result<Frame, FrameError> {
    let missing = |name: &str| FrameError(format!("eventstream message without the {name} header"));
    match headers.message_type.as_deref() {
        // The specification requires `:message-type`; a message without one is read as an event.
        Some("event") | None => {
            let event = headers.event_type.clone().ok_or_else(|| missing(":event-type"))?;
            Ok(Frame { event: Some(event), data: payload })
        }
        Some("exception") => {
            let kind = headers.exception_type.as_deref().ok_or_else(|| missing(":exception-type"))?;
            Ok(Frame { event: Some(format!("exception:{kind}")), data: payload })
        }
        Some("error") => {
            let code = headers.error_code.as_deref().ok_or_else(|| missing(":error-code"))?;
            let message = headers.error_message.as_deref().unwrap_or_default();
            let data = serde_json::json!({ "message": message }).to_string();
            Ok(Frame { event: Some(format!("error:{code}")), data: Bytes::from(data) })
        }
        Some(other) => Err(FrameError(format!("eventstream message of unknown type {other:?}"))),
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// CRC-32 with the IEEE 802.3 polynomial (reflected 0xEDB88320), as zlib, gzip and AWS compute it.
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8))
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Builds eventstream messages, for fixtures in tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::crc32;

    /// One message with string headers (type 7) and `payload`.
    pub(crate) fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut encoded = Vec::new();
        for (name, value) in headers {
            encoded.push(name.len() as u8);
            encoded.extend_from_slice(name.as_bytes());
            encoded.push(7);
            encoded.extend_from_slice(&(value.len() as u16).to_be_bytes());
            encoded.extend_from_slice(value.as_bytes());
        }
        raw_message(&encoded, payload)
    }

    /// One message with already encoded headers.
    pub(crate) fn raw_message(headers: &[u8], payload: &[u8]) -> Vec<u8> {
        let total = (16 + headers.len() + payload.len()) as u32;
        let mut out = Vec::with_capacity(total as usize);
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let prelude_crc = crc32(&out);
        out.extend_from_slice(&prelude_crc.to_be_bytes());
        out.extend_from_slice(headers);
        out.extend_from_slice(payload);
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// An event message as Bedrock sends it.
    pub(crate) fn event(event_type: &str, payload: &str) -> Vec<u8> {
        message(
            &[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
            payload.as_bytes(),
        )
    }

    /// A modelled exception message as Bedrock sends it.
    pub(crate) fn exception(exception_type: &str, payload: &str) -> Vec<u8> {
        message(
            &[
                (":exception-type", exception_type),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            payload.as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{testing::*, *};

    /// Feeds `chunks` and collects frames (as `event|data`) and a final `<error>` if framing fails.
    fn frames(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = EventStreamDecoder::default();
        let mut out = Vec::new();
        let show = |f: Frame| format!("{}|{}", f.event.unwrap_or_default(), String::from_utf8_lossy(&f.data));
        for chunk in chunks {
            d.feed(chunk);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => out.push(show(f)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(format!("<error> {e}"));
                        return out;
                    }
                }
            }
        }
        loop {
            match d.finish() {
                Ok(Some(f)) => out.push(show(f)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(format!("<error> {e}"));
                    return out;
                }
            }
        }
    }

    fn fixture() -> Vec<u8> {
        [
            event("messageStart", r#"{"p":"abcd","role":"assistant"}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hel"},"p":"ab"}"#),
            raw_message(&every_header_type(), br#"{"contentBlockIndex":0}"#),
            event("messageStop", r#"{"stopReason":"end_turn"}"#),
            exception("throttlingException", r#"{"message":"slow down"}"#),
        ]
        .concat()
    }

    /// Headers of every type (the string one is `:event-type`), which the decoder must skip by their sizes.
    fn every_header_type() -> Vec<u8> {
        let mut h = Vec::new();
        let mut header = |name: &str, kind: u8, value: &[u8]| {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(kind);
            h.extend_from_slice(value);
        };
        header("t", 0, &[]);
        header("f", 1, &[]);
        header("byte", 2, &[0xFF]);
        header("short", 3, &[1, 2]);
        header("int", 4, &[1, 2, 3, 4]);
        header("long", 5, &[1; 8]);
        header("bytes", 6, &[0, 3, 0xC3, 0x28, 0xFF]);
        header(":event-type", 7, &[&16u16.to_be_bytes()[..], b"contentBlockStop"].concat());
        header("timestamp", 8, &[0; 8]);
        header("uuid", 9, &[7; 16]);
        h
    }

    const WANT: [&str; 5] = [
        r#"messageStart|{"p":"abcd","role":"assistant"}"#,
        r#"contentBlockDelta|{"contentBlockIndex":0,"delta":{"text":"Hel"},"p":"ab"}"#,
        r#"contentBlockStop|{"contentBlockIndex":0}"#,
        r#"messageStop|{"stopReason":"end_turn"}"#,
        r#"exception:throttlingException|{"message":"slow down"}"#,
    ];

    #[test]
    fn crc32_is_the_ieee_checksum() {
        // The standard check value of CRC-32/ISO-HDLC, and the empty input.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn decodes_a_published_aws_message() {
        // The `{'foo':'bar'}` message of AWS's own eventstream test suite (aws-c-event-stream): one string header
        // `content-type`, and CRCs computed by AWS.
        let bytes: &[u8] = &[
            0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96, 0x0C, b'c', b'o', b'n', b't', b'e',
            b'n', b't', b'-', b't', b'y', b'p', b'e', 0x07, 0x00, 0x10, b'a', b'p', b'p', b'l', b'i', b'c', b'a', b't',
            b'i', b'o', b'n', b'/', b'j', b's', b'o', b'n', b'{', b'\'', b'f', b'o', b'o', b'\'', b':', b'\'', b'b',
            b'a', b'r', b'\'', b'}', 0x8D, 0x9C, 0x08, 0xB1,
        ];
        // Not an event Bedrock would send (no `:event-type`), but its CRCs and lengths are AWS's own.
        assert_eq!(frames(&[bytes]), ["<error> eventstream message without the :event-type header"]);
        let with_type = message(&[(":event-type", "x")], b"{'foo':'bar'}");
        assert_eq!(frames(&[&with_type]), ["x|{'foo':'bar'}"]);
    }

    #[test]
    fn every_split_of_a_multi_message_stream_gives_the_same_frames() {
        let bytes = fixture();
        assert_eq!(frames(&[&bytes]), WANT);
        for cut in 0..=bytes.len() {
            assert_eq!(frames(&[&bytes[..cut], &bytes[cut..]]), WANT, "cut at {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(frames(&singles), WANT);
        for seed in 1..50u64 {
            let chunks = random_split(&bytes, seed);
            assert_eq!(frames(&chunks), WANT, "seed {seed}");
        }
    }

    #[test]
    fn corruption_and_truncation_are_errors() {
        let bytes = fixture();
        let first = event("messageStart", r#"{"role":"assistant"}"#);
        // Flip each byte of the first message in turn: whichever field it lands in, decoding must not go on as if
        // nothing happened (a flipped payload or header byte breaks the message CRC, a flipped length the prelude).
        for i in 0..first.len() {
            let mut broken = bytes.clone();
            broken[i] ^= 0x20;
            let got = frames(&[&broken]);
            assert!(got.first().is_some_and(|f| f.starts_with("<error>")), "flip at {i}: {got:?}");
        }
        // A bad CRC in the middle of the stream: frames before it come out, then the error, then nothing.
        let mut middle = bytes.clone();
        let second_end = first.len()
            + event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hel"},"p":"ab"}"#).len();
        middle[second_end - 1] ^= 1;
        let got = frames(&[&middle]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1], "<error> eventstream message CRC mismatch");
        // Cut at every point inside a message: the frames before it, then an error at the end.
        for cut in 1..first.len() {
            let got = frames(&[&bytes[..cut]]);
            assert_eq!(got.len(), 1, "cut at {cut}: {got:?}");
            assert!(got[0].starts_with("<error> the stream ended in the middle"), "cut at {cut}: {got:?}");
        }
        assert!(frames(&[b""]).is_empty());
    }

    #[test]
    fn impossible_lengths_and_headers_are_errors() {
        let prelude = |total: u32, headers: u32| {
            let mut p = [total.to_be_bytes(), headers.to_be_bytes()].concat();
            let crc = crc32(&p);
            p.extend_from_slice(&crc.to_be_bytes());
            p
        };
        let cases: &[(Vec<u8>, &str)] = &[
            (prelude(15, 0), "<error> eventstream message length 15 is out of range"),
            (prelude(u32::MAX, 0), "<error> eventstream message length 4294967295 is out of range"),
            (prelude(20, 5), "<error> eventstream headers length 5 does not fit the message"),
            (raw_message(&[3, b'a', b'b'], b""), "<error> eventstream header runs past the headers block"),
            (raw_message(&[1, b'a', 42], b""), "<error> eventstream header of unknown type 42"),
            (raw_message(&[1, b'a', 7, 0, 9, b'x'], b""), "<error> eventstream header runs past the headers block"),
            (raw_message(&[0, 0], b""), "<error> eventstream header runs past the headers block"),
            (
                message(&[(":event-type", "a"), (":event-type", "b")], b""),
                "<error> eventstream header :event-type repeated",
            ),
            (
                raw_message(
                    &[11, b':', b'e', b'v', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', 4, 0, 0, 0, 1],
                    b"",
                ),
                "<error> eventstream header :event-type is not a string",
            ),
            (
                message(&[(":message-type", "surprise")], b""),
                "<error> eventstream message of unknown type \"surprise\"",
            ),
            (
                message(&[(":message-type", "exception")], b""),
                "<error> eventstream message without the :exception-type header",
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(frames(&[bytes]), [*want], "{bytes:?}");
        }
    }

    #[test]
    fn unmodelled_errors_carry_their_message_as_json() {
        let bytes = message(
            &[(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "it \"broke\"")],
            b"",
        );
        assert_eq!(frames(&[&bytes]), [r#"error:InternalFailure|{"message":"it \"broke\""}"#]);
    }

    #[test]
    fn a_broken_decoder_stays_broken() {
        let mut d = EventStreamDecoder::default();
        let mut bad = event("a", "{}");
        bad[13] ^= 1;
        d.feed(&bad);
        assert!(d.next_frame().is_err());
        d.feed(&event("b", "{}"));
        assert!(d.next_frame().is_err());
        assert!(d.finish().is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..2000 {
            let len = (xorshift(&mut state) % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            // Half the rounds start with a valid prelude, so the header and CRC paths are reached too.
            if round % 2 == 0 && len >= 12 {
                let total = (len as u32).to_be_bytes();
                bytes[..4].copy_from_slice(&total);
                let hl = (xorshift(&mut state) % (len as u64)) as u32;
                bytes[4..8].copy_from_slice(&hl.to_be_bytes());
                let crc = crc32(&bytes[..8]);
                bytes[8..12].copy_from_slice(&crc.to_be_bytes());
                if round % 4 == 0 {
                    let crc = crc32(&bytes[..len - 4]);
                    bytes[len - 4..].copy_from_slice(&crc.to_be_bytes());
                }
            }
            let chunks = random_split(&bytes, round);
            let _ = frames(&chunks);
        }
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// `bytes` cut at a few pseudo-random points.
    fn random_split(bytes: &[u8], seed: u64) -> Vec<&[u8]> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut cuts: Vec<usize> = (0..5).map(|_| (xorshift(&mut state) % (bytes.len() as u64 + 1)) as usize).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut from = 0;
        for cut in cuts {
            out.push(&bytes[from..cut]);
            from = cut;
        }
        out.push(&bytes[from..]);
        out
    }
}
