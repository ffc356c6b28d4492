//! The TCP connector awc dials upstreams with: direct, or, for `https://` upstreams the proxy applies to, an HTTP
//! `CONNECT` tunnel through the proxy. awc then runs TLS to the upstream inside the tunnel, so the proxy sees the
//! target's host and port but none of the traffic.
//!
//! Contract: the proxy's credentials go only into the `Proxy-Authorization` header; errors name the proxy as
//! `host:port` and the target, never the credentials. A proxy that answers anything but 2xx, answers garbage, or
//! is silent past the deadline fails the connection (awc reports it as a connect error, so the caller gets 502).
//! Why a custom connector: awc has no proxy support, but `awc::Connector::connector` accepts any TCP connector
//! service and layers its pool and TLS on top of it.

use std::{io, sync::Arc, time::Duration};

use actix_rt::net::TcpStream;
use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use actix_web::http::Uri;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::proxy::Proxy;
use crate::secret::Secret;

/// How long a proxy may take to answer `CONNECT` (it connects to the target meanwhile). awc's own connect timeout
/// (5 s by default, around DNS + TCP + this whole exchange) is as long and usually fires first; this deadline
/// keeps the tunnel bounded on its own, whoever drives it.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// A `CONNECT` answer head larger than this is not a proxy talking.
const MAX_HEAD: usize = 8 * 1024;
/// Status text from the proxy is shown to callers; keep it short.
const MAX_STATUS_TEXT: usize = 120;

/// Direct TCP, or a `CONNECT` tunnel when the proxy applies to the upstream. Cheap to clone (one per worker).
#[derive(Clone)]
pub struct UpstreamConnector {
    direct: ConnectorService,
    proxy: Option<Arc<Proxy>>,
}

impl UpstreamConnector {
    pub fn new(proxy: Option<Arc<Proxy>>) -> Self {
        Self { direct: ConnectorService::default(), proxy }
    }
}

impl Service<ConnectInfo<Uri>> for UpstreamConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let connecting: Self::Future = match &self.proxy {
            Some(proxy) if proxy.applies_to(req.request()) => {
                Box::pin(tunnel(self.direct.clone(), proxy.clone(), req, ANSWER_DEADLINE))
            }
            _ => Box::pin(self.direct.call(req)),
        };
        Box::pin(async move {
            let connection = connecting.await?;
            // Why: awc writes a request's head and body separately; with Nagle's algorithm the body of a small
            // request waits for the upstream's delayed ACK of the head (about 40 ms on Linux). Once per connection.
            if let Err(e) = connection.io_ref().set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY on an upstream connection");
            }
            Ok(connection)
        })
    }
}

/// A failed tunnel, as the caller's 502 message shows it.
#[derive(Debug, thiserror::Error)]
#[error("HTTPS proxy {proxy} could not open a tunnel to {target}: {failure}")]
pub struct TunnelError {
    proxy: String,
    target: String,
    failure: TunnelFailure,
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelFailure {
    #[error("cannot connect to the proxy: {0}")]
    Connect(String),
    #[error("the proxy answered `{0}`")]
    Refused(String),
    #[error("the proxy's answer is not an HTTP response")]
    Malformed,
    #[error("the proxy's answer is longer than {MAX_HEAD} bytes")]
    TooLong,
    #[error("no answer within {0}s")]
    Silent(u64),
    #[error("the proxy closed the connection")]
    Closed,
    #[error("{0}")]
    Io(io::Error),
}

async fn tunnel(
    direct: ConnectorService,
    proxy: Arc<Proxy>,
    req: ConnectInfo<Uri>,
    deadline: Duration,
) -> Result<Connection<Uri, TcpStream>, ConnectError> {
    let target = authority(req.hostname(), req.port());
    let fail = |failure| {
        let error = TunnelError { proxy: proxy.display.clone(), target: target.clone(), failure };
        // Always `Io`: awc panics on some other variants (`InvalidInput`), and `Io` keeps our message.
        ConnectError::Io(io::Error::other(error))
    };
    let connection = direct.call(ConnectInfo::new(proxy.uri.clone())).await.map_err(|e| {
        let reason = match e {
            ConnectError::Io(io) => io.to_string(),
            ConnectError::Resolver(e) => format!("cannot resolve its name: {e}"),
            other => other.to_string(),
        };
        fail(TunnelFailure::Connect(reason))
    })?;
    let (mut stream, _) = connection.into_parts();
    match actix_rt::time::timeout(deadline, handshake(&mut stream, &target, proxy.authorization.as_ref())).await {
        Ok(Ok(())) => Ok(Connection::new(req.request().clone(), stream)),
        Ok(Err(failure)) => Err(fail(failure)),
        Err(_) => Err(fail(TunnelFailure::Silent(deadline.as_secs()))),
    }
}

/// `host:port` for the request line; IPv6 literals need brackets there.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Sends `CONNECT target` and reads the answer head; `Ok` means the stream is now a tunnel to the target.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    target: &str,
    authorization: Option<&Secret>,
) -> Result<(), TunnelFailure> {
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth.expose());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    io.write_all(request.as_bytes()).await.map_err(TunnelFailure::Io)?;
    io.flush().await.map_err(TunnelFailure::Io)?;
    let head = read_head(io).await?;
    let status_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let (code, text) = parse_status_line(status_line).ok_or(TunnelFailure::Malformed)?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(TunnelFailure::Refused(text))
    }
}

/// Reads up to and including the blank line that ends the head. Byte by byte, so nothing after the head (the
/// upstream's first TLS bytes) is consumed; a connection reads one head, so the cost does not matter.
async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> Result<Vec<u8>, TunnelFailure> {
    let mut head = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_HEAD {
            return Err(TunnelFailure::TooLong);
        }
        match io.read(&mut byte).await.map_err(TunnelFailure::Io)? {
            0 => return Err(TunnelFailure::Closed),
            _ => head.push(byte[0]),
        }
    }
    Ok(head)
}

/// `HTTP/1.1 407 Proxy Authentication Required` -> (407, "407 Proxy Authentication Required"), the text
/// cleaned of control characters and cut short, since it ends up in the caller's error message.
fn parse_status_line(line: &[u8]) -> Option<(u16, String)> {
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let rest = line.strip_prefix("HTTP/1.")?.get(1..)?.strip_prefix(' ')?;
    let code: u16 = rest.get(..3)?.parse().ok()?;
    let text: String = rest.chars().filter(|c| !c.is_control()).take(MAX_STATUS_TEXT).collect();
    Some((code, text))
}

#[cfg(test)]
mod tests {
    use tokio::io::duplex;

    use super::*;

    /// Runs the handshake against a scripted proxy answer; returns the result and what the proxy received.
    async fn exchange(answer: &'static [u8], auth: Option<&str>) -> (Result<(), String>, String) {
        let (mut client, mut proxy) = duplex(64 * 1024);
        let secret = auth.map(Secret::new);
        let proxy_side = async move {
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.ends_with(b"\r\n\r\n") {
                let n = proxy.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            let _ = proxy.write_all(answer).await;
            // Closing after the answer shows whether the handshake waits for more than the head.
            drop(proxy);
            String::from_utf8_lossy(&seen).into_owned()
        };
        let client_side = async { handshake(&mut client, "api.example.com:443", secret.as_ref()).await };
        let (result, seen) = tokio::join!(client_side, proxy_side);
        (result.map_err(|e| e.to_string()), seen)
    }

    #[actix_rt::test]
    async fn connect_request_carries_target_and_credentials() {
        let (result, seen) = exchange(b"HTTP/1.1 200 Connection established\r\n\r\n", Some("Basic dTpw")).await;
        assert_eq!(result, Ok(()));
        assert_eq!(
            seen,
            "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        let (_, seen) = exchange(b"HTTP/1.0 200 OK\r\nVia: x\r\n\r\n", None).await;
        assert!(!seen.contains("Proxy-Authorization"), "{seen}");
    }

    #[actix_rt::test]
    async fn proxy_answers_decide_the_tunnel() {
        let cases: [(&'static [u8], Result<(), &str>); 7] = [
            (b"HTTP/1.1 200 Connection established\r\n\r\n", Ok(())),
            (b"HTTP/1.0 204 No Content\r\nX: y\r\n\r\n", Ok(())),
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
                Err("the proxy answered `407 Proxy Authentication Required`"),
            ),
            (b"HTTP/1.1 403 Forbidden\r\n\r\n", Err("the proxy answered `403 Forbidden`")),
            (b"SSH-2.0-OpenSSH\r\n\r\n", Err("not an HTTP response")),
            (b"HTTP/1.1 200 OK\r\n", Err("the proxy closed the connection")),
            (b"", Err("the proxy closed the connection")),
        ];
        for (answer, want) in cases {
            let (result, _) = exchange(answer, None).await;
            match want {
                Ok(()) => assert_eq!(result, Ok(()), "{answer:?}"),
                Err(text) => assert!(result.as_ref().is_err_and(|e| e.contains(text)), "{answer:?}: {result:?}"),
            }
        }
    }

    #[actix_rt::test]
    async fn a_silent_or_endless_proxy_is_cut_off() {
        let (mut client, _proxy) = duplex(64 * 1024);
        let silent = actix_rt::time::timeout(Duration::from_millis(50), handshake(&mut client, "a:443", None)).await;
        assert!(silent.is_err(), "waits for the answer; the caller's deadline ends it");

        let (mut client, mut proxy) = duplex(64 * 1024);
        let endless = async move {
            let _ = proxy.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let filler = vec![b'x'; MAX_HEAD];
            let _ = proxy.write_all(&filler).await;
            proxy
        };
        let (result, _proxy) = tokio::join!(handshake(&mut client, "a:443", None), endless);
        assert!(matches!(result, Err(TunnelFailure::TooLong)), "{result:?}");
    }

    #[test]
    fn status_lines_and_authorities() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Some((200, "200 OK".into())));
        assert_eq!(parse_status_line(b"HTTP/1.0 502 Bad\x07 Gateway"), Some((502, "502 Bad Gateway".into())));
        assert_eq!(parse_status_line(b"HTTP/2 200"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2x0 OK"), None);
        assert_eq!(authority("api.example.com", 443), "api.example.com:443");
        assert_eq!(authority("[::1]", 8443), "[::1]:8443");
        assert_eq!(authority("::1", 8443), "[::1]:8443");
    }
}
