//! JSON lines (newline-delimited JSON): one document per line, as Ollama and some Cohere endpoints stream.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: BytesMut,
    /// Where the next unscanned byte is, so a trickle of bytes is not rescanned.
    scan_from: usize,
}

impl LineDecoder {
    /// Bytes fed that no whole frame has taken yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next non-blank line, without its line ending.
    pub fn next_line(&mut self) -> Option<Bytes> {
        loop {
            let nl = self.buf[self.scan_from..].iter().position(|&b| b == b'\n')? + self.scan_from;
            let mut line = self.buf.split_to(nl + 1);
            self.scan_from = 0;
            line.truncate(nl);
            if line.ends_with(b"\r") {
                line.truncate(nl - 1);
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(line.freeze());
            }
        }
    }

    /// What is left when the stream ends, if anything but whitespace.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scan_from = 0;
        let rest = self.buf.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_any_chunking() {
        let input = "{\"a\":1}\n\r\n{\"b\":2}\r\n{\"c\":3}";
        for cut in 0..input.len() {
            let mut d = LineDecoder::default();
            let mut out = Vec::new();
            for part in [&input[..cut], &input[cut..]] {
                d.feed(part.as_bytes());
                while let Some(l) = d.next_line() {
                    out.push(String::from_utf8_lossy(&l).into_owned());
                }
            }
            out.extend(d.finish().map(|r| String::from_utf8_lossy(&r).into_owned()));
            assert_eq!(out, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"], "cut at {cut}");
        }
    }
}
