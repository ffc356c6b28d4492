//! A JSON reader that walks a body in place without building it: it finds where each value ends, checks the
//! body is JSON by serde_json's rules (strings without raw control characters and with well-formed escapes,
//! numbers by the JSON grammar, matched brackets, nothing after the value), and hands the caller the members of
//! the objects it asks for. Work is linear in the body and nesting costs one byte of stack per level, whatever the
//! depth.
//!
//! Why: the relays read a handful of fields (usage, model, finish reasons) of every response body and stream
//! chunk; through serde's derive every key of the body is decoded and checked as UTF-8 to be matched against the
//! struct's field names. Measured (tests/bench/instructions.sh, the fake's 330-byte reply): 8,400 instructions
//! through serde, 7,100 skimmed (usage included); stream chunks (no usage, a dozen keys) were not measured apart.

/// The body is not JSON (or not the JSON the caller expects where it asked for an object or array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

pub struct Skim<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Open brackets while skipping a value (`b'['`, `b'{'`), kept between values to reuse its allocation.
    open: Vec<u8>,
}

/// A string (an object key or a value) as it stands in the body, between its quotes.
#[derive(Debug, Clone, Copy)]
pub struct RawString<'a> {
    pub raw: &'a [u8],
    /// The contents have backslash escapes: compare them decoded ([`decode_escaped`]).
    pub escaped: bool,
}

/// A string's contents with escapes, decoded by serde_json (the one reading of `\u` surrogates there is).
pub fn decode_escaped(raw: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

/// Where the first byte a string cannot simply hold is (`"`, `\\`, or a control character), eight bytes at a time:
/// keys and short values are most strings, for which a search routine's set-up would cost more than the search.
fn special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    // A byte's high bit is set in `(x - ONES * n) & !x & HIGH` where the byte is below `n` (n <= 128); a borrow can
    // flag a byte after a real match, never before one, so the lowest flag is exact.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        let hits = below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|p| at + p)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Skim<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Skim { bytes, at: 0, open: Vec::new() }
    }

    fn ws(&mut self) {
        while self.bytes.get(self.at).is_some_and(|&b| is_ws(b)) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Result<(), Malformed> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Malformed),
        }
    }

    /// Reads the string at the cursor (after whitespace): its contents between the quotes, and whether they hold
    /// escapes.
    pub fn string(&mut self) -> Result<RawString<'a>, Malformed> {
        if !self.eat(b'"') {
            return Err(Malformed);
        }
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at += special(&self.bytes[self.at..]).ok_or(Malformed)?;
            match self.bytes[self.at] {
                b'"' => {
                    let raw = &self.bytes[start..self.at];
                    self.at += 1;
                    return Ok(RawString { raw, escaped });
                }
                b'\\' => escaped = true,
                _ => return Err(Malformed),
            }
            self.at += 1;
            match self.bytes.get(self.at) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 1,
                Some(b'u') => {
                    let hex = self.bytes.get(self.at + 1..self.at + 5).ok_or(Malformed)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Malformed);
                    }
                    self.at += 5;
                }
                _ => return Err(Malformed),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), Malformed> {
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Malformed),
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(Malformed);
            }
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(Malformed);
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Malformed> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// A scalar at the cursor (after whitespace), or the opening bracket of a container (consumed, and returned).
    fn scalar_or_open(&mut self) -> Result<Option<u8>, Malformed> {
        match self.peek().ok_or(Malformed)? {
            b'"' => self.string().map(|_| None),
            b'{' | b'[' => {
                let open = self.bytes[self.at];
                self.at += 1;
                Ok(Some(open))
            }
            b't' => self.literal(b"true").map(|()| None),
            b'f' => self.literal(b"false").map(|()| None),
            b'n' => self.literal(b"null").map(|()| None),
            b'-' | b'0'..=b'9' => self.number().map(|()| None),
            _ => Err(Malformed),
        }
    }

    /// Skips the value at the cursor; returns it as it stands in the body.
    pub fn value(&mut self) -> Result<&'a [u8], Malformed> {
        self.ws();
        let start = self.at;
        let Some(open) = self.scalar_or_open()? else { return Ok(&self.bytes[start..self.at]) };
        self.open.clear();
        self.open.push(open);
        // Just after an opening bracket a closing one may come; after a member, a comma or the closing one (a
        // comma then needs a member: `[1,]` fails where the member should start).
        let mut first = true;
        while let Some(&innermost) = self.open.last() {
            let close = if innermost == b'{' { b'}' } else { b']' };
            if self.eat(close) {
                self.open.pop();
                first = false;
                continue;
            }
            if !first && !self.eat(b',') {
                return Err(Malformed);
            }
            if innermost == b'{' {
                self.string()?;
                if !self.eat(b':') {
                    return Err(Malformed);
                }
            }
            match self.scalar_or_open()? {
                Some(open) => {
                    self.open.push(open);
                    first = true;
                }
                None => first = false,
            }
        }
        Ok(&self.bytes[start..self.at])
    }

    /// `null` at the cursor (consumed), or not (nothing consumed).
    pub fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    /// Walks the object at the cursor: `member` gets each key with the cursor on its value, and must read or skip
    /// that value.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, RawString<'a>) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        if !self.eat(b'{') {
            return Err(Malformed);
        }
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            if !self.eat(b':') {
                return Err(Malformed);
            }
            member(self, key)?;
            if self.eat(b'}') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(Malformed);
            }
        }
    }

    /// Walks the array at the cursor: `element` is called with the cursor on each element, and must read or skip
    /// it.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Result<(), Malformed>) -> Result<(), Malformed> {
        if !self.eat(b'[') {
            return Err(Malformed);
        }
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            element(self)?;
            if self.eat(b']') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(Malformed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_special_byte_in_every_position() {
        let naive = |bytes: &[u8]| bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        // Bytes around each boundary the word trick depends on, and the specials themselves.
        let fillers = [b'a', b' ', 0x21, 0x7f, 0x80, 0xff, b'"' + 1, b'\\' + 1, b'\\' - 1];
        let specials = [b'"', b'\\', 0x00, 0x1f, b'\n'];
        for len in 0..20 {
            for &filler in &fillers {
                let plain = vec![filler; len];
                assert_eq!(special(&plain), naive(&plain));
                for at in 0..len {
                    for &s in &specials {
                        let mut bytes = plain.clone();
                        bytes[at] = s;
                        assert_eq!(special(&bytes), Some(at), "{bytes:?}");
                        // A second special after the first never hides it.
                        for &later in &specials {
                            let mut two = bytes.clone();
                            if at + 1 < len {
                                two[at + 1] = later;
                            }
                            assert_eq!(special(&two), Some(at), "{two:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn values_end_where_serde_says_they_do() {
        let cases: &[&[u8]] = &[
            br#""a\"b\\c\u00e9""#,
            br#"{"a":[1,-2.5e-3,true,false,null,{"b":{}}],"c":"d"}"#,
            b"[[],[[]],{}]",
            b"0",
            b"-0.0E+0",
        ];
        for json in cases {
            let mut skim = Skim::new(json);
            assert_eq!(skim.value(), Ok(*json));
            assert_eq!(skim.end(), Ok(()));
            assert!(serde_json::from_slice::<serde::de::IgnoredAny>(json).is_ok());
        }
    }
}
