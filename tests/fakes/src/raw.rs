//! HTTP/1.1 at the byte level, for framing tests. [`RawUpstream`] is a plain-TCP server that reads one request per
//! connection (or a set number, [`RawUpstream::keep_alive`]) and answers with scripted bytes exactly as written, so a test can send what actix-web never would:
//! a body with neither `Content-Length` nor chunked encoding that ends when the connection closes (RFC 9112
//! section 6.3, rule 8), a chunked body cut mid-chunk, a body shorter than its `Content-Length`. [`parse`] is the
//! client half: it decodes a raw response and says whether its framing completed, which a high-level client hides.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    thread,
    time::Duration,
};

use serde_json::Value;

/// A held connection, or a client that never finishes its request, is given up after this long.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// How a scripted reply ends once its last byte is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closes the connection: how a close-delimited body ends, or how a framed one is cut short.
    Close,
    /// The connection stays open until the client closes it (a keep-alive server between requests).
    Hold,
}

/// One connection's answer: a head, then the body as already-framed pieces, each written (and flushed) on its own.
#[derive(Debug, Clone)]
pub struct RawReply {
    head: String,
    pieces: Vec<Vec<u8>>,
    pause: Duration,
    end: End,
}

impl RawReply {
    /// `HTTP/1.1 <status>` with no `Content-Length` and no `Transfer-Encoding`: the body is every byte until the
    /// server closes the connection, which it does after the last piece.
    pub fn close_delimited(status: &str, content_type: &str, pieces: &[&str]) -> RawReply {
        let head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\r\n");
        RawReply {
            head,
            pieces: pieces.iter().map(|p| p.as_bytes().to_vec()).collect(),
            pause: Duration::ZERO,
            end: End::Close,
        }
    }

    /// `Transfer-Encoding: chunked`, one chunk per piece, then the last chunk (`0\r\n\r\n`); the connection closes.
    pub fn chunked(status: &str, content_type: &str, pieces: &[&str]) -> RawReply {
        let head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n");
        let mut framed: Vec<Vec<u8>> =
            pieces.iter().map(|p| format!("{:x}\r\n{p}\r\n", p.len()).into_bytes()).collect();
        framed.push(b"0\r\n\r\n".to_vec());
        RawReply { head, pieces: framed, pause: Duration::ZERO, end: End::Close }
    }

    /// `Content-Length` of the whole body (all pieces), then the pieces; the connection closes.
    pub fn sized(status: &str, content_type: &str, pieces: &[&str]) -> RawReply {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\r\n");
        RawReply {
            head,
            pieces: pieces.iter().map(|p| p.as_bytes().to_vec()).collect(),
            pause: Duration::ZERO,
            end: End::Close,
        }
    }

    /// The same reply, leaving the connection open after it (for keep-alive servers, [`RawUpstream::keep_alive`]).
    pub fn held(mut self) -> RawReply {
        self.end = End::Hold;
        self
    }

    /// Exactly `head` (status line, headers and the blank line) and no body, ending as `end` says.
    pub fn head_only(head: &str, end: End) -> RawReply {
        RawReply { head: head.to_owned(), pieces: Vec::new(), pause: Duration::ZERO, end }
    }

    /// Keeps only the first `keep` bytes of the framed body (chunk-size lines count), then closes: a body cut short.
    pub fn cut_body_at(mut self, keep: usize) -> RawReply {
        let mut left = keep;
        for piece in &mut self.pieces {
            piece.truncate(left);
            left -= piece.len();
        }
        self.pieces.retain(|p| !p.is_empty());
        self.end = End::Close;
        self
    }

    /// Bytes of the framed body (chunk-size lines included), for picking a place to cut.
    pub fn framed_body_len(&self) -> usize {
        self.pieces.iter().map(Vec::len).sum()
    }

    /// Waits `pause` before each body piece after the first, so a test can tell streaming from buffering.
    pub fn paced(mut self, pause: Duration) -> RawReply {
        self.pause = pause;
        self
    }

    /// Every byte the reply puts on the wire, in order.
    pub fn bytes(&self) -> Vec<u8> {
        let mut all = self.head.as_bytes().to_vec();
        self.pieces.iter().for_each(|p| all.extend_from_slice(p));
        all
    }
}

/// A raw-TCP upstream on `127.0.0.1:<free port>`, one thread per connection. Dropping it stops accepting;
/// connections already open finish their script.
pub struct RawUpstream {
    /// `http://127.0.0.1:PORT`, without `/v1`.
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawUpstream {
    /// Serves `replies[n]` to the n-th connection (the last reply repeats for later ones), one request each.
    pub fn start(replies: Vec<RawReply>) -> RawUpstream {
        Self::serving(replies, 1)
    }

    /// A keep-alive server: every connection answers up to `per_connection` requests with `reply` (which should
    /// end [`End::Hold`] and frame its body), then the server closes it, as servers close idle connections.
    pub fn keep_alive(reply: RawReply, per_connection: usize) -> RawUpstream {
        Self::serving(vec![reply], per_connection)
    }

    fn serving(replies: Vec<RawReply>, per_connection: usize) -> RawUpstream {
        assert!(!replies.is_empty(), "a raw upstream needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw upstream");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, accepted, stopped) = (requests.clone(), connections.clone(), stop.clone());
        thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                if stopped.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                accepted.fetch_add(1, Ordering::AcqRel);
                let reply = replies[n.min(replies.len() - 1)].clone();
                let seen = seen.clone();
                thread::spawn(move || serve(conn, &reply, &seen, per_connection));
            }
        });
        RawUpstream { url, requests, connections, stop }
    }

    /// The requests received (head and body as text), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn serve(mut conn: TcpStream, reply: &RawReply, seen: &Mutex<Vec<String>>, requests: usize) {
    let _ = conn.set_read_timeout(Some(IDLE_LIMIT));
    let _ = conn.set_nodelay(true);
    for _ in 0..requests {
        let Some(request) = read_request(&mut conn) else { return };
        seen.lock().unwrap_or_else(PoisonError::into_inner).push(String::from_utf8_lossy(&request).into_owned());
        if conn.write_all(reply.head.as_bytes()).is_err() {
            return;
        }
        for (i, piece) in reply.pieces.iter().enumerate() {
            if i > 0 && !reply.pause.is_zero() {
                thread::sleep(reply.pause);
            }
            if conn.write_all(piece).and_then(|()| conn.flush()).is_err() {
                return;
            }
        }
    }
    if reply.end == End::Close || requests > 1 {
        // FIN first; the request was read whole, so closing cannot turn into a reset that loses the reply.
        let _ = conn.shutdown(Shutdown::Write);
    }
    // Either way, wait for the client to close (or the idle limit) before dropping the socket.
    let mut sink = [0u8; 1024];
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
}

/// Reads one request: the head, then a `Content-Length` body (awc sends sized bodies). `None` if it never came.
fn read_request(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while raw.len() < head_end + len {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    Some(raw)
}

/// A response as it arrived on the wire, decoded.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when the connection ended before the framing (chunked or `Content-Length`) said the body was done.
    /// A close-delimited body is always complete: its end is the close.
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads until the peer closes the connection and decodes what arrived; see [`read_to_close`].
pub fn read_response(stream: &mut TcpStream) -> Response {
    parse(&read_to_close(stream))
}

/// Every byte until the peer closes the connection. A reset ends the read like a close does: the framing check
/// in [`parse`] tells a cut body from a complete one.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(IDLE_LIMIT)).expect("read timeout");
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    raw
}

/// Decodes one raw response: chunked, `Content-Length`, or close-delimited (everything after the head).
pub fn parse(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let (body, complete) = if find("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        dechunk(rest)
    } else if let Some(len) = find("content-length").and_then(|l| l.parse::<usize>().ok()) {
        (rest[..rest.len().min(len)].to_vec(), rest.len() >= len)
    } else {
        (rest.to_vec(), true)
    };
    Response { status, headers, body, complete }
}

/// Decodes a chunked body; `complete` only if the terminating zero-size chunk arrived.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else { return (body, false) };
        let size_line = String::from_utf8_lossy(&rest[..eol]).into_owned();
        let Ok(size) = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16) else {
            return (body, false);
        };
        rest = &rest[eol + 2..];
        if size == 0 {
            return (body, rest.starts_with(b"\r\n"));
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..rest.len().min(size)]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
