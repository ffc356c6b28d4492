//! A minimal AWS SigV4 signer and verifier (header auth, as botocore signs non-S3 services), so the fake can check
//! a request's signature in full and tests can sign requests to it. The gateway has its own signer
//! (`server/src/providers/bedrock/sigv4.rs`); this one is a separate copy because the fakes crate cannot depend on
//! the server crate, and both are pinned by the same botocore-computed vector.

use ring::{digest, hmac};

/// The access key the fake knows the secret of: requests signed with it are verified in full.
pub const ACCESS_KEY_ID: &str = "AKIDFAKEBEDROCK";
pub const SECRET_ACCESS_KEY: &str = "fake/bedrock+secret/access/key/0000000000";

/// What a signature covers.
pub struct Signing<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded once).
    pub path: &'a str,
    pub query: &'a str,
    /// Lower-case names and their values, every header that is signed (`host`, `x-amz-date`, ...).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// `YYYYMMDD/region/service/aws4_request`.
    pub scope: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

/// The hex signature of `s` with `secret`.
pub fn signature(s: &Signing<'_>, secret: &str) -> String {
    let mut headers = s.headers.to_vec();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let canonical_headers: String =
        headers.iter().map(|(n, v)| format!("{n}:{}\n", v.split_whitespace().collect::<Vec<_>>().join(" "))).collect();
    let signed: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    let mut query: Vec<&str> = s.query.split('&').filter(|p| !p.is_empty()).collect();
    query.sort_unstable();
    let uri: Vec<String> = s.path.split('/').map(encode).collect();
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{}",
        s.method,
        uri.join("/"),
        query.join("&"),
        signed.join(";"),
        hex(digest::digest(&digest::SHA256, s.body).as_ref())
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
        s.amz_date,
        s.scope,
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in s.scope.split('/') {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes()).as_ref().to_vec();
    }
    hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), to_sign.as_bytes()).as_ref())
}

/// `Authorization` for a request to the fake signed with [`ACCESS_KEY_ID`] (for tests): `host` and `x-amz-date`
/// signed, region `us-east-1`, service `bedrock`.
pub fn authorization(path: &str, host: &str, amz_date: &str, body: &[u8]) -> String {
    let scope = format!("{}/us-east-1/bedrock/aws4_request", &amz_date[..amz_date.len().min(8)]);
    let headers = [("host", host), ("x-amz-date", amz_date)];
    let s = Signing { method: "POST", path, query: "", headers: &headers, body, scope: &scope, amz_date };
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{scope}, SignedHeaders=host;x-amz-date, Signature={}",
        signature(&s, SECRET_ACCESS_KEY)
    )
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    pub scope: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

/// Reads the header's shape; `None` if it is not SigV4's.
pub fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 Credential=")?;
    let (credential, rest) = rest.split_once(", SignedHeaders=")?;
    let (signed, signature) = rest.split_once(", Signature=")?;
    let (access_key_id, scope) = credential.split_once('/')?;
    let scope_ok = scope.split('/').count() == 4 && scope.ends_with("/aws4_request");
    let hex_ok = signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit());
    (scope_ok && hex_ok && !signed.is_empty()).then(|| Authorization {
        access_key_id,
        scope,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_botocore() {
        // The vector the gateway's signer is pinned to as well: botocore 1.43, AWS's example credentials.
        let body = br#"{"messages":[{"content":[{"text":"Hi"}],"role":"user"}]}"#;
        let headers = [("host", "bedrock-runtime.us-east-1.amazonaws.com"), ("x-amz-date", "20250115T123456Z")];
        let s = Signing {
            method: "POST",
            path: "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
            query: "",
            headers: &headers,
            body,
            scope: "20250115/us-east-1/bedrock/aws4_request",
            amz_date: "20250115T123456Z",
        };
        assert_eq!(
            signature(&s, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            "5983e82ade7cbba6d0291575d3f6e3ace56f1bd60f7685c9c34f37f806053cae"
        );
        let auth = authorization("/x", "h", "20250115T123456Z", b"");
        let parsed = parse_authorization(&auth).unwrap_or_else(|| unreachable!("{auth}"));
        assert_eq!((parsed.access_key_id, parsed.signed_headers), (ACCESS_KEY_ID, vec!["host", "x-amz-date"]));
        assert_eq!(parse_authorization("Bearer x"), None);
        assert_eq!(
            parse_authorization("AWS4-HMAC-SHA256 Credential=A/b/c/d/aws4_request, SignedHeaders=host, Signature=zz"),
            None
        );
    }
}
