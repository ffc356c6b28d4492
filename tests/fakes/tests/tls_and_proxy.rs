//! The HTTPS fake and the `CONNECT` proxy fake, checked with raw sockets and a bare rustls client before the
//! gateway is tested against them.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::Arc,
    time::Duration,
};

use rustls::{pki_types::pem::PemObject, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tollgate_fakes::{ConnectProxy, FakeUpstream, SeenConnect, TestCa};

/// A client config trusting only `ca`.
fn client_config(ca: &TestCa) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(cert.expect("PEM certificate")).expect("CA accepted");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// `GET /v1/models` with `Connection: close` over `stream`; the whole response as text.
fn get_models(stream: &mut impl ReadWrite, host: &str) -> std::io::Result<String> {
    stream.write_all(format!("GET /v1/models HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // Servers may close without close_notify; the response is complete by then.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tcp(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
}

#[test]
fn the_https_fake_is_trusted_through_its_ca_only() {
    let (fake, ca) = FakeUpstream::start_tls();
    let addr = fake.url.strip_prefix("https://").expect("https url").to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    for name in ["127.0.0.1", "localhost"] {
        let conn = ClientConnection::new(client_config(&ca), name.to_owned().try_into().expect("server name"))
            .expect("client connection");
        let mut tls = StreamOwned::new(conn, tcp(&addr));
        let response = get_models(&mut tls, name).expect("TLS request");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{name}: {response}");
    }

    let other = TestCa::new("another CA");
    let conn = ClientConnection::new(client_config(&other), "127.0.0.1".try_into().expect("server name"))
        .expect("client connection");
    let mut tls = StreamOwned::new(conn, tcp(&addr));
    let err = get_models(&mut tls, "127.0.0.1").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("UnknownIssuer"), "a leaf from another CA is rejected: {err}");
}

#[test]
fn the_connect_proxy_tunnels_and_records_targets() {
    let fake = FakeUpstream::start();
    let target = fake.url.strip_prefix("http://").expect("http url").to_owned();
    let proxy = ConnectProxy::start();
    let mut stream = tcp(proxy.url.strip_prefix("http://").expect("proxy url"));
    stream
        .write_all(
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic eDp5\r\n\r\n")
                .as_bytes(),
        )
        .expect("send CONNECT");
    let mut head = [0u8; 39];
    stream.read_exact(&mut head).expect("CONNECT answer");
    assert_eq!(&head, b"HTTP/1.1 200 Connection established\r\n\r\n");
    let response = get_models(&mut stream, &target).expect("request through the tunnel");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert_eq!(proxy.connects(), vec![SeenConnect { target, authorization: Some("Basic eDp5".into()) }]);
}

#[test]
fn a_refusing_proxy_answers_with_its_status_and_tunnels_nothing() {
    let proxy = ConnectProxy::refusing("407 Proxy Authentication Required");
    let mut stream = tcp(proxy.url.strip_prefix("http://").expect("proxy url"));
    stream.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").expect("send CONNECT");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert_eq!(answer, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(proxy.connects(), vec![SeenConnect { target: "example.com:443".into(), authorization: None }]);
}
