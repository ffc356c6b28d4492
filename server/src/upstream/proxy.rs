//! The HTTPS proxy as configured: its address and credentials (`HTTPS_PROXY`) and the upstream hosts that bypass
//! it (`NO_PROXY`). Pure parsing and matching; the tunnel itself is `tunnel.rs`.
//!
//! Contract: the proxy URL may carry `user:password@`; it is read into a [`Secret`] header value and never
//! appears in errors, logs or `Debug` output (those show `host:port` only).
//!
//! Rules, following curl where the tools disagree (documented in the README):
//! - only `http://` proxies (or a bare `host:port`); the default port is 80, as in Python's and Go's clients;
//! - only `https://` upstreams are tunnelled; plain `http://` upstreams always go direct (`HTTP_PROXY` is not read);
//! - `NO_PROXY` is a comma (or space) separated list: `*` bypasses everything; a name matches itself and its
//!   subdomains (`example.com` and `.example.com` both match `api.example.com`; `*.example.com` is read as
//!   `.example.com`); an IP address or CIDR block (`10.0.0.0/8`) matches IP-literal hosts in it; `entry:port`
//!   restricts an entry to that port. Matching uses the URL's host as written, without DNS lookups, and loopback
//!   hosts are not bypassed implicitly.

use std::{fmt, net::IpAddr};

use actix_web::http::Uri;
use base64::Engine;

use crate::{config::ConfigError, secret::Secret};

/// An HTTP proxy that tunnels `https://` upstream connections with `CONNECT`.
pub struct Proxy {
    /// `http://host:port`: where the tunnel's TCP connection goes. No credentials in it.
    pub uri: Uri,
    /// `host:port`, for messages.
    pub display: String,
    /// The whole `Proxy-Authorization` value (`Basic ...`), if the URL carried credentials.
    pub authorization: Option<Secret>,
    pub no_proxy: NoProxy,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("address", &self.display)
            .field("authorization", &self.authorization.as_ref().map(|_| "****"))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl Proxy {
    /// Parses the proxy URL from `var` and the optional `NO_PROXY` list. Errors name the variable, never the URL
    /// (it may contain a password).
    pub fn parse(var: &str, url: &Secret, no_proxy: Option<(&str, &str)>) -> Result<Self, ConfigError> {
        let invalid = |message: &str| ConfigError::invalid(var, message);
        let text = url.expose().trim();
        let text = if text.contains("://") { text.to_owned() } else { format!("http://{text}") };
        let parsed = url::Url::parse(&text).map_err(|e| invalid(&format!("is not a valid proxy URL ({e})")))?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(invalid(
                    "https:// proxies (TLS to the proxy itself) are not supported; use the proxy's http:// address \
                     (the connection to the upstream stays TLS end to end inside the tunnel)",
                ))
            }
            other => return Err(invalid(&format!("`{other}://` proxies are not supported; use an http:// proxy"))),
        }
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid("the proxy URL has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let display = format!("{host}:{port}");
        let uri = format!("http://{display}")
            .parse::<Uri>()
            .map_err(|e| invalid(&format!("is not a valid proxy URL ({e})")))?;
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid("the proxy credentials are not valid UTF-8 after percent-decoding"))
        };
        let authorization = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, password) => {
                let pair = format!("{}:{}", decode(user)?, decode(password.unwrap_or(""))?);
                Some(Secret::new(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))))
            }
        };
        let no_proxy = match no_proxy {
            Some((var, list)) => NoProxy::parse(list).map_err(|entry| {
                ConfigError::invalid(var, format!("`{entry}` is not a host, IP address, CIDR block or `*`"))
            })?,
            None => NoProxy::default(),
        };
        Ok(Self { uri, display, authorization, no_proxy })
    }

    /// Whether a connection to `upstream` goes through this proxy: `https://` only, unless `NO_PROXY` matches.
    pub fn applies_to(&self, upstream: &Uri) -> bool {
        let https = upstream.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let host = upstream.host().unwrap_or("");
        https && !self.no_proxy.matches(host, upstream.port_u16().unwrap_or(443))
    }
}

/// The parsed `NO_PROXY` list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// A host name, lowercase, without leading dot: matches itself and any subdomain.
    Name { name: String, port: Option<u16> },
    /// An address block; a single address is a block of its full length.
    Net { addr: IpAddr, prefix: u8, port: Option<u16> },
}

impl NoProxy {
    /// Parses the list; `Err` carries the first entry that is malformed (a bad port or prefix length).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for entry in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.all = true;
                continue;
            }
            out.rules.push(Rule::parse(entry).ok_or_else(|| entry.to_owned())?);
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.rules.is_empty()
    }

    /// Whether `host` (as in a URL; IPv6 may be bracketed) on `port` bypasses the proxy.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.rules.iter().any(|rule| match rule {
            Rule::Name { name, port: p } => {
                p.is_none_or(|p| p == port)
                    && (host == *name || host.strip_suffix(name.as_str()).is_some_and(|rest| rest.ends_with('.')))
            }
            Rule::Net { addr, prefix, port: p } => {
                p.is_none_or(|p| p == port) && ip.is_some_and(|ip| in_block(ip, *addr, *prefix))
            }
        })
    }
}

impl Rule {
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim().to_ascii_lowercase();
        let (body, port) = split_port(&entry)?;
        if let Some((addr, prefix)) = body.split_once('/') {
            let addr: IpAddr = addr.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            return (prefix <= max).then_some(Self::Net { addr, prefix, port });
        }
        if let Ok(addr) = body.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Some(Self::Net { addr, prefix, port });
        }
        let name = body.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
        (!name.is_empty()).then(|| Self::Name { name: name.to_owned(), port })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, a bare IPv6 address, or a CIDR block -> (body, port).
/// `None` for a port that is not a number.
fn split_port(entry: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((addr, Some(port.parse().ok()?))),
            None if after.is_empty() || after.starts_with('/') => Some((entry.trim_matches(['[', ']']), None)),
            None => None,
        };
    }
    // More than one colon and no brackets: a bare IPv6 address (possibly with a prefix), never a port.
    if entry.matches(':').count() > 1 {
        return Some((entry, None));
    }
    match entry.split_once(':') {
        Some((body, port)) => Some((body, Some(port.parse().ok()?))),
        None => Some((entry, None)),
    }
}

fn in_block(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(url: &str, no_proxy: Option<&str>) -> Result<Proxy, String> {
        Proxy::parse("HTTPS_PROXY", &Secret::new(url), no_proxy.map(|l| ("NO_PROXY", l))).map_err(|e| e.to_string())
    }

    #[test]
    fn proxy_urls_parse_into_address_and_credentials() {
        let basic = |pair: &str| Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)));
        let cases: [(&str, &str, Option<String>); 6] = [
            ("http://proxy.internal:3128", "proxy.internal:3128", None),
            ("http://proxy.internal", "proxy.internal:80", None),
            ("proxy.internal:8080", "proxy.internal:8080", None),
            ("http://user:p%40ss@proxy:3128/", "proxy:3128", basic("user:p@ss")),
            ("http://token@proxy:3128", "proxy:3128", basic("token:")),
            ("http://[::1]:3128", "[::1]:3128", None),
        ];
        for (url, display, auth) in cases {
            let p = proxy(url, None).unwrap_or_else(|e| unreachable!("{url}: {e}"));
            assert_eq!(p.display, display, "{url}");
            assert_eq!(p.uri.to_string(), format!("http://{display}/"), "{url}");
            assert_eq!(p.authorization.as_ref().map(|s| s.expose().to_owned()), auth, "{url}");
        }
    }

    #[test]
    fn unsupported_or_malformed_proxy_urls_are_errors_without_the_password() {
        let cases = [
            ("https://user:hunter2@proxy:443", "https:// proxies"),
            ("socks5://user:hunter2@proxy:1080", "`socks5://` proxies are not supported"),
            ("http://user:hunter2@:3128", "HTTPS_PROXY"),
            ("http://user:hunter2@proxy:notaport", "not a valid proxy URL"),
        ];
        for (url, want) in cases {
            let err = proxy(url, None).err().unwrap_or_default();
            assert!(err.contains(want) && err.starts_with("`HTTPS_PROXY`"), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
        assert!(!format!("{:?}", proxy("http://u:hunter2@p:1", None)).contains("hunter2"));
    }

    #[test]
    fn only_https_upstreams_not_in_no_proxy_use_the_proxy() {
        let p =
            proxy("http://proxy:3128", Some("internal.example, 10.0.0.0/8")).unwrap_or_else(|e| unreachable!("{e}"));
        let cases = [
            ("https://api.openai.com/v1/chat/completions", true),
            ("http://api.openai.com/v1/chat/completions", false),
            ("https://vllm.internal.example:8443/v1", false),
            ("https://10.1.2.3/v1", false),
            ("https://11.1.2.3/v1", true),
        ];
        for (url, want) in cases {
            let uri: Uri = url.parse().unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(p.applies_to(&uri), want, "{url}");
        }
    }

    #[test]
    fn no_proxy_matching_follows_curl() {
        let cases: &[(&str, &str, u16, bool)] = &[
            ("*", "anything.example", 443, true),
            ("example.com", "example.com", 443, true),
            ("example.com", "api.example.com", 443, true),
            ("example.com", "badexample.com", 443, false),
            (".example.com", "example.com", 443, true),
            (".example.com", "a.b.example.com", 443, true),
            ("*.example.com", "api.example.com", 443, true),
            ("EXAMPLE.com", "Api.Example.COM.", 443, true),
            ("example.com:8443", "api.example.com", 8443, true),
            ("example.com:8443", "api.example.com", 443, false),
            ("127.0.0.1", "127.0.0.1", 443, true),
            ("127.0.0.1", "127.0.0.2", 443, false),
            ("127.0.0.0/8", "127.9.9.9", 443, true),
            ("10.0.0.0/8", "11.0.0.1", 443, false),
            ("0.0.0.0/0", "8.8.8.8", 443, true),
            ("127.0.0.1:9000", "127.0.0.1", 9000, true),
            ("127.0.0.1:9000", "127.0.0.1", 443, false),
            ("::1", "[::1]", 443, true),
            ("[::1]:8443", "[::1]", 8443, true),
            ("[::1]:8443", "[::1]", 443, false),
            ("fd00::/8", "[fd12::1]", 443, true),
            ("fd00::/8", "10.0.0.1", 443, false),
            ("localhost", "127.0.0.1", 443, false),
            ("a.com, b.com", "b.com", 443, true),
            ("a.com b.com", "x.b.com", 443, true),
            ("", "a.com", 443, false),
        ];
        for (list, host, port, want) in cases {
            let rules = NoProxy::parse(list).unwrap_or_else(|e| unreachable!("{list}: {e}"));
            assert_eq!(rules.matches(host, *port), *want, "NO_PROXY={list:?} host={host} port={port}");
        }
    }

    #[test]
    fn malformed_no_proxy_entries_are_errors_naming_the_entry() {
        for (list, bad) in [("a.com,b.com:http", "b.com:http"), ("10.0.0.0/40", "10.0.0.0/40"), ("[::1", "[::1")] {
            assert_eq!(NoProxy::parse(list), Err(bad.to_owned()), "{list}");
        }
        let err = proxy("http://proxy:1", Some("x:y")).err().unwrap_or_default();
        assert!(err.starts_with("`NO_PROXY`") && err.contains("`x:y`"), "{err}");
    }
}
