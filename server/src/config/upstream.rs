//! How tollgate reaches upstreams, as the user asked for it: which CAs to trust and which HTTPS proxy to use.
//!
//! Sources, the way LiteLLM (Python, httpx) reads them:
//! - `SSL_VERIFY` (environment) overrides `litellm_settings.ssl_verify`: `false` turns certificate checks off, a
//!   path names a PEM CA bundle, `true` (default) means "verify".
//! - When verifying without an explicit bundle, `SSL_CERT_FILE`, then `REQUESTS_CA_BUNDLE`, may name one.
//! - A bundle *replaces* the built-in roots, as `SSL_CERT_FILE` does for Python's `ssl` module and
//!   `ssl_verify: <path>` does in LiteLLM: to trust a private CA and the public ones, put both in the file.
//! - `https_proxy`, then `HTTPS_PROXY`; `no_proxy`, then `NO_PROXY` (lowercase first, as curl and Python).
//!
//! This module only records the values and where they came from (for error messages). Reading the bundle and
//! parsing the proxy URL happen in `crate::upstream`, once, at start-up and in `check-config`.

use std::path::PathBuf;

use super::{raw::RawSslVerify, ConfigError, EnvLookup};
use crate::secret::Secret;

/// Upstream TLS trust, proxy and connect settings. Read once at start-up; SIGHUP does not apply changes to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub tls: TlsTrust,
    /// The HTTPS proxy URL and the variable it came from. Secret: it may carry `user:password@`.
    pub https_proxy: Option<(&'static str, Secret)>,
    /// The `NO_PROXY` list and the variable it came from.
    pub no_proxy: Option<(&'static str, String)>,
    /// `router_settings.connect_timeout`: DNS, TCP and proxy tunnel; the TLS handshake gets as long again. Set by
    /// `config::validate` (the default until then).
    pub connect_timeout: std::time::Duration,
}

impl UpstreamConfig {
    /// The same trust and proxy (everything but the connect timeout, which a restart message names on its own).
    pub fn same_connections(&self, other: &UpstreamConfig) -> bool {
        (&self.tls, &self.https_proxy, &self.no_proxy) == (&other.tls, &other.https_proxy, &other.no_proxy)
    }
}

/// awc's own default.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Which certificates an upstream may present. `source` names the config key or environment variable that
/// chose it, so errors and warnings point at the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// The Mozilla root store compiled into the binary (webpki-roots), the counterpart of LiteLLM's certifi.
    BuiltIn,
    /// Only the CAs in this PEM file.
    Bundle { path: PathBuf, source: &'static str },
    /// No certificate verification at all.
    Off { source: &'static str },
}

const SSL_VERIFY_KEY: &str = "litellm_settings.ssl_verify";
const BUNDLE_VARS: [&str; 2] = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"];

enum Verify {
    On,
    Off,
    Bundle(String),
}

/// Resolves the settings from the config value and the environment; warnings name what they are about.
pub fn resolve(
    ssl_verify: Option<RawSslVerify>,
    env: &dyn EnvLookup,
    warnings: &mut Vec<String>,
) -> Result<UpstreamConfig, ConfigError> {
    let set = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
    let (verify, source) = match (set("SSL_VERIFY"), ssl_verify) {
        (Some(text), _) => (verify_from_text("SSL_VERIFY", &text)?, "SSL_VERIFY"),
        (None, Some(RawSslVerify::Bool(b))) => (if b { Verify::On } else { Verify::Off }, SSL_VERIFY_KEY),
        (None, Some(RawSslVerify::Text(text))) => (verify_from_text(SSL_VERIFY_KEY, &text)?, SSL_VERIFY_KEY),
        (None, None) => (Verify::On, SSL_VERIFY_KEY),
    };
    let tls = match verify {
        Verify::Off => {
            warnings.push(format!(
                "`{source}` is false: upstream TLS certificates are NOT verified. This is insecure: anyone on the \
                 network path can impersonate a provider and read the API keys and prompts sent to it"
            ));
            TlsTrust::Off { source }
        }
        Verify::Bundle(path) => TlsTrust::Bundle { path: path.into(), source },
        Verify::On => BUNDLE_VARS
            .iter()
            .find_map(|var| set(var).map(|path| TlsTrust::Bundle { path: path.into(), source: var }))
            .unwrap_or(TlsTrust::BuiltIn),
    };
    let https_proxy = ["https_proxy", "HTTPS_PROXY"].into_iter().find_map(|v| set(v).map(|url| (v, Secret::new(url))));
    let no_proxy = ["no_proxy", "NO_PROXY"].into_iter().find_map(|v| set(v).map(|list| (v, list)));
    Ok(UpstreamConfig { tls, https_proxy, no_proxy, connect_timeout: DEFAULT_CONNECT_TIMEOUT })
}

fn verify_from_text(source: &str, text: &str) -> Result<Verify, ConfigError> {
    let text = text.trim();
    Ok(match text.to_ascii_lowercase().as_str() {
        "true" => Verify::On,
        "false" => Verify::Off,
        "" => return Err(ConfigError::invalid(source, "must be true, false or the path of a CA bundle")),
        _ => Verify::Bundle(text.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ssl_verify: Option<RawSslVerify>, env: &[(&str, &str)]) -> (UpstreamConfig, Vec<String>) {
        let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
        let mut warnings = Vec::new();
        let config = resolve(ssl_verify, &lookup, &mut warnings).unwrap_or_else(|e| unreachable!("{e}"));
        (config, warnings)
    }

    fn bundle(path: &str, source: &'static str) -> TlsTrust {
        TlsTrust::Bundle { path: path.into(), source }
    }

    #[test]
    fn tls_trust_follows_litellm_precedence() {
        use RawSslVerify::{Bool, Text};
        let text = |s: &str| Some(Text(s.to_owned()));
        let cases: Vec<(Option<RawSslVerify>, Vec<(&str, &str)>, TlsTrust)> = vec![
            (None, vec![], TlsTrust::BuiltIn),
            (Some(Bool(true)), vec![], TlsTrust::BuiltIn),
            (Some(Bool(false)), vec![], TlsTrust::Off { source: SSL_VERIFY_KEY }),
            (text("False"), vec![], TlsTrust::Off { source: SSL_VERIFY_KEY }),
            (text("TRUE"), vec![], TlsTrust::BuiltIn),
            (text("/ca.pem"), vec![], bundle("/ca.pem", SSL_VERIFY_KEY)),
            (None, vec![("SSL_CERT_FILE", "/env.pem")], bundle("/env.pem", "SSL_CERT_FILE")),
            (None, vec![("REQUESTS_CA_BUNDLE", "/req.pem")], bundle("/req.pem", "REQUESTS_CA_BUNDLE")),
            (
                None,
                vec![("SSL_CERT_FILE", "/env.pem"), ("REQUESTS_CA_BUNDLE", "/req.pem")],
                bundle("/env.pem", "SSL_CERT_FILE"),
            ),
            (None, vec![("SSL_CERT_FILE", "")], TlsTrust::BuiltIn),
            // An explicit bundle or `false` wins over SSL_CERT_FILE.
            (text("/ca.pem"), vec![("SSL_CERT_FILE", "/env.pem")], bundle("/ca.pem", SSL_VERIFY_KEY)),
            (Some(Bool(false)), vec![("SSL_CERT_FILE", "/env.pem")], TlsTrust::Off { source: SSL_VERIFY_KEY }),
            // SSL_VERIFY overrides the config, as in LiteLLM.
            (Some(Bool(true)), vec![("SSL_VERIFY", "false")], TlsTrust::Off { source: "SSL_VERIFY" }),
            (Some(Bool(false)), vec![("SSL_VERIFY", "/v.pem")], bundle("/v.pem", "SSL_VERIFY")),
            (
                Some(Bool(false)),
                vec![("SSL_VERIFY", "true"), ("SSL_CERT_FILE", "/e.pem")],
                bundle("/e.pem", "SSL_CERT_FILE"),
            ),
        ];
        for (setting, env, want) in cases {
            let label = format!("{setting:?} {env:?}");
            assert_eq!(run(setting, &env).0.tls, want, "{label}");
        }
    }

    #[test]
    fn turning_verification_off_is_a_loud_warning() {
        let (_, warnings) = run(Some(RawSslVerify::Bool(false)), &[]);
        assert!(warnings.len() == 1 && warnings[0].contains("NOT verified") && warnings[0].contains("insecure"));
        assert!(run(None, &[]).1.is_empty());
    }

    #[test]
    fn an_empty_ssl_verify_string_is_an_error_naming_the_key() {
        let mut warnings = Vec::new();
        let err = resolve(Some(RawSslVerify::Text(" ".into())), &|_: &str| None, &mut warnings)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(SSL_VERIFY_KEY), "{err}");
    }

    #[test]
    fn proxy_variables_prefer_lowercase_and_skip_empty_values() {
        let (c, _) = run(None, &[("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "http://lower:2")]);
        assert_eq!(c.https_proxy.as_ref().map(|(v, u)| (*v, u.expose())), Some(("https_proxy", "http://lower:2")));
        let (c, _) = run(None, &[("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "")]);
        assert_eq!(c.https_proxy.as_ref().map(|(v, _)| *v), Some("HTTPS_PROXY"));
        let (c, _) = run(None, &[("NO_PROXY", "a"), ("no_proxy", "b")]);
        assert_eq!(c.no_proxy, Some(("no_proxy", "b".to_owned())));
        let nothing = UpstreamConfig {
            tls: TlsTrust::BuiltIn,
            https_proxy: None,
            no_proxy: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        };
        assert_eq!(run(None, &[]).0, nothing, "no settings: built-in roots, no proxy");
    }
}
