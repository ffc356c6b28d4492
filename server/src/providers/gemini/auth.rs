//! Vertex AI's OAuth 2.0 access tokens, without the I/O: the pieces a worker needs to fetch and renew one.
//!
//! Credentials are Google's JSON files: a service account (`"type": "service_account"`: an RS256-signed JWT
//! assertion is exchanged for a token, RFC 7523) or a user's application-default credentials
//! (`"type": "authorized_user"`, what `gcloud auth application-default login` writes: a refresh token is
//! exchanged, RFC 6749 section 6). This module builds the token request ([`TokenRequest`]) and reads the token
//! response into a [`TokenCell`] that request building reads without a lock; who sends the request and when
//! (before the token expires) is the caller's business.

use actix_web::http::Uri;
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;

use crate::secret::Secret;

/// The scope Vertex AI needs (LiteLLM asks for the same).
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Where tokens come from when the credentials do not say.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A JWT assertion's lifetime: Google accepts at most an hour.
const ASSERTION_LIFETIME_SECS: u64 = 3600;

pub use crate::providers::{
    codec::TokenRequest,
    oauth::{TokenCell, TokenError},
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error("credentials are not valid JSON: {0}")]
    Json(String),
    #[error("credentials of type `{0}` are not supported (use a service account key or application-default user credentials)")]
    UnsupportedType(String),
    #[error("credentials lack `{0}`")]
    Missing(&'static str),
    #[error("`private_key` is not a PEM RSA private key (PKCS#8 or PKCS#1)")]
    BadKey,
    #[error("`token_uri` is not a valid URL")]
    BadTokenUri,
}

/// Parsed credentials.
pub(super) enum Credentials {
    /// Boxed: the RSA key is large and the other variant small.
    ServiceAccount(Box<ServiceAccount>),
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_url: Uri,
    },
}

pub(super) struct ServiceAccount {
    client_email: String,
    key_id: Option<String>,
    key: RsaKeyPair,
    /// The token endpoint, as written (the assertion's audience) and parsed (where it is sent).
    token_uri: String,
    token_url: Uri,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ServiceAccount(sa) => f
                .debug_struct("ServiceAccount")
                .field("client_email", &sa.client_email)
                .field("token_uri", &sa.token_uri)
                .finish_non_exhaustive(),
            Self::AuthorizedUser { client_id, token_url, .. } => f
                .debug_struct("AuthorizedUser")
                .field("client_id", client_id)
                .field("token_url", token_url)
                .finish_non_exhaustive(),
        }
    }
}

#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    quota_project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

impl Credentials {
    /// Reads a credentials JSON document; returns it with the project it names, if any.
    pub fn parse(json: &str) -> Result<(Self, Option<String>), CredentialsError> {
        let file: CredentialsFile = serde_json::from_str(json).map_err(|e| CredentialsError::Json(e.to_string()))?;
        let token_uri = file.token_uri.filter(|u| !u.is_empty()).unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        let token_url = Uri::try_from(token_uri.as_str()).map_err(|_| CredentialsError::BadTokenUri)?;
        match file.kind.as_deref().unwrap_or("service_account") {
            "service_account" => {
                let client_email = file.client_email.ok_or(CredentialsError::Missing("client_email"))?;
                let pem = file.private_key.ok_or(CredentialsError::Missing("private_key"))?;
                let key = rsa_key(&pem).ok_or(CredentialsError::BadKey)?;
                let sa = ServiceAccount { client_email, key_id: file.private_key_id, key, token_uri, token_url };
                Ok((Self::ServiceAccount(Box::new(sa)), file.project_id))
            }
            "authorized_user" => {
                let creds = Self::AuthorizedUser {
                    client_id: file.client_id.ok_or(CredentialsError::Missing("client_id"))?,
                    client_secret: Secret::new(file.client_secret.ok_or(CredentialsError::Missing("client_secret"))?),
                    refresh_token: Secret::new(file.refresh_token.ok_or(CredentialsError::Missing("refresh_token"))?),
                    token_url,
                };
                Ok((creds, file.quota_project_id))
            }
            other => Err(CredentialsError::UnsupportedType(other.to_owned())),
        }
    }

    /// The request that gets a fresh access token.
    pub fn token_request(&self, now_unix: u64) -> Result<TokenRequest, TokenError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        let url = match self {
            Self::ServiceAccount(sa) => {
                form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
                form.append_pair("assertion", &sa.assertion(now_unix)?);
                sa.token_url.clone()
            }
            Self::AuthorizedUser { client_id, client_secret, refresh_token, token_url } => {
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("client_id", client_id);
                form.append_pair("client_secret", client_secret.expose());
                form.append_pair("refresh_token", refresh_token.expose());
                token_url.clone()
            }
        };
        Ok(TokenRequest { url, body: form.finish().into_bytes() })
    }
}

impl ServiceAccount {
    /// The signed JWT (`header.claims.signature`, base64url without padding) that asks for a token.
    fn assertion(&self, now_unix: u64) -> Result<String, TokenError> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now_unix,
            "exp": now_unix + ASSERTION_LIFETIME_SECS,
        });
        let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        // The random source is only for RSA blinding; PKCS#1 v1.5 signatures themselves are deterministic.
        let rng = ring::rand::SystemRandom::new();
        self.key.sign(&RSA_PKCS1_SHA256, &rng, jwt.as_bytes(), &mut signature).map_err(|_| TokenError::Sign)?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

/// The RSA key of a PEM document: `PRIVATE KEY` (PKCS#8, what Google issues) or `RSA PRIVATE KEY` (PKCS#1).
fn rsa_key(pem: &str) -> Option<RsaKeyPair> {
    let (_, rest) = pem.split_once("-----BEGIN ")?;
    let (label, rest) = rest.split_once("-----")?;
    let (body, _) = rest.split_once("-----END ")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(b64).ok()?;
    match label {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der).ok(),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der).ok(),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use serde_json::Value;

    use super::*;

    /// A 2048-bit RSA key made for these tests with `openssl genpkey -algorithm RSA` (ring can sign with RSA keys
    /// but not generate them). It guards nothing.
    pub const TEST_KEY: &str = include_str!("test_key.pem");

    pub fn service_account_json(token_uri: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "proj-from-file",
            "private_key_id": "kid-1",
            "private_key": TEST_KEY,
            "client_email": "gateway@proj-from-file.iam.gserviceaccount.com",
            "client_id": "123",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn form(body: &[u8]) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body).into_owned().collect()
    }

    fn b64json(part: &str) -> Value {
        let bytes = URL_SAFE_NO_PAD.decode(part).unwrap_or_else(|e| unreachable!("{e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn service_account_assertion_is_a_verifiable_rs256_jwt() {
        let (creds, project) = Credentials::parse(&service_account_json("https://oauth2.example/token"))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(project.as_deref(), Some("proj-from-file"));
        let req = creds.token_request(1_700_000_000).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(req.url.to_string(), "https://oauth2.example/token");
        let fields = form(&req.body);
        assert_eq!(fields[0], ("grant_type".into(), "urn:ietf:params:oauth:grant-type:jwt-bearer".into()));
        assert_eq!(fields[1].0, "assertion");
        let jwt = &fields[1].1;
        let segments: Vec<&str> = jwt.split('.').collect();
        assert_eq!(segments.len(), 3, "{jwt}");
        assert_eq!(b64json(segments[0]), serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"}));
        assert_eq!(
            b64json(segments[1]),
            serde_json::json!({"iss": "gateway@proj-from-file.iam.gserviceaccount.com", "scope": SCOPE,
                               "aud": "https://oauth2.example/token", "iat": 1_700_000_000u64, "exp": 1_700_003_600u64})
        );
        // The signature checks out against the key's public half over `header.claims`.
        let Credentials::ServiceAccount(sa) = &creds else { unreachable!("a service account") };
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, sa.key.public().as_ref().to_vec());
        let signature = URL_SAFE_NO_PAD.decode(segments[2]).unwrap_or_else(|e| unreachable!("{e}"));
        let signed = format!("{}.{}", segments[0], segments[1]);
        assert_eq!(public.verify(signed.as_bytes(), &signature), Ok(()));
        assert!(public.verify(b"something else", &signature).is_err());
        // Debug shows who, never the key.
        let debug = format!("{creds:?}");
        assert!(debug.contains("gateway@") && !debug.contains("PRIVATE"), "{debug}");
    }

    #[test]
    fn authorized_user_credentials_refresh_with_their_refresh_token() {
        let json = r#"{"type":"authorized_user","client_id":"cid.apps","client_secret":"s3cr&t","refresh_token":"1//rt","quota_project_id":"qp"}"#;
        let (creds, project) = Credentials::parse(json).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(project.as_deref(), Some("qp"));
        let req = creds.token_request(0).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(req.url.to_string(), DEFAULT_TOKEN_URI);
        let fields = form(&req.body);
        let want = [
            ("grant_type", "refresh_token"),
            ("client_id", "cid.apps"),
            ("client_secret", "s3cr&t"),
            ("refresh_token", "1//rt"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(fields, want);
        assert!(!format!("{creds:?}").contains("s3cr"));
    }

    #[test]
    fn bad_credentials_are_named() {
        let no_key = r#"{"type":"service_account","client_email":"a@b"}"#;
        let bad_key = r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#;
        let cases = [
            ("{", CredentialsError::Json("EOF while parsing an object at line 1 column 1".into())),
            (no_key, CredentialsError::Missing("private_key")),
            (bad_key, CredentialsError::BadKey),
            (r#"{"type":"external_account"}"#, CredentialsError::UnsupportedType("external_account".into())),
            (r#"{"type":"authorized_user","client_id":"x"}"#, CredentialsError::Missing("client_secret")),
        ];
        for (json, want) in cases {
            assert_eq!(Credentials::parse(json).err(), Some(want), "{json}");
        }
    }

    #[test]
    fn token_responses_install_or_fail() {
        let cell = TokenCell::default();
        assert!(cell.get().is_none());
        let got = cell.install(br#"{"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"}"#, 1000);
        assert_eq!(got, Ok(Duration::from_secs(3299)));
        let token = cell.get().unwrap_or_else(|| unreachable!("installed"));
        assert_eq!((token.header.to_str().ok(), token.header.is_sensitive()), (Some("Bearer ya29.abc"), true));
        assert_eq!(token.expires_at_unix, 4599);
        assert!(!format!("{cell:?}").contains("ya29"));
        let cases: &[(&[u8], Result<Duration, TokenError>)] = &[
            (br#"{"access_token":"t2","expires_in":120}"#, Ok(Duration::from_secs(60))),
            (br#"{"access_token":"t3","expires_in":0,"token_type":"bearer"}"#, Ok(Duration::from_secs(1))),
            (
                br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
                Err(TokenError::Refused("invalid_grant: Invalid JWT Signature.".into())),
            ),
            (br#"{"access_token":"t","token_type":"MAC"}"#, Err(TokenError::NotBearer("MAC".into()))),
            (br#"{"expires_in":5}"#, Err(TokenError::Malformed("no access_token".into()))),
            (b"<html>", Err(TokenError::Malformed("expected value at line 1 column 1".into()))),
        ];
        for (body, want) in cases {
            assert_eq!(&cell.install(body, 0), want, "{}", String::from_utf8_lossy(body));
        }
        // A failed refresh leaves the last good token in place.
        assert_eq!(cell.get().map(|t| t.secret.expose().to_owned()).as_deref(), Some("t3"));
    }
}
