//! Lowercase hexadecimal text of bytes: key hashes, trace and span ids, SigV4 digests. A leaf.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` to `out` as lowercase hex, two digits a byte.
pub fn push(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push(&mut out, bytes);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_become_two_lowercase_digits_each() {
        let cases: &[(&[u8], &str)] =
            &[(&[], ""), (&[0], "00"), (&[0x0f, 0xa0, 0xff], "0fa0ff"), (&[1, 35, 69], "012345")];
        for (bytes, want) in cases {
            assert_eq!(super::encode(bytes), *want);
        }
    }
}
