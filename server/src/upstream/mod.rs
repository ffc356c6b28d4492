//! How tollgate reaches upstreams: which certificates it trusts (`tls.rs`), the HTTPS proxy and `NO_PROXY`
//! (`proxy.rs`) with its `CONNECT` tunnel (`tunnel.rs`), and the clients each worker builds from them: awc for
//! `https://` upstreams (and webhooks, alerts, token endpoints), tollgate's own HTTP/1.1 client for `http://`
//! upstreams (`plain/`), behind one [`Client::post`] for the call stage. Also the check for keys sent over plain
//! HTTP (`cleartext.rs`) and the wording of connect failures.
//!
//! Contract: everything that can be wrong (unreadable CA bundle, bad proxy URL) is found once, at start-up or by
//! `check-config`, as a [`ConfigError`] naming the key or variable; workers only clone what was validated.
//! Nothing here logs or returns proxy credentials or API keys.

mod cleartext;
pub(crate) mod plain;
mod proxy;
mod tls;
mod tunnel;

use std::{sync::Arc, time::Duration};

use actix_web::{
    http::{
        header::{self, HeaderMap, HeaderName, HeaderValue},
        StatusCode, Uri,
    },
    HttpMessage,
};
use awc::error::{ConnectError, SendRequestError};
use bytes::Bytes;
use futures_util::{stream::LocalBoxStream, StreamExt, TryStreamExt};

pub use self::cleartext::key_in_cleartext;
use self::{proxy::Proxy, tunnel::UpstreamConnector};
use crate::config::{ConfigError, TlsTrust, UpstreamConfig};

/// The `user-agent` every upstream request carries unless the provider sets its own.
pub const USER_AGENT: &str = concat!("tollgate/", env!("CARGO_PKG_VERSION"));

/// Upstream connections kept per worker; beyond it requests wait for a free connection.
const CONNECTION_LIMIT: usize = 2048;

/// The validated upstream connection settings, shared by every worker (the parts are `Arc`s).
#[derive(Clone, Debug)]
pub struct Upstream {
    tls: Arc<rustls::ClientConfig>,
    trust: TlsTrust,
    proxy: Option<Arc<Proxy>>,
    connect_timeout: std::time::Duration,
}

impl Upstream {
    /// Reads the CA bundle and parses the proxy settings. Call once at start-up.
    pub fn from_config(config: &UpstreamConfig) -> Result<Self, ConfigError> {
        let tls = tls::client_config(&config.tls)?;
        let proxy = match &config.https_proxy {
            Some((var, url)) => {
                let no_proxy = config.no_proxy.as_ref().map(|(v, list)| (*v, list.as_str()));
                Some(Arc::new(Proxy::parse(var, url, no_proxy)?))
            }
            None => None,
        };
        Ok(Self { tls, trust: config.tls.clone(), proxy, connect_timeout: config.connect_timeout })
    }

    /// The call stage's clients for the calling worker thread (both are `!Send`): never one per request.
    pub fn client(&self) -> Client {
        Client { awc: self.awc(), plain: plain::PlainClient::new(self.connect_timeout) }
    }

    /// An awc client for the calling worker thread. awc's client is `!Send` (it wraps an `Rc`), so each worker
    /// builds its own from the shared settings; never one per request.
    pub fn awc(&self) -> awc::Client {
        let connector = awc::Connector::new()
            .connector(UpstreamConnector::new(self.proxy.clone()))
            .rustls_0_23(self.tls.clone())
            // `router_settings.connect_timeout`: awc bounds DNS + TCP (with any proxy tunnel) by the first, the TLS
            // handshake by the second; an expiry is `ConnectError::Timeout`, which the call reports as a timeout.
            .timeout(self.connect_timeout)
            .handshake_timeout(self.connect_timeout)
            .limit(CONNECTION_LIMIT);
        awc::Client::builder()
            .disable_timeout()
            // A gateway relays an upstream's redirect; following it would send the deployment's key to whatever
            // host the redirect names (and awc's redirect layer costs every request a wrapper).
            .disable_redirects()
            .connector(connector)
            .no_default_headers()
            .add_default_header(("user-agent", USER_AGENT))
            .finish()
    }

    /// One line each on trust, proxy and connecting, for the start-up log and `check-config`. No credentials.
    pub fn describe(&self) -> [String; 3] {
        let trust = match &self.trust {
            TlsTrust::BuiltIn => "upstream TLS: built-in Mozilla roots (webpki-roots)".to_owned(),
            TlsTrust::Bundle { path, source } => {
                format!("upstream TLS: only the CAs in `{}` (from {source})", path.display())
            }
            TlsTrust::Off { source } => format!("upstream TLS: certificate verification OFF (from {source}), insecure"),
        };
        let proxy = match &self.proxy {
            None => "HTTPS proxy: none (upstreams are reached directly)".to_owned(),
            Some(p) => format!(
                "HTTPS proxy: {}{} for https:// upstreams{}; http:// upstreams go direct",
                p.display,
                if p.authorization.is_some() { " (with credentials)" } else { "" },
                if p.no_proxy.is_empty() { "" } else { ", except those NO_PROXY matches" },
            ),
        };
        let connect = format!(
            "upstream connect timeout: {}s (router_settings.connect_timeout; the TLS handshake as long again)",
            self.connect_timeout.as_secs_f64()
        );
        [trust, proxy, connect]
    }
}

/// One worker's upstream clients: [`plain`] for `http://` URLs, awc (TLS, the HTTPS proxy) for the rest.
#[derive(Clone)]
pub struct Client {
    awc: awc::Client,
    plain: plain::PlainClient,
}

/// Why a call got no response head.
#[derive(Debug)]
pub enum SendError {
    /// No response head within the caller's deadline.
    Timeout,
    /// Connecting took longer than `router_settings.connect_timeout`.
    ConnectTimeout,
    /// Connecting, sending or reading the head failed; the text says why (no credentials in it).
    Failed(String),
}

impl Client {
    /// `POST`s `body` to `url` with `headers` (sent as given, after `host` and before `content-length`; the
    /// caller leaves no duplicates) and reads the response head within `timeout`.
    pub async fn post(
        &self,
        url: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Response, SendError> {
        if url.scheme_str() == Some("http") {
            let request = plain::Request::post(url, headers, body).map_err(|e| SendError::Failed(e.to_string()))?;
            return match actix_rt::time::timeout(timeout, self.plain.send(request)).await {
                Ok(Ok(response)) => Ok(Response::Plain(response)),
                Ok(Err(plain::SendError::ConnectTimeout)) => Err(SendError::ConnectTimeout),
                Ok(Err(e)) => Err(SendError::Failed(e.to_string())),
                Err(_) => Err(SendError::Timeout),
            };
        }
        let mut builder = self.awc.post(url).timeout(timeout);
        for (name, value) in headers {
            builder = builder.insert_header((name.clone(), value.clone()));
        }
        match builder.send_body(body).await {
            Ok(response) => Ok(Response::Awc(response)),
            Err(SendRequestError::Timeout) => Err(SendError::Timeout),
            Err(SendRequestError::Connect(ConnectError::Timeout)) => Err(SendError::ConnectTimeout),
            Err(e) => Err(SendError::Failed(connect_failure(&e))),
        }
    }
}

/// A response head from either client, with its body still to read.
pub enum Response {
    Awc(awc::ClientResponse),
    Plain(plain::Response),
}

impl Response {
    pub fn status(&self) -> StatusCode {
        match self {
            Response::Awc(r) => r.status(),
            Response::Plain(r) => r.status,
        }
    }

    pub fn headers(&self) -> &HeaderMap {
        match self {
            Response::Awc(r) => r.headers(),
            Response::Plain(r) => &r.headers,
        }
    }

    /// The body's length, when `Content-Length` delimits it (never when a transfer coding does: RFC 9112
    /// section 6.3, rule 3).
    pub fn content_length(&self) -> Option<u64> {
        match self {
            Response::Plain(r) => match r.framing {
                plain::Framing::Length(n) => Some(n),
                plain::Framing::Chunked | plain::Framing::Close => None,
            },
            Response::Awc(r) if r.headers().contains_key(header::TRANSFER_ENCODING) => None,
            Response::Awc(r) => r.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok(),
        }
    }

    /// The body as it arrives, errors as text; taken once (a second take is empty).
    pub fn take_body(&mut self) -> LocalBoxStream<'static, Result<Bytes, String>> {
        match self {
            Response::Awc(r) => r.take_payload().map_err(|e| e.to_string()).boxed_local(),
            Response::Plain(r) => r.body.take_out().map_err(|e| e.to_string()).boxed_local(),
        }
    }

    /// The whole body, refused beyond `limit` bytes. No deadline of its own: the caller sets one.
    pub async fn read_body(&mut self, limit: usize) -> Result<Bytes, String> {
        match self {
            Response::Awc(r) => r.body().limit(limit).await.map_err(|e| e.to_string()),
            Response::Plain(r) => r.body.take_out().read_to_end(limit).await.map_err(|e| e.to_string()),
        }
    }
}

/// The caller-facing reason a connection failed. Certificate problems get a message that says so and where the
/// trust comes from; everything else is awc's own text (tunnel failures carry the proxy's part).
pub fn connect_failure(error: &SendRequestError) -> String {
    if let SendRequestError::Connect(ConnectError::Io(io)) = error {
        if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            return match tls {
                rustls::Error::InvalidCertificate(_) => format!(
                    "TLS certificate verification failed ({tls}); if the upstream uses a private CA, set \
                     `litellm_settings.ssl_verify` or SSL_CERT_FILE to its CA bundle"
                ),
                other => format!("TLS handshake failed: {other}"),
            };
        }
    }
    error.to_string()
}
