//! Virtual key values: generated from the OS random source, stored only as their SHA-256, shown once.

use rand::{distributions::Alphanumeric, rngs::OsRng, Rng};

/// Random characters after `sk-`: 48 alphanumerics, about 285 bits.
const RANDOM_CHARS: usize = 48;

/// A key's SHA-256, the only form the store and the caches hold. Its hex form is LiteLLM's `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(key: &str) -> KeyHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        KeyHash(out)
    }

    /// Lower-case hex. On the request path (the log record, the limiter's scope): a table lookup per nibble, not
    /// `fmt`, which cost about a microsecond a request.
    pub fn hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    pub fn from_hex(hex: &str) -> Option<KeyHash> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyHash(out))
    }

    /// How management requests name a key: the key itself (`sk-...`), or its hash as `/key/list` returns it.
    pub fn from_reference(reference: &str) -> KeyHash {
        KeyHash::from_hex(reference).unwrap_or_else(|| KeyHash::of(reference))
    }
}

/// A new key: `sk-` and [`RANDOM_CHARS`] characters from the operating system's random source.
pub fn generate() -> String {
    let random: String = OsRng.sample_iter(&Alphanumeric).take(RANDOM_CHARS).map(char::from).collect();
    format!("sk-{random}")
}

/// The form a key is shown in after creation (LiteLLM's `key_name`): `sk-...` and its last four characters.
pub fn display_name(key: &str) -> String {
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("sk-...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with("sk-") && a.len() == 3 + RANDOM_CHARS, "{a}");
        assert!(a[3..].bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
    }

    #[test]
    fn hashes_are_litellms_sha256_hex_and_round_trip() {
        // sha256("sk-1234"), as LiteLLM's hash_token stores it.
        let h = KeyHash::of("sk-1234");
        assert_eq!(h.hex(), "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b");
        assert_eq!(KeyHash::from_hex(&h.hex()), Some(h));
        assert_eq!(KeyHash::from_reference("sk-1234"), h);
        assert_eq!(KeyHash::from_reference(&h.hex()), h);
        assert_eq!(KeyHash::from_hex("zz"), None);
        assert_eq!(KeyHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn display_names_show_only_the_last_four() {
        assert_eq!(display_name("sk-abcdefgh1234"), "sk-...1234");
        assert_eq!(display_name("ab"), "sk-...ab");
    }
}
