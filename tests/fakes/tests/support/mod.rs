//! A tiny blocking HTTP/1.1 client over `TcpStream` for the wire tests; decoding the response, and saying whether
//! its framing completed, is `tollgate_fakes::raw`'s.

use std::{io::Write, net::TcpStream};

pub use tollgate_fakes::raw::{parse, read_response, Response};

/// Opens a connection and sends one request (with `Connection: close`); the caller reads.
pub fn send(url: &str, method: &str, path: &str, body: Option<&str>) -> TcpStream {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect to the fake");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer sk-test\r\nX-Custom-Header: Mixed\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    stream
}

/// Sends one request and reads until the server closes the connection.
pub fn request(url: &str, method: &str, path: &str, body: Option<&str>) -> Response {
    read_response(&mut send(url, method, path, body))
}

pub fn post(url: &str, path: &str, body: &str) -> Response {
    request(url, "POST", path, Some(body))
}
