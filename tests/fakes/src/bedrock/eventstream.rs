//! AWS eventstream messages (`application/vnd.amazon.eventstream`) as Bedrock's ConverseStream sends them: an
//! encoder with real CRCs for the fake, and a strict decoder for tests that check what the fake sent.
//!
//! Layout: `total_len u32 BE | headers_len u32 BE | prelude_crc u32 BE | headers | payload | message_crc u32 BE`,
//! CRC-32 (IEEE) over the first 8 bytes and over everything before the message CRC.

/// CRC-32 with the IEEE polynomial (reflected 0xEDB88320), as zlib and AWS compute it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { 0xEDB8_8320 ^ (crc >> 1) } else { crc >> 1 };
        }
    }
    !crc
}

/// One message with string (type 7) headers.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (name, value) in headers {
        encoded.push(name.len() as u8);
        encoded.extend_from_slice(name.as_bytes());
        encoded.push(7);
        encoded.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded.extend_from_slice(value.as_bytes());
    }
    let total = (16 + encoded.len() + payload.len()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&encoded);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An event message: `:event-type`, `:content-type: application/json`, `:message-type: event`.
pub fn event(event_type: &str, payload: &str) -> Vec<u8> {
    message(
        &[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
        payload.as_bytes(),
    )
}

/// A modelled exception message (`:message-type: exception`).
pub fn exception(exception_type: &str, payload: &str) -> Vec<u8> {
    message(
        &[(":exception-type", exception_type), (":content-type", "application/json"), (":message-type", "exception")],
        payload.as_bytes(),
    )
}

/// A decoded message: its string headers and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Decoded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// Every message of `bytes`, checking both CRCs; `Err` with the messages decoded before the first problem (a bad
/// CRC, or bytes left over that do not make a whole message).
pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Decoded>, (Vec<Decoded>, String)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Err((out, format!("{} bytes left, less than a prelude", bytes.len())));
        }
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let (total, headers_len) = (be(&bytes[0..4]), be(&bytes[4..8]));
        if crc32(&bytes[0..8]) as usize != be(&bytes[8..12]) {
            return Err((out, "prelude CRC mismatch".into()));
        }
        if total < 16 || headers_len > total - 16 {
            return Err((out, format!("impossible lengths {total}/{headers_len}")));
        }
        if bytes.len() < total {
            return Err((out, format!("{} bytes left of a {total}-byte message", bytes.len())));
        }
        if crc32(&bytes[..total - 4]) as usize != be(&bytes[total - 4..total]) {
            return Err((out, "message CRC mismatch".into()));
        }
        let mut raw = &bytes[12..12 + headers_len];
        let mut headers = Vec::new();
        while !raw.is_empty() {
            let name_len = usize::from(raw[0]);
            let name = String::from_utf8_lossy(&raw[1..1 + name_len]).into_owned();
            let kind = raw[1 + name_len];
            raw = &raw[2 + name_len..];
            if kind != 7 {
                return Err((out, format!("header {name} of type {kind}; the fake sends strings only")));
            }
            let len = usize::from(u16::from_be_bytes([raw[0], raw[1]]));
            headers.push((name, String::from_utf8_lossy(&raw[2..2 + len]).into_owned()));
            raw = &raw[2 + len..];
        }
        out.push(Decoded { headers, payload: bytes[12 + headers_len..total - 4].to_vec() });
        bytes = &bytes[total..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_round_trip() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let bytes = [event("messageStart", r#"{"role":"assistant"}"#), exception("throttlingException", "{}")].concat();
        let decoded = decode_all(&bytes).unwrap_or_else(|(_, e)| unreachable!("{e}"));
        assert_eq!(decoded[0].header(":event-type"), Some("messageStart"));
        assert_eq!(decoded[1].header(":exception-type"), Some("throttlingException"));
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert_eq!(decode_all(&bad).map_err(|(_, e)| e), Err("message CRC mismatch".into()));
    }
}
