//! `bare-proxy`: the least an actix-web reverse proxy can do, as a floor for tests/bench/run.sh.
//!
//! One route (`POST /v1/chat/completions`) whose handler takes the body as bytes, writes it to the upstream over a
//! kept-alive HTTP/1.1 connection with the fewest headers HTTP allows, reads the answer (Content-Length bodies
//! only) and returns its status, content type and body. No JSON is parsed, nothing is logged or counted, there is
//! no authentication, routing or deadline: whatever a gateway built on actix-web does per request comes on top of
//! what this costs. The benchmark measures it beside nginx so that a target stated against nginx can be judged
//! against what the required stack itself costs.
//!
//! Prints `listening on http://HOST:PORT` as its first line, then serves until killed.

use std::{cell::RefCell, net::SocketAddr};

use actix_web::{http::StatusCode, web, App, HttpResponse, HttpServer};
use clap::Parser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[derive(Parser)]
#[command(about = "The least an actix-web reverse proxy can do (benchmark floor; not for use)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The upstream's address, `HOST:PORT` (plain HTTP).
    #[arg(long)]
    upstream: SocketAddr,
}

thread_local! {
    /// Idle upstream connections of this worker thread.
    static IDLE: RefCell<Vec<TcpStream>> = const { RefCell::new(Vec::new()) };
}

/// A response head's status and Content-Length, and where its body starts in `buf`; None while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(buf).map_err(|e| format!("upstream head: {e}"))? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(at) => {
            let length = res
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .ok_or("upstream answered without Content-Length: not supported by this floor proxy")?;
            Ok(Some((res.code.unwrap_or(502), length, at)))
        }
    }
}

async fn exchange(conn: &mut TcpStream, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
    conn.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if conn.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("upstream closed the connection".into());
        }
        if let Some((status, length, at)) = parse_head(&buf)? {
            while buf.len() < at + length {
                if conn.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                    return Err("upstream closed the connection mid-body".into());
                }
            }
            buf.truncate(at + length);
            buf.drain(..at);
            return Ok((status, buf));
        }
    }
}

async fn forward(body: web::Bytes, upstream: web::Data<SocketAddr>) -> HttpResponse {
    let mut request = Vec::with_capacity(128 + body.len());
    request.extend_from_slice(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: upstream\r\ncontent-type: application/json\r\n",
    );
    request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(&body);
    let idle = IDLE.with(|idle| idle.borrow_mut().pop());
    let mut conn = match idle {
        Some(conn) => conn,
        None => match TcpStream::connect(**upstream).await {
            Ok(conn) => {
                let _ = conn.set_nodelay(true);
                conn
            }
            Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
        },
    };
    match exchange(&mut conn, &request).await {
        Ok((status, answer)) => {
            IDLE.with(|idle| idle.borrow_mut().push(conn));
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
                .content_type("application/json")
                .body(answer)
        }
        Err(e) => HttpResponse::BadGateway().body(e),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let upstream = web::Data::new(args.upstream);
    tollgate_fakes::run_process(&args.host, args.port, move |listener| {
        Ok(HttpServer::new(move || {
            App::new().app_data(upstream.clone()).route("/v1/chat/completions", web::post().to(forward))
        })
        .workers(1)
        .tcp_nodelay(true)
        .disable_signals()
        .listen(listener)?
        .run())
    })?;
    Ok(())
}
