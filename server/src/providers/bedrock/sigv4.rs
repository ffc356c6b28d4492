//! AWS Signature Version 4 (header auth), as botocore computes it for non-S3 services (providers.md 5.2).
//!
//! Pure: the caller passes the request's parts and the time, and gets the headers to send. Two details matter for
//! Bedrock and are pinned by tests against signatures botocore computed:
//! - the canonical URI is the path *as sent* (already percent-encoded once, so a model id's `:` is `%3A`) encoded
//!   again segment by segment, so `%3A` becomes `%253A` (non-S3 services double-encode);
//! - only `host`, `x-amz-date` and, with temporary credentials, `x-amz-security-token` are signed. SigV4 requires no
//!   more, and leaving `content-type` (which the pipeline sets) unsigned means nothing outside this module has to
//!   send it byte-for-byte as signed.

use ring::{digest, hmac};

use crate::secret::Secret;

/// Long-term (access key) or temporary (STS, with a session token) AWS credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Not secret by itself (it appears in every `Authorization` header), but kept out of logs anyway.
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// The parts of a request that go into the signature.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The `Host` header exactly as it will be sent (`host` or `host:port`).
    pub host: &'a str,
    /// The path as sent on the request line, percent-encoded (`/model/x%3A0/converse`).
    pub path: &'a str,
    /// The query without `?`, its names and values already encoded; empty for Bedrock.
    pub query: &'a str,
    pub body: &'a [u8],
}

/// Where and as whom a request is signed.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    /// Seconds since the Unix epoch (UTC).
    pub time: u64,
}

/// The headers a signed request must carry besides `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `x-amz-date`: `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    pub authorization: String,
    /// `x-amz-security-token`, with temporary credentials.
    pub security_token: Option<String>,
}

pub fn sign(req: &Request<'_>, credentials: &Credentials, scope: &Scope<'_>) -> Signed {
    let (amz_date, date) = amz_timestamp(scope.time);
    let token = credentials.session_token.as_ref().map(|t| t.expose().to_owned());
    let mut headers: Vec<(&str, &str)> = vec![("host", req.host), ("x-amz-date", &amz_date)];
    if let Some(token) = &token {
        headers.push(("x-amz-security-token", token));
    }
    let canonical = canonical_request(req, &mut headers);
    let signed_headers = headers.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(";");
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{credential_scope}\n{}", sha256_hex(canonical.as_bytes()));
    let key = signing_key(credentials.secret_access_key.expose(), &date, scope.region, scope.service);
    let signature = crate::hex::encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id.expose()
    );
    Signed { amz_date, authorization, security_token: token }
}

/// The canonical request; sorts `headers` by name as a side effect (the signed-headers list needs the same order).
fn canonical_request(req: &Request<'_>, headers: &mut [(&str, &str)]) -> String {
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(256 + req.path.len() * 3);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for (name, value) in headers.iter() {
        out.push_str(name);
        out.push(':');
        out.push_str(&value.split_whitespace().collect::<Vec<_>>().join(" "));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&headers.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(";"));
    out.push('\n');
    out.push_str(&sha256_hex(req.body));
    out
}

/// Each segment of the (already encoded) path URI-encoded again; `/` separators kept.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
}

/// Pairs sorted by name, then value, as botocore does for a query already in the URL.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> =
        query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    pairs.sort_unstable();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// RFC 3986 encoding as SigV4 wants it: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (upper-case hex).
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0xF)]));
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes());
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

pub fn sha256_hex(data: &[u8]) -> String {
    crate::hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

/// `(YYYYMMDDTHHMMSSZ, YYYYMMDD)` for a Unix time, in UTC.
pub fn amz_timestamp(unix: u64) -> (String, String) {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    let date = format!("{y:04}{m:02}{d:02}");
    let stamp = format!("{date}T{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60);
    (stamp, date)
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (non-negative).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example credentials of AWS's SigV4 test suite.
    fn suite_credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: Secret::new("AKIDEXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    /// 2015-08-30T12:36:00Z, the test suite's time.
    const SUITE_TIME: u64 = 1_440_938_160;
    /// 2025-01-15T12:34:56Z, the time of the botocore-computed vectors below.
    const BEDROCK_TIME: u64 = 1_736_944_496;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        let cases = [
            (SUITE_TIME, "20150830T123600Z"),
            (BEDROCK_TIME, "20250115T123456Z"),
            (0, "19700101T000000Z"),
            (1_709_164_800, "20240229T000000Z"),
            (951_782_400, "20000229T000000Z"),
            (4_102_444_799, "20991231T235959Z"),
        ];
        for (unix, want) in cases {
            let (stamp, date) = amz_timestamp(unix);
            assert_eq!((stamp.as_str(), date.as_str()), (want, &want[..8]), "{unix}");
        }
    }

    #[test]
    fn aws_test_suite_vanilla_requests() {
        // get-vanilla and post-vanilla of the AWS SigV4 test suite: `/` on example.amazonaws.com, no body.
        let cases = [
            ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ];
        for (method, signature) in cases {
            let req = Request { method, host: "example.amazonaws.com", path: "/", query: "", body: b"" };
            let scope = Scope { region: "us-east-1", service: "service", time: SUITE_TIME };
            let signed = sign(&req, &suite_credentials(None), &scope);
            assert_eq!(signed.amz_date, "20150830T123600Z");
            assert_eq!(
                signed.authorization,
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature={signature}"
                ),
                "{method}"
            );
        }
        // get-vanilla-query-order-key-case: query pairs are sorted.
        let req = Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            query: "Param2=value2&Param1=value1",
            body: b"",
        };
        let signed =
            sign(&req, &suite_credentials(None), &Scope { region: "us-east-1", service: "service", time: SUITE_TIME });
        assert!(
            signed
                .authorization
                .ends_with("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
            "{}",
            signed.authorization
        );
    }

    #[test]
    fn bedrock_requests_match_botocore() {
        // Signatures botocore 1.43 (`SigV4Auth(creds, "bedrock", region).add_auth`) computed for the same requests,
        // with only `host` besides its own headers: the model id's `%3A` (and an ARN's `%2F`) are double-encoded.
        let body = br#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#;
        let cases: &[(&str, &str, &str, Option<&str>, &[u8], &str)] = &[
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
                "us-east-1",
                None,
                body,
                "ea84184c5edec7d57ba9ec43920443c650b676f43334abd521a5866396040972",
            ),
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
                "us-east-1",
                Some("FQoGZXIvYXdzEXAMPLETOKEN"),
                body,
                "0c73f0d01215e4cfe615c498ce0f859da1feeacf1912ae7ef58bd155b0bd2da8",
            ),
            (
                "bedrock-runtime.eu-west-1.amazonaws.com",
                "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                "eu-west-1",
                None,
                body,
                "dc88542e803066cd3f49e140d70434f7e064a1a08e19920884dd52d24bea85de",
            ),
            (
                "127.0.0.1:8080",
                "/model/amazon.titan-embed-text-v2%3A0/invoke",
                "us-west-2",
                None,
                br#"{"inputText":"hello"}"#,
                "a22e57616a1f5af3f8615450d4cad7bee1203aada8fb9dab7c48a32868ee4c40",
            ),
        ];
        for (host, path, region, token, body, signature) in cases {
            let req = Request { method: "POST", host, path, query: "", body };
            let scope = Scope { region, service: "bedrock", time: BEDROCK_TIME };
            let signed = sign(&req, &suite_credentials(*token), &scope);
            let signed_headers =
                if token.is_some() { "host;x-amz-date;x-amz-security-token" } else { "host;x-amz-date" };
            assert_eq!(
                signed.authorization,
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250115/{region}/bedrock/aws4_request, \
                     SignedHeaders={signed_headers}, Signature={signature}"
                ),
                "{path}"
            );
            assert_eq!(signed.security_token.as_deref(), *token);
            assert_eq!(signed.amz_date, "20250115T123456Z");
        }
    }

    #[test]
    fn canonical_request_double_encodes_the_path() {
        let req = Request {
            method: "POST",
            host: "bedrock-runtime.us-east-1.amazonaws.com",
            path: "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
            query: "",
            body: b"{}",
        };
        let mut headers = vec![("x-amz-date", "20250115T123456Z"), ("host", req.host)];
        let canonical = canonical_request(&req, &mut headers);
        let want = "POST\n/model/us.anthropic.claude-sonnet-4-5-20250929-v1%253A0/converse\n\n\
                    host:bedrock-runtime.us-east-1.amazonaws.com\nx-amz-date:20250115T123456Z\n\n\
                    host;x-amz-date\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(canonical, want);
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a b/ü~"), "/a%20b/%C3%BC~");
    }
}
