//! tollgate's own HTTP/1.1 client for `http://` upstreams (vLLM, Ollama, the fakes, sidecars inside a cluster).
//! `https://` upstreams, and everything that goes through a proxy, stay on awc (`upstream::Client`).
//!
//! Why not awc for these too: the proxy's request path is two general-purpose HTTP/1 stacks, and awc's half cost
//! about 17,500 instructions per proxied request (pool service, a `DateService` and codec per request, the
//! request head formatted through `fmt`, the response head decoded into a fresh map by a general decoder) against
//! about a third of that here (tests/bench/instructions.sh, docs/benchmarks.md Notes; issue 12's throughput
//! target). The request is one POST with a known length, so the client is small: it writes the head and body in
//! one buffer, parses the response head with httparse, and cuts the body by `framing` (RFC 9112 section 6.3,
//! close-delimited bodies included).
//!
//! Contract, the same as awc's as tollgate uses it (tests/tests/upstream_framing.rs, timeouts.rs, the
//! cancellation tests in streaming.rs): connecting is bounded by `router_settings.connect_timeout`; the response
//! head by the caller's deadline; a body cut short of its `Content-Length` or last chunk is an error, a
//! close-delimited body ends cleanly at the close. A connection goes back to the worker's pool only after its
//! response was read whole and the server allowed it (HTTP/1.1 without `Connection: close`, length- or
//! chunk-delimited body, nothing after it); dropping a response or its body closes the connection, which is how
//! a caller that leaves cancels the upstream call. Idle connections are checked before reuse and dropped after
//! [`IDLE_KEEP`].

mod framing;

use std::{
    cell::RefCell,
    future::Future,
    io,
    mem::MaybeUninit,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
    time::Duration,
};

use actix_rt::time::Instant;
use actix_web::http::{
    header::{self, HeaderMap, HeaderName, HeaderValue},
    StatusCode, Uri,
};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

pub use self::framing::{Decoded, Decoder, Framing, FramingError};

/// Response heads longer than this are refused (nginx's default `proxy_buffer_size` is 4-8 KiB; awc's 32 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// Response headers beyond this count are refused.
const MAX_HEADERS: usize = 128;
/// How long an idle connection is kept for reuse (awc's default keep-alive).
const IDLE_KEEP: Duration = Duration::from_secs(15);
/// Idle connections kept per upstream address.
const IDLE_PER_HOST: usize = 1024;
/// Bytes read from the socket at a time.
const READ_SIZE: usize = 16 * 1024;
/// Bodies up to this size are copied behind the head and sent in one write; larger ones are written after it.
const COALESCE: usize = 64 * 1024;

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("could not connect to {authority}: {source}")]
    Connect { authority: String, source: io::Error },
    #[error("the upstream URL `{0}` has no host")]
    NoHost(String),
    #[error("sending the request failed: {0}")]
    Write(io::Error),
    #[error("reading the response failed: {0}")]
    Read(io::Error),
    #[error("the connection closed before a complete response head")]
    Closed,
    #[error("malformed response head: {0}")]
    Malformed(String),
}

/// Why a body stopped short.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Framing(#[from] FramingError),
    #[error("reading the response body failed: {0}")]
    Read(io::Error),
    #[error("the response body is larger than {0} bytes")]
    TooLarge(usize),
}

/// One worker's client: its pool of idle connections per `host:port`. Cheap to clone (`Rc`); `!Send` like awc's.
#[derive(Clone)]
pub struct PlainClient(Rc<Pool>);

struct Pool {
    idle: RefCell<foldhash::HashMap<Box<str>, Vec<Idle>>>,
    connect_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// A connection and the bytes read from it that no response has used yet.
struct Conn {
    io: TcpStream,
    buf: BytesMut,
}

/// A request ready to send: its head (up to the blank line) and body.
pub struct Request {
    authority: Box<str>,
    head: BytesMut,
    body: Vec<u8>,
}

impl Request {
    /// `POST` to `url` (an `http://` URL), with `headers` in order (the caller resolves duplicates; a `host`
    /// among them replaces the URL's, as a signed request needs) and a body.
    pub fn post(url: &Uri, headers: &[(HeaderName, HeaderValue)], body: Vec<u8>) -> Result<Self, SendError> {
        let host = url.host().filter(|h| !h.is_empty()).ok_or_else(|| SendError::NoHost(url.to_string()))?;
        // The Host header names the port only when the URL does (RFC 9110 section 7.2), never userinfo; the
        // address always names the port.
        let host_header = url.authority().map_or(host, |a| a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h));
        let mut authority = String::with_capacity(host.len() + 6);
        authority.push_str(host);
        authority.push(':');
        authority.push_str(itoa::Buffer::new().format(url.port_u16().unwrap_or(80)));
        let authority: Box<str> = authority.into();
        let target = url.path_and_query().map_or("/", |p| p.as_str());
        let mut head = BytesMut::with_capacity(512 + if body.len() <= COALESCE { body.len() } else { 0 });
        head.extend_from_slice(b"POST ");
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        let host_given = headers.iter().find(|(name, _)| name == header::HOST).map(|(_, value)| value.as_bytes());
        head.extend_from_slice(host_given.unwrap_or(host_header.as_bytes()));
        head.extend_from_slice(b"\r\n");
        for (name, value) in headers.iter().filter(|(name, _)| name != header::HOST) {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        head.extend_from_slice(b"\r\n\r\n");
        Ok(Self { authority, head, body })
    }
}

/// A response head, and its body still on the connection.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// How the body is delimited (a `Content-Length` beside a transfer coding is not its length).
    pub framing: Framing,
    pub body: Body,
}

impl PlainClient {
    pub fn new(connect_timeout: Duration) -> Self {
        Self(Rc::new(Pool { idle: RefCell::default(), connect_timeout }))
    }

    /// Sends `request` and reads the response head. Unbounded in time: the caller puts its deadline on it.
    pub async fn send(&self, request: Request) -> Result<Response, SendError> {
        let Request { authority, mut head, body } = request;
        let coalesced = body.len() <= COALESCE;
        if coalesced {
            head.extend_from_slice(&body);
        }
        let mut reused = self.0.take_idle(&authority);
        let mut conn = loop {
            let (mut conn, was_idle) = match reused.take() {
                Some(conn) => (conn, true),
                None => (self.connect(&authority).await?, false),
            };
            let written = match conn.io.write_all(&head).await {
                Ok(()) if coalesced => Ok(()),
                Ok(()) => conn.io.write_all(&body).await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => break conn,
                // A pooled connection the server closed between the check and the write: the request never
                // reached it, so one fresh connection is tried; a failure on that one is the upstream's.
                Err(_) if was_idle => reused = None,
                Err(e) => return Err(SendError::Write(e)),
            }
        };
        let Head { status, headers, framing, keep } = read_head(&mut conn).await?;
        let body =
            Body { conn: Some(conn), decoder: Decoder::new(framing), pool: keep.then(|| (self.0.clone(), authority)) };
        let mut response = Response { status, headers, framing, body };
        response.body.release_if_done();
        Ok(response)
    }

    async fn connect(&self, authority: &str) -> Result<Conn, SendError> {
        // `host:port`, an IPv6 host in brackets; tokio resolves names off the worker thread and tries each address.
        let connect = TcpStream::connect(authority);
        let io = match actix_rt::time::timeout(self.0.connect_timeout, connect).await {
            Ok(Ok(io)) => io,
            Ok(Err(source)) => return Err(SendError::Connect { authority: authority.to_owned(), source }),
            Err(_) => return Err(SendError::ConnectTimeout),
        };
        // Why: a stream's small writes must not wait for the previous one's ACK (Nagle, issue 12 finding 12); the
        // request itself is one write.
        io.set_nodelay(true).map_err(|source| SendError::Connect { authority: authority.to_owned(), source })?;
        Ok(Conn { io, buf: BytesMut::with_capacity(READ_SIZE) })
    }
}

impl Pool {
    /// The most recently used idle connection to `authority` that is still open.
    fn take_idle(&self, authority: &str) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(authority)?;
        while let Some(Idle { conn, since }) = list.pop() {
            if since.elapsed() < IDLE_KEEP && conn.is_open() {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, authority: Box<str>, conn: Conn) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(authority).or_default();
        // The oldest are at the front: drop the expired ones there before adding (linear in what is dropped).
        let expired = list.iter().take_while(|i| i.since.elapsed() >= IDLE_KEEP).count();
        list.drain(..expired);
        if list.len() < IDLE_PER_HOST {
            list.push(Idle { conn, since: Instant::now() });
        }
    }
}

impl Conn {
    /// Whether an idle connection can carry a request: the server has not closed it and sent nothing unasked.
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        // tokio answers from the readiness it already knows: no system call unless the socket became readable.
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 2 {
            self.buf.reserve(READ_SIZE);
        }
        // A fresh `read_buf` future per poll is fine: it holds nothing between polls but these two borrows.
        std::pin::pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

/// Reads until a final (non-1xx) response head is complete; returns it, how its body is framed and whether the
/// connection may carry another request afterwards.
async fn read_head(conn: &mut Conn) -> Result<Head, SendError> {
    // Where the search for the head's end resumes: a head dribbled in byte by byte is scanned once, not parsed
    // again on every read.
    let mut searched = 0;
    loop {
        if head_ends(&conn.buf, searched) {
            match parse_head(&mut conn.buf)? {
                Some(Parsed::Interim) => {
                    searched = 0;
                    continue;
                }
                Some(Parsed::Final(head)) => return Ok(head),
                None => {}
            }
        }
        searched = conn.buf.len().saturating_sub(2);
        if conn.buf.len() > MAX_HEAD {
            return Err(SendError::Malformed(format!("response head larger than {MAX_HEAD} bytes")));
        }
        if conn.fill().await.map_err(SendError::Read)? == 0 {
            return Err(SendError::Closed);
        }
    }
}

/// Whether `buf` holds an empty line (LF LF or LF CR LF, as httparse accepts) that starts at or after `from`: the
/// end of a head.
fn head_ends(buf: &[u8], from: usize) -> bool {
    let mut at = from;
    while let Some(found) = buf.get(at..).and_then(|rest| rest.iter().position(|&b| b == b'\n')) {
        let lf = at + found;
        match buf.get(lf + 1..lf + 3) {
            Some([b'\n', _]) | Some([b'\r', b'\n']) => return true,
            None if buf.get(lf + 1) == Some(&b'\n') => return true,
            _ => at = lf + 1,
        }
    }
    false
}

enum Parsed {
    /// A 1xx head (`100 Continue`, `103 Early Hints`), consumed; the final one follows.
    Interim,
    Final(Head),
}

/// A final response head and what it says about the body and the connection.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    /// The connection may carry another request once the body was read.
    keep: bool,
}

/// Parses the head at the front of `buf`, if complete, and removes it from `buf`.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Parsed>, SendError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut slots);
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(SendError::Malformed(e.to_string())),
    };
    let code = response.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| SendError::Malformed(format!("status code {code}")))?;
    if status.is_informational() {
        if code == 101 {
            return Err(SendError::Malformed("101 Switching Protocols in answer to a POST".to_owned()));
        }
        let _ = buf.split_to(length);
        return Ok(Some(Parsed::Interim));
    }
    let http10 = response.version == Some(0);
    // Header names and values are handed out as slices of the head's own bytes: no copy per header.
    let base = buf.as_ptr() as usize;
    let spans: Vec<(usize, usize, usize, usize)> = response
        .headers
        .iter()
        .map(|h| {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            (name, h.name.len(), value, h.value.len())
        })
        .collect();
    let head = buf.split_to(length).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut close = http10;
    let (mut length_header, mut chunked, mut other_coding) = (None::<u64>, false, false);
    for (name_at, name_len, value_at, value_len) in spans {
        let name = HeaderName::from_bytes(&head[name_at..name_at + name_len])
            .map_err(|_| SendError::Malformed("invalid header name".to_owned()))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| SendError::Malformed(format!("invalid value of header `{name}`")))?;
        if name == header::CONTENT_LENGTH {
            let n = content_length(value.as_bytes())
                .ok_or_else(|| SendError::Malformed("invalid Content-Length".to_owned()))?;
            if length_header.is_some_and(|seen| seen != n) {
                return Err(SendError::Malformed("conflicting Content-Length headers".to_owned()));
            }
            length_header = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding frames the body (RFC 9112 section 6.3, rule 4).
            for coding in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|c| !c.is_empty()) {
                chunked = coding.eq_ignore_ascii_case(b"chunked");
                other_coding |= !chunked;
            }
        } else if name == header::CONNECTION {
            for token in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
        headers.append(name, value);
    }
    let transfer_coded = chunked || other_coding;
    let framing = if code == 204 || code == 304 {
        Framing::Length(0)
    } else if transfer_coded && chunked {
        Framing::Chunked
    } else if transfer_coded {
        // A transfer coding that does not end in chunked: the body runs to the close (rule 4).
        Framing::Close
    } else {
        length_header.map_or(Framing::Close, Framing::Length)
    };
    // A response carrying both is a possible smuggling attempt: use it, never the connection again (rule 3).
    let keep = !close && framing != Framing::Close && !(transfer_coded && length_header.is_some());
    Ok(Some(Parsed::Final(Head { status, headers, framing, keep })))
}

/// A whole response as the client reads it off a connection that delivers `chunks` and then closes: its status,
/// framing and body, or why it could not be read (tests and the `upstream_response` fuzz target).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn read_chunks(chunks: &[&[u8]]) -> Result<(u16, Framing, Vec<u8>), String> {
    let mut buf = BytesMut::new();
    let mut arriving = chunks.iter();
    let head = loop {
        match parse_head(&mut buf).map_err(|e| e.to_string())? {
            Some(Parsed::Final(head)) => break head,
            Some(Parsed::Interim) => {}
            None => buf.extend_from_slice(arriving.next().ok_or("the connection closed before the head")?),
        }
    };
    let mut decoder = Decoder::new(head.framing);
    let mut body = Vec::new();
    loop {
        match decoder.decode(&mut buf).map_err(|e| e.to_string())? {
            Decoded::Data(data) => body.extend_from_slice(&data),
            Decoded::End => break,
            Decoded::Pending => match arriving.next() {
                Some(chunk) => buf.extend_from_slice(chunk),
                None => {
                    decoder.eof().map_err(|e| e.to_string())?;
                    break;
                }
            },
        }
    }
    Ok((head.status.as_u16(), head.framing, body))
}

/// `Content-Length`: digits, or a list of equal ones (RFC 9110 section 8.6).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut found = None;
    for part in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = std::str::from_utf8(part).ok()?.parse::<u64>().ok()?;
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

/// A response body as it arrives. Dropped before its end, it closes the connection.
pub struct Body {
    conn: Option<Conn>,
    decoder: Decoder,
    /// Where the connection goes back to once the body ended, when the server allows reuse.
    pool: Option<(Rc<Pool>, Box<str>)>,
}

impl Body {
    /// Moves the body out, leaving an ended one without a connection.
    pub fn take_out(&mut self) -> Body {
        let empty = Body { conn: None, decoder: Decoder::new(Framing::Length(0)), pool: None };
        std::mem::replace(self, empty)
    }

    /// Hands the connection back (or closes it) once the body is complete.
    fn release_if_done(&mut self) {
        if !self.decoder.is_done() {
            return;
        }
        let Some(conn) = self.conn.take() else { return };
        if let Some((pool, authority)) = self.pool.take() {
            // Bytes the server sent past the response make the connection's next answer unreadable.
            if conn.buf.is_empty() {
                pool.put_idle(authority, conn);
            }
        }
    }

    /// The whole body, refused once it passes `limit` bytes.
    pub async fn read_to_end(mut self, limit: usize) -> Result<Bytes, BodyError> {
        use futures_util::StreamExt;
        let mut all = BytesMut::new();
        while let Some(piece) = self.next().await {
            let piece = piece?;
            if all.len() + piece.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            all.extend_from_slice(&piece);
        }
        Ok(all.freeze())
    }
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match this.decoder.decode(&mut conn.buf) {
                Ok(Decoded::Data(data)) => {
                    this.release_if_done();
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Decoded::End) => {
                    this.release_if_done();
                    return Poll::Ready(None);
                }
                Ok(Decoded::Pending) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    this.conn = None;
                    return Poll::Ready(this.decoder.eof().err().map(|e| Err(e.into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(BodyError::Read(e))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The final head of `text` (`None` while partial) and the bytes left after it; 1xx heads are skipped.
    fn head(text: &str) -> Result<Option<(Head, usize)>, String> {
        let mut buf = BytesMut::from(text.as_bytes());
        loop {
            match parse_head(&mut buf).map_err(|e| e.to_string())? {
                None => return Ok(None),
                Some(Parsed::Interim) => continue,
                Some(Parsed::Final(head)) => return Ok(Some((head, buf.len()))),
            }
        }
    }

    #[test]
    fn response_heads_decide_framing_and_reuse_by_the_rfc() -> Result<(), String> {
        #[rustfmt::skip]
        let cases: &[(&str, Framing, bool)] = &[
            ("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n", Framing::Length(12), true),
            ("HTTP/1.1 200 OK\r\nContent-Length: 12, 12\r\n\r\n", Framing::Length(12), true),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", Framing::Chunked, true),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n", Framing::Chunked, true),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n", Framing::Close, false),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n", Framing::Chunked, false),
            ("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n", Framing::Close, false),
            ("HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\n", Framing::Length(3), false),
            ("HTTP/1.1 200 OK\r\ncontent-length: 3\r\nConnection: Keep-Alive, Close\r\n\r\n", Framing::Length(3), false),
            ("HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n", Framing::Length(3), false),
            ("HTTP/1.0 200 OK\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\n", Framing::Length(3), true),
            ("HTTP/1.1 204 No Content\r\n\r\n", Framing::Length(0), true),
            ("HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n", Framing::Length(0), true),
            ("HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n", Framing::Length(0), true),
        ];
        for (text, framing, keep) in cases {
            let (parsed, left) = head(text)?.ok_or_else(|| format!("{text:?}: partial"))?;
            assert_eq!((parsed.framing, parsed.keep), (*framing, *keep), "{text:?}");
            assert_eq!(left, 0, "{text:?}: the head is consumed");
        }
        Ok(())
    }

    #[test]
    fn malformed_heads_are_errors_and_partial_ones_wait() {
        #[rustfmt::skip]
        let cases: &[(&str, Result<bool, &str>)] = &[
            // Ok(true): complete; Ok(false): partial; Err: the message contains this
            ("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n", Ok(false)),
            ("HTTP/1.1 200", Ok(false)),
            ("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc", Ok(true)),
            ("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n", Err("conflicting")),
            ("HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\n", Err("invalid Content-Length")),
            ("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", Err("invalid Content-Length")),
            ("HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n", Err("invalid Content-Length")),
            ("HTTP/1.1 101 Switching Protocols\r\n\r\n", Err("101")),
            ("HTTP/1.1 099 Odd\r\n\r\n", Err("status code")),
            ("SMTP ready\r\n\r\n", Err("malformed")),
        ];
        for (text, want) in cases {
            let got = head(text);
            let outcome = got.as_ref().map(Option::is_some).map_err(String::as_str);
            match want {
                Ok(_) => assert_eq!(outcome, *want, "{text:?}"),
                Err(part) => assert!(outcome.is_err_and(|e| e.contains(part)), "{text:?}: {outcome:?}"),
            }
        }
    }

    #[test]
    fn interim_heads_are_skipped_and_header_values_kept_verbatim() -> Result<(), String> {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nx-ratelimit-remaining-requests: 99\r\nset-cookie: a\r\nset-cookie: b\r\ncontent-length: 2\r\n\r\nhi"[..],
        );
        assert!(matches!(parse_head(&mut buf), Ok(Some(Parsed::Interim))));
        let Ok(Some(Parsed::Final(Head { status, headers, framing, keep }))) = parse_head(&mut buf) else {
            return Err("no final head".to_owned());
        };
        assert_eq!((status.as_u16(), framing, keep), (200, Framing::Length(2), true));
        assert_eq!(headers.get("x-ratelimit-remaining-requests").map(|v| v.as_bytes()), Some(&b"99"[..]));
        assert_eq!(headers.get_all("set-cookie").count(), 2);
        assert_eq!(&buf[..], b"hi", "the body's bytes stay in the buffer");
        Ok(())
    }

    /// What a whole response reads as: status, framing and body, or a part of the error's text.
    type Read<'a> = Result<(u16, Framing, &'a [u8]), &'a str>;

    #[test]
    fn whole_responses_read_the_same_split_anywhere() {
        let cases: &[(&[u8], Read<'_>)] = &[
            (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", Ok((200, Framing::Length(5), b"hello"))),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
                Ok((200, Framing::Chunked, b"hi")),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nuntil the close", Ok((200, Framing::Close, b"until the close"))),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort", Err("4 bytes short")),
            (b"HTTP/1.1 200 OK\r\ncontent-le", Err("closed before the head")),
        ];
        for (bytes, want) in cases {
            let want = want.map(|(status, framing, body)| (status, framing, body.to_vec())).map_err(str::to_owned);
            for split in 0..=bytes.len() {
                let got = read_chunks(&[&bytes[..split], &bytes[split..]]);
                let text = String::from_utf8_lossy(bytes);
                match (&got, &want) {
                    (Err(e), Err(part)) => assert!(e.contains(part.as_str()), "{text:?} at {split}: {e}"),
                    _ => assert_eq!(got, want, "{text:?} at {split}"),
                }
            }
        }
    }

    #[test]
    fn a_head_ends_at_its_first_empty_line_wherever_the_search_resumes() {
        let cases: &[(&[u8], bool)] = &[
            (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true),
            (b"HTTP/1.1 200 OK\ncontent-length: 0\n\n", true),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r", false),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n", false),
            (b"HTTP/1.1 200 OK\n", false),
            (b"", false),
        ];
        for (bytes, ends) in cases {
            // The first `split` bytes arrived and were searched, then the rest: resuming two bytes before the old
            // end (as read_head does) finds the same answer as searching everything.
            for split in 0..=bytes.len() {
                let found = head_ends(&bytes[..split], 0) || head_ends(bytes, split.saturating_sub(2));
                assert_eq!(found, *ends, "{:?} split at {split}", String::from_utf8_lossy(bytes));
            }
            assert_eq!(head_ends(bytes, 0), *ends, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn requests_carry_host_length_and_headers_in_one_buffer() -> Result<(), Box<dyn std::error::Error>> {
        let url: Uri = "http://127.0.0.1:8080/v1/chat/completions?x=1".parse()?;
        let (name, value) = (HeaderName::from_static("x-request-id"), HeaderValue::from_static("r1"));
        let request = Request::post(&url, &[(name.clone(), value.clone())], b"{}".to_vec())?;
        assert_eq!(&*request.authority, "127.0.0.1:8080");
        assert_eq!(
            std::str::from_utf8(&request.head)?,
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-request-id: r1\r\ncontent-length: 2\r\n\r\n"
        );
        let url: Uri = "http://llm.internal/v1".parse()?;
        let request = Request::post(&url, &[], Vec::new())?;
        assert_eq!(&*request.authority, "llm.internal:80");
        assert!(request.head.starts_with(b"POST /v1 HTTP/1.1\r\nhost: llm.internal\r\n"));
        let url: Uri = "http://user:pw@[::1]:9/x".parse()?;
        let request = Request::post(&url, &[], Vec::new())?;
        assert_eq!(&*request.authority, "[::1]:9");
        assert!(request.head.starts_with(b"POST /x HTTP/1.1\r\nhost: [::1]:9\r\n"), "no userinfo in Host");
        let signed = [(header::HOST, HeaderValue::from_static("bedrock.test")), (name, value)];
        let request = Request::post(&url, &signed, Vec::new())?;
        let text = std::str::from_utf8(&request.head)?;
        assert!(text.starts_with("POST /x HTTP/1.1\r\nhost: bedrock.test\r\nx-request-id: r1\r\n"), "{text}");
        assert_eq!(text.matches("host:").count(), 1, "{text}");
        Ok(())
    }
}
