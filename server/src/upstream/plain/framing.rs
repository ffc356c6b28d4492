//! How a response body is delimited (RFC 9112 section 6.3) and the decoder that cuts it out of the bytes read
//! from the connection. Pure: no I/O, fed from a buffer, so every framing rule has a table test and a fuzz target.

use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk-size line (size, extensions, CRLF) and trailer line accepted; a chunk size needs 16 hex
/// digits at most, so anything near this is an attack or garbage.
const MAX_LINE: usize = 4096;
/// Trailer bytes accepted after the last chunk (they are read and dropped).
const MAX_TRAILERS: usize = 64 * 1024;

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`: exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body is everything until the server closes the connection (the last rule of section 6.3).
    Close,
}

/// What the decoder made of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, in order.
    Data(Bytes),
    /// The body is complete; bytes after it stay in the buffer.
    End,
    /// More bytes are needed.
    Pending,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("the connection closed {0} bytes short of the response's Content-Length")]
    ShortLength(u64),
    #[error("the connection closed before the chunked response's last chunk")]
    ShortChunked,
    #[error("malformed chunked encoding: {0}")]
    BadChunk(&'static str),
}

/// Cuts one body out of the connection's bytes, as they arrive.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Bytes left of the current chunk's data.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer lines until an empty one; the count is trailer bytes so far.
    Trailers(usize),
    Close,
    Done,
}

impl Decoder {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        Self { state }
    }

    /// The body ended: nothing is left to read for it.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes what it can of the body from the front of `buf`. Linear in the bytes consumed: a partial line is
    /// re-scanned only when more bytes arrive, and never beyond [`MAX_LINE`].
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FramingError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Close => {
                    return Ok(if buf.is_empty() { Decoded::Pending } else { Decoded::Data(buf.split().freeze()) });
                }
                State::Length(left) => {
                    let Some((data, rest)) = take_up_to(buf, left) else { return Ok(Decoded::Pending) };
                    self.state = if rest == 0 { State::Done } else { State::Length(rest) };
                    return Ok(Decoded::Data(data));
                }
                State::ChunkData(left) => {
                    let Some((data, rest)) = take_up_to(buf, left) else { return Ok(Decoded::Pending) };
                    self.state = if rest == 0 { State::ChunkEnd } else { State::ChunkData(rest) };
                    return Ok(Decoded::Data(data));
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::Pending);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(FramingError::BadChunk("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::ChunkSize => {
                    let Some(line) = take_line(buf)? else { return Ok(Decoded::Pending) };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 { State::Trailers(0) } else { State::ChunkData(size) };
                }
                State::Trailers(seen) => {
                    let Some(line) = take_line(buf)? else { return Ok(Decoded::Pending) };
                    let seen = seen + line.len();
                    if seen > MAX_TRAILERS {
                        return Err(FramingError::BadChunk("trailers too large"));
                    }
                    self.state = if line.len() == 2 { State::Done } else { State::Trailers(seen) };
                }
            }
        }
    }

    /// The connection closed: the end of a close-delimited body, a truncation of any other.
    pub fn eof(&mut self) -> Result<(), FramingError> {
        match self.state {
            State::Done => Ok(()),
            State::Close => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(left) => Err(FramingError::ShortLength(left)),
            _ => Err(FramingError::ShortChunked),
        }
    }
}

/// Up to `left` bytes from the front of `buf` and how many are still to come; `None` when `buf` is empty.
fn take_up_to(buf: &mut BytesMut, left: u64) -> Option<(Bytes, u64)> {
    if buf.is_empty() {
        return None;
    }
    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
    Some((buf.split_to(take).freeze(), left - take as u64))
}

/// A whole line (CRLF included) from the front of `buf`, or `None` while it is incomplete.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, FramingError> {
    let window = &buf[..buf.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) if end > 0 && window[end - 1] == b'\r' => Ok(Some(buf.split_to(end + 1))),
        Some(_) => Err(FramingError::BadChunk("line not ended by CRLF")),
        None if buf.len() >= MAX_LINE => Err(FramingError::BadChunk("line too long")),
        None => Ok(None),
    }
}

/// The size in a chunk-size line: hex digits, then optional whitespace and `;extensions`, which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let line = &line[..line.len() - 2];
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(FramingError::BadChunk("chunk size is not hexadecimal"));
    }
    if digits > 16 {
        return Err(FramingError::BadChunk("chunk size too large"));
    }
    let rest = &line[digits..];
    let rest = &rest[rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count()..];
    if !rest.is_empty() && rest[0] != b';' {
        return Err(FramingError::BadChunk("junk after the chunk size"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let digit = (b as char).to_digit(16).unwrap_or(0);
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or(FramingError::BadChunk("chunk size too large"))?;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, then EOF when `close`; the body and how it ended.
    fn run(framing: Framing, input: &[u8], step: usize, close: bool) -> (Vec<u8>, Result<(), FramingError>, usize) {
        let mut decoder = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            fed += piece.len();
            loop {
                // Left over: what the buffer holds past the body and what was not fed yet.
                match decoder.decode(&mut buf) {
                    Ok(Decoded::Data(d)) => body.extend_from_slice(&d),
                    Ok(Decoded::Pending) => break,
                    Ok(Decoded::End) => return (body, Ok(()), buf.len() + input.len() - fed),
                    Err(e) => return (body, Err(e), buf.len()),
                }
            }
        }
        if decoder.is_done() {
            return (body, Ok(()), buf.len());
        }
        let end = if close { decoder.eof() } else { Err(FramingError::BadChunk("no end (test)")) };
        (body, end, buf.len())
    }

    #[test]
    fn bodies_are_cut_by_their_framing_whatever_the_read_sizes() {
        let no_end = Err(FramingError::BadChunk("no end (test)"));
        #[rustfmt::skip]
        let cases: &[(Framing, &[u8], bool, &[u8], Result<(), FramingError>, usize)] = &[
            // framing, bytes on the wire, closed after them, body, outcome, bytes left after the body
            (Framing::Length(5), b"hello", false, b"hello", Ok(()), 0),
            (Framing::Length(5), b"helloEXTRA", false, b"hello", Ok(()), 5),
            (Framing::Length(0), b"", false, b"", Ok(()), 0),
            (Framing::Length(5), b"hel", true, b"hel", Err(FramingError::ShortLength(2)), 0),
            (Framing::Close, b"all of it", true, b"all of it", Ok(()), 0),
            (Framing::Close, b"", true, b"", Ok(()), 0),
            (Framing::Chunked, b"5\r\nhello\r\n0\r\n\r\n", false, b"hello", Ok(()), 0),
            (Framing::Chunked, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", false, b"hello world", Ok(()), 4),
            (Framing::Chunked, b"A;name=value\r\n0123456789\r\n0\r\n\r\n", false, b"0123456789", Ok(()), 0),
            (Framing::Chunked, b"a \t;ext\r\n0123456789\r\n0\r\n\r\n", false, b"0123456789", Ok(()), 0),
            (Framing::Chunked, b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", false, b"abc", Ok(()), 0),
            (Framing::Chunked, b"5\r\nhel", true, b"hel", Err(FramingError::ShortChunked), 0),
            (Framing::Chunked, b"5\r\nhello\r\n", true, b"hello", Err(FramingError::ShortChunked), 0),
            (Framing::Chunked, b"5\r\nhello\r\n0\r\n", true, b"hello", Err(FramingError::ShortChunked), 0),
            (Framing::Chunked, b"5\r\nhello\r\n0\r\n", false, b"hello", no_end, 0),
            (Framing::Chunked, b"zz\r\n", false, b"", Err(FramingError::BadChunk("chunk size is not hexadecimal")), 0),
            (Framing::Chunked, b"5x\r\nhello\r\n", false, b"", Err(FramingError::BadChunk("junk after the chunk size")), 0),
            (Framing::Chunked, b"5\nhello", false, b"", Err(FramingError::BadChunk("line not ended by CRLF")), 0),
            (Framing::Chunked, b"5\r\nhelloXY0\r\n\r\n", false, b"hello", Err(FramingError::BadChunk("chunk data not followed by CRLF")), 10),
            (Framing::Chunked, b"11111111111111111\r\n", false, b"", Err(FramingError::BadChunk("chunk size too large")), 0),
        ];
        for (framing, input, close, body, outcome, left) in cases {
            for step in [1, 2, 3, 7, input.len()] {
                let (got, end, rest) = run(*framing, input, step, *close);
                let text = String::from_utf8_lossy(input);
                assert_eq!(&got[..], *body, "{framing:?} {text:?} step {step}");
                assert_eq!(&end, outcome, "{framing:?} {text:?} step {step}");
                if outcome.is_ok() {
                    assert_eq!(rest, *left, "{framing:?} {text:?} step {step}");
                }
            }
        }
    }

    #[test]
    fn an_endless_chunk_size_line_is_refused_once_it_passes_the_bound() {
        let mut decoder = Decoder::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"0"[..]);
        buf.extend(std::iter::repeat_n(b'0', MAX_LINE));
        assert_eq!(decoder.decode(&mut buf), Err(FramingError::BadChunk("line too long")));
    }
}
