//! Incremental Server-Sent Events framing: splits a byte stream into whole events without copying them, and
//! reads an event's `data`. Accepts `\n` and `\r\n` line endings, comment lines and `event:` lines.

use bytes::{Bytes, BytesMut};

use super::Frame;

#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    /// Where the next unscanned line starts, so a slow trickle of bytes is not rescanned from the beginning.
    scan_from: usize,
}

impl SseDecoder {
    /// Bytes fed that no whole frame has taken yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, terminator included.
    pub fn next_event(&mut self) -> Option<Bytes> {
        loop {
            let nl = self.buf[self.scan_from..].iter().position(|&b| b == b'\n')? + self.scan_from;
            let line = &self.buf[self.scan_from..nl];
            let blank = line.is_empty() || line == b"\r";
            self.scan_from = nl + 1;
            if !blank {
                continue;
            }
            let event = self.buf.split_to(nl + 1).freeze();
            self.scan_from = 0;
            // Blank lines between events are not events.
            if event.iter().all(|&b| b == b'\n' || b == b'\r') {
                continue;
            }
            return Some(event);
        }
    }

    /// Whatever is left when the stream ends: an event the upstream did not terminate with a blank line.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scan_from = 0;
        let rest = self.buf.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// The event's data: its `data:` lines joined by `\n`, or `None` for comment-only or data-less events.
pub fn event_data(event: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let mut lines = event
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter_map(|l| l.strip_prefix(b"data:"))
        .map(|d| d.strip_prefix(b" ").unwrap_or(d));
    let first = lines.next()?;
    match lines.next() {
        None => Some(std::borrow::Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = [first, second].join(&b'\n');
            for more in lines {
                joined.push(b'\n');
                joined.extend_from_slice(more);
            }
            Some(std::borrow::Cow::Owned(joined))
        }
    }
}

/// An event as a [`Frame`]: its `event:` name and its data, or `None` for comment-only or data-less events.
pub fn frame_of(event: &[u8]) -> Option<Frame> {
    let data = event_data(event)?;
    let name = event
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find_map(|l| l.strip_prefix(b"event:"))
        .map(|n| String::from_utf8_lossy(n.strip_prefix(b" ").unwrap_or(n)).into_owned());
    Some(Frame { event: name, data: Bytes::copy_from_slice(&data) })
}

/// Data that is `[DONE]` or a complete JSON document: an unterminated last event that is nevertheless whole.
pub fn data_is_whole(data: &[u8]) -> bool {
    data == b"[DONE]" || serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<String> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c.as_bytes());
            while let Some(e) = d.next_event() {
                out.push(String::from_utf8_lossy(&e).into_owned());
            }
        }
        if let Some(rest) = d.finish() {
            out.push(format!("<unterminated>{}", String::from_utf8_lossy(&rest)));
        }
        out
    }

    #[test]
    fn frames_events_across_any_chunking() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["data: a\n\ndata: b\n\n"], &["data: a\n\n", "data: b\n\n"]),
            (&["da", "ta: a\n", "\nda", "ta: b\n\n"], &["data: a\n\n", "data: b\n\n"]),
            (&["data: a\r\n\r\n"], &["data: a\r\n\r\n"]),
            (&[": keep-alive\n\n", "data: a\n\n"], &[": keep-alive\n\n", "data: a\n\n"]),
            (&["\n\ndata: a\n\n"], &["data: a\n\n"]),
            (&["event: x\ndata: a\n\n"], &["event: x\ndata: a\n\n"]),
            (&["data: a\n\ndata: [DONE]"], &["data: a\n\n", "<unterminated>data: [DONE]"]),
        ];
        for (chunks, want) in cases {
            assert_eq!(events(chunks), *want, "{chunks:?}");
        }
    }

    #[test]
    fn reads_data_lines() {
        let cases: &[(&str, Option<&str>)] = &[
            ("data: {\"a\":1}\n\n", Some("{\"a\":1}")),
            ("data:{\"a\":1}\r\n\r\n", Some("{\"a\":1}")),
            ("event: ping\ndata: x\n\n", Some("x")),
            ("data: a\ndata: b\ndata: c\n\n", Some("a\nb\nc")),
            (": comment\n\n", None),
            ("data: [DONE]\n\n", Some("[DONE]")),
        ];
        for (event, want) in cases {
            let got = event_data(event.as_bytes()).map(|d| String::from_utf8_lossy(&d).into_owned());
            assert_eq!(got.as_deref(), *want, "{event:?}");
        }
    }

    #[test]
    fn frames_carry_event_names() {
        let cases: &[(&str, Option<(Option<&str>, &str)>)] = &[
            ("event: ping\ndata: {}\n\n", Some((Some("ping"), "{}"))),
            ("event:message_stop\r\ndata: {\"a\":1}\r\n\r\n", Some((Some("message_stop"), "{\"a\":1}"))),
            ("data: x\n\n", Some((None, "x"))),
            ("event: ping\n\n", None),
        ];
        for (event, want) in cases {
            let got = frame_of(event.as_bytes());
            let got = got.as_ref().map(|f| (f.event.as_deref(), std::str::from_utf8(&f.data).unwrap_or("?")));
            assert_eq!(got, *want, "{event:?}");
        }
    }
}
