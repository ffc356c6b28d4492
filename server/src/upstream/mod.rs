//! How tollgate reaches upstreams: which certificates it trusts (`tls.rs`), the HTTPS proxy and `NO_PROXY`
//! (`proxy.rs`) with its `CONNECT` tunnel (`tunnel.rs`), and the awc client each worker builds from them. Also
//! the check for keys sent over plain HTTP (`cleartext.rs`) and the wording of connect failures.
//!
//! Contract: everything that can be wrong (unreadable CA bundle, bad proxy URL) is found once, at start-up or by
//! `check-config`, as a [`ConfigError`] naming the key or variable; workers only clone what was validated.
//! Nothing here logs or returns proxy credentials or API keys.

mod cleartext;
mod proxy;
mod tls;
mod tunnel;

use std::sync::Arc;

use awc::error::{ConnectError, SendRequestError};

pub use self::cleartext::key_in_cleartext;
use self::{proxy::Proxy, tunnel::UpstreamConnector};
use crate::config::{ConfigError, TlsTrust, UpstreamConfig};

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

    /// A client for the calling worker thread. awc's client is `!Send` (it wraps an `Rc`), so each worker builds
    /// its own from the shared settings; never one per request.
    pub fn client(&self) -> awc::Client {
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
            .add_default_header(("user-agent", concat!("tollgate/", env!("CARGO_PKG_VERSION"))))
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
