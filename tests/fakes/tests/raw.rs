//! The raw-TCP fake upstream, byte for byte: what each scripted reply puts on the wire, and how it ends.

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use tollgate_fakes::raw::{read_response, End, RawReply, RawUpstream};

const BODY: &str = r#"{"id":"x","usage":{"prompt_tokens":1}}"#;

/// Connects and sends a POST with a JSON body (no `Connection: close`: the fake decides when to close).
fn post(fake: &RawUpstream, body: &str) -> TcpStream {
    let host = fake.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("write");
    s
}

fn raw_bytes(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read to close");
    raw
}

#[test]
fn close_delimited_has_no_framing_headers_and_ends_with_the_close() {
    let fake =
        RawUpstream::start(vec![RawReply::close_delimited("200 OK", "application/json", &[&BODY[..9], &BODY[9..]])]);
    let raw = raw_bytes(&mut post(&fake, "{\"model\":\"m\"}"));
    assert_eq!(
        String::from_utf8_lossy(&raw),
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{BODY}")
    );
    let r = tollgate_fakes::raw::parse(&raw);
    assert!(r.complete && r.header("content-length").is_none() && r.header("transfer-encoding").is_none());
    assert_eq!(r.json(), serde_json::json!({"id": "x", "usage": {"prompt_tokens": 1}}));
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].starts_with("POST /v1/chat/completions HTTP/1.1\r\n"), "{seen:?}");
    assert!(seen[0].ends_with("\r\n\r\n{\"model\":\"m\"}"), "the body is read whole: {seen:?}");
}

#[test]
fn chunked_and_sized_replies_complete_or_cut() {
    let chunked = RawReply::chunked("200 OK", "text/event-stream", &["data: a\n\n", "data: b\n\n"]);
    assert_eq!(chunked.framed_body_len(), "9\r\ndata: a\n\n\r\n".len() * 2 + "0\r\n\r\n".len());
    let sized = RawReply::sized("200 OK", "application/json", &[&BODY[..5], &BODY[5..]]);
    // (reply, body the client decodes, framing complete)
    let cases = [
        (chunked.clone(), "data: a\n\ndata: b\n\n", true),
        (chunked.clone().cut_body_at(14 + 6), "data: a\n\ndat", false),
        (chunked.cut_body_at(14 + 14), "data: a\n\ndata: b\n\n", false),
        (sized.clone(), BODY, true),
        (sized.cut_body_at(10), &BODY[..10], false),
    ];
    for (i, (reply, body, complete)) in cases.into_iter().enumerate() {
        let wire = reply.bytes();
        let fake = RawUpstream::start(vec![reply]);
        let raw = raw_bytes(&mut post(&fake, "{}"));
        assert_eq!(raw, wire, "case {i}: exactly the scripted bytes, then the close");
        let r = tollgate_fakes::raw::parse(&raw);
        assert_eq!((r.text().as_str(), r.complete), (body, complete), "case {i}");
    }
}

#[test]
fn each_connection_gets_its_reply_and_the_last_repeats() {
    let replies = ["first", "second"].map(|b| RawReply::close_delimited("200 OK", "text/plain", &[b])).to_vec();
    let fake = RawUpstream::start(replies);
    let bodies: Vec<String> = (0..3).map(|_| read_response(&mut post(&fake, "{}")).text()).collect();
    assert_eq!(bodies, ["first", "second", "second"]);
    assert_eq!(fake.requests().len(), 3, "one request per connection");
}

#[test]
fn paced_pieces_arrive_apart() {
    let reply = RawReply::close_delimited("200 OK", "text/plain", &["one", "two"]).paced(Duration::from_millis(300));
    let fake = RawUpstream::start(vec![reply]);
    let mut s = post(&fake, "{}");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).ends_with("one") {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed before the first piece");
        seen.extend_from_slice(&buf[..n]);
    }
    let first = Instant::now();
    seen.extend(raw_bytes(&mut s));
    assert!(first.elapsed() >= Duration::from_millis(250), "the second piece waited");
    assert!(String::from_utf8_lossy(&seen).ends_with("\r\n\r\nonetwo"));
}

#[test]
fn hold_keeps_the_connection_open_after_the_reply() {
    let fake = RawUpstream::start(vec![RawReply::head_only("HTTP/1.1 204 No Content\r\n\r\n", End::Hold)]);
    let mut s = post(&fake, "{}");
    s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let mut raw = Vec::new();
    let mut buf = [0u8; 256];
    let err = loop {
        match s.read(&mut buf) {
            Ok(n) => {
                assert!(n > 0, "the connection must stay open");
                raw.extend_from_slice(&buf[..n]);
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    assert_eq!(raw, b"HTTP/1.1 204 No Content\r\n\r\n");
}
