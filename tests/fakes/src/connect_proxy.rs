//! A tiny HTTP `CONNECT` proxy for tests: it reads the `CONNECT host:port` head, records the target and the
//! `Proxy-Authorization` header, connects to the target, answers 200 and copies bytes both ways. Plain std
//! sockets and threads, so it shares no code with the gateway it tests.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
};

/// One `CONNECT` the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenConnect {
    /// `host:port` from the request line.
    pub target: String,
    /// The `Proxy-Authorization` header as sent, if any.
    pub authorization: Option<String>,
}

/// A running proxy; dropping it stops accepting (open tunnels finish on their own).
pub struct ConnectProxy {
    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub url: String,
    seen: Arc<Mutex<Vec<SeenConnect>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl ConnectProxy {
    /// A proxy that tunnels every `CONNECT`.
    pub fn start() -> ConnectProxy {
        Self::spawn(None)
    }

    /// A proxy that answers every `CONNECT` with `status` (e.g. `407 Proxy Authentication Required`) and
    /// tunnels nothing.
    pub fn refusing(status: &str) -> ConnectProxy {
        Self::spawn(Some(status.to_owned()))
    }

    /// Every `CONNECT` received so far, oldest first.
    pub fn connects(&self) -> Vec<SeenConnect> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn spawn(refuse: Option<String>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (seen, refuse) = (seen2.clone(), refuse.clone());
                thread::spawn(move || handle(conn, &seen, refuse.as_deref()));
            }
        });
        ConnectProxy { url: format!("http://{addr}"), seen, stop, addr }
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn handle(mut client: TcpStream, seen: &Mutex<Vec<SeenConnect>>, refuse: Option<&str>) {
    let Some(head) = read_head(&mut client) else { return };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let authorization = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("proxy-authorization").then(|| value.trim().to_owned())
    });
    seen.lock().unwrap_or_else(|p| p.into_inner()).push(SeenConnect { target: target.to_owned(), authorization });
    if let Some(status) = refuse {
        let _ = client.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        return;
    }
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
        return;
    }
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else { return };
    let up = thread::spawn(move || pipe(client2, upstream2));
    pipe(upstream, client);
    let _ = up.join();
}

/// Copies until EOF or error, then closes the writing side so the other end sees the end too.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// The request head, byte by byte so nothing of the tunnel's first bytes is consumed.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}
