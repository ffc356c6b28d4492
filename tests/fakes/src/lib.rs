//! Fake LLM provider servers that speak each provider's exact wire format, for integration tests, SDK tests
//! and benchmarks. The OpenAI fake picks its behaviour from the request's `model`:
//!
//! | model         | behaviour                                                                          |
//! |---------------|------------------------------------------------------------------------------------|
//! | `normal`/other| "Hello from fake upstream"; streams 4 content chunks; usage chunk only if asked    |
//! | `tools`       | a `get_weather` tool call, streamed as argument fragments                          |
//! | `error-<N>`   | HTTP N with an OpenAI error body (429 adds `retry-after: 7`)                       |
//! | `delay-<ms>`  | waits, then `normal`                                                               |
//! | `hang`        | never answers                                                                      |
//! | `stalled-error` | HTTP 503 and the start of an error body, which never ends                        |
//! | `slow-stream` | a `tick ` chunk every 50 ms for a minute; records `stream_dropped:<seq>` if cut    |
//! | `reset`       | breaks the connection mid-body                                                     |
//! | `stall`       | streams two chunks, then sends nothing more (records `stream_dropped` if cut)      |
//! | `echo`        | content = the request body it received                                             |
//! | `stream-<N>`  | `normal` with N pieces `w0 `…, one write per event, back to back (1 ≤ N ≤ 100000)   |
//! | `context-length` | HTTP 400 `context_length_exceeded` ("This model's maximum context length is …")     |
//! | `content-filter` | HTTP 400 `content_filter` with Azure's `innererror` (a prompt Azure's filter blocked) |
//! | `cut`         | streams the role chunk and "Hello", then the body ends (no finish, no `[DONE]`)     |
//! | `cut-json`    | as `cut`, then half of the next chunk's JSON, then the body ends                    |
//! | `no-first-chunk` | 200 headers, then no body byte ever (records `stream_dropped` if cut)            |
//! | `empty-body`  | 200 headers and an empty body                                                       |
//! | `keepalive-only` | 200 event-stream headers, then a `: keep-alive` comment every 50 ms, no event    |
//! | `late-first-<ms>` | 200 headers at once, the `normal` answer (streamed or whole) ms later             |
//! | `trickle`     | the `normal` whole answer in 20 pieces 100 ms apart (records `stream_dropped` if cut) |
//! | `switch-<name>` | the mode switch `<name>` is set to (`normal` until set): [`FakeUpstream::set_switch`] or `PUT /__fake/switch/<name>` |
//!
//! Azure OpenAI's `/openai/deployments/{d}/chat/completions` and `/embeddings` answer the same way, and refuse a
//! request without `?api-version=` with a 400 as Azure does (see `openai.rs`).
//!
//! `POST /v1/completions` (OpenAI's legacy text completions, `completions.rs`) answers `normal`/other, `error-<N>`,
//! `delay-<ms>` and `hang` the same way, with one choice per prompt and `text` instead of a message.
//!
//! More modes about usage, strict schemas and content types: see `accounting.rs`; `agent` (a scripted tool loop
//! for Claude Code): see `agent.rs`.
//!
//! The Cohere v2 fake (`cohere.rs`) serves `POST /v2/chat` and `POST /v2/embed` on the same server, with its own
//! modes (`normal`, `tools`, `max-tokens`, `stream-error`, `cut`, `cut-json`, `echo`, `error-<N>`,
//! `too-many-tokens`, `blocked`, `delay-<ms>`, `hang`): see its module doc.
//!
//! The Anthropic fake (`anthropic.rs`, `POST /v1/messages` and `/v1/messages/count_tokens`) picks its behaviour
//! the same way: `normal`, `tools`, `thinking`, `echo`, `max-tokens`, `stop-seq`, `too-long`, `error-<N>`,
//! `stream-error`, `cut`, `cut-json`, `delay-<ms>`, `hang` (its module doc says what each does).
//!
//! Other providers' fakes live at their own paths on the same server, each with its own table of modes:
//! - `gemini.rs`: Gemini API `/v1beta/models/{model}:{method}`, Vertex AI
//!   `/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}` and the OAuth `/token` endpoint
//!   (normal, thinking, tools, max-tokens, safety, blocked, error-N, error-context, stream-error, cut, cut-json,
//!   echo, delay-MS, hang).
//!
//! Embeddings honour `error-<N>`, `delay-<ms>` and `hang` too. Every chat and embeddings request is recorded
//! (`GET /__fake/requests`, or [`FakeUpstream::requests`] in-process).
//!
//! Other providers' fakes, at their real paths, with their own mode tables:
//!
//! | module       | paths                                                                                 |
//! |--------------|---------------------------------------------------------------------------------------|
//! | [`bedrock`]  | `/model/{id}/converse`, `/model/{id}/converse-stream` (AWS eventstream), `/model/{id}/invoke`; SigV4 checked |
//!
//! [`FakeUpstream::start_tls`] serves the same over HTTPS with a certificate from a [`TestCa`] made at test time;
//! [`ConnectProxy`] is an HTTP `CONNECT` proxy to put in front of it.
//! [`raw::RawUpstream`] is the other fake: plain TCP with scripted bytes per connection, for HTTP framing that
//! actix-web would never produce (close-delimited bodies, bodies cut mid-chunk or short of their length).

mod accounting;
mod agent;
pub mod anthropic;
pub mod bedrock;
pub mod cohere;
mod completions;
pub mod connect_proxy;
pub mod control;
pub mod entra;
pub mod gemini;
mod mode;
pub mod openai;
pub mod raw;
pub mod record;
mod sse;
pub mod tls;
mod wire;

use std::{net::TcpListener, sync::mpsc, thread, time::Duration};

use actix_web::{web, App, HttpServer};
pub use connect_proxy::{ConnectProxy, SeenConnect};
pub use record::{clock_ms, Recorder};
pub use tls::TestCa;

/// A fake as a process: binds `host:port`, prints `listening on http://HOST:PORT` as its first line (what the
/// benchmark scripts wait for), then runs the server `build` makes on that listener until SIGTERM, which exits at
/// once: a fake holds nothing worth draining, even with `hang` requests in flight.
pub fn run_process(
    host: &str,
    port: u16,
    build: impl FnOnce(TcpListener) -> std::io::Result<actix_web::dev::Server>,
) -> std::io::Result<()> {
    use std::io::Write;
    let listener = TcpListener::bind((host, port))?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()?;
    actix_rt::System::new().block_on(async move {
        let server = build(listener)?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        actix_rt::spawn(async move {
            term.recv().await;
            std::process::exit(0);
        });
        server.await
    })
}

/// Builds the server on an already-bound listener; the caller runs it inside an actix system.
pub fn server(listener: TcpListener, recorder: Recorder, workers: usize) -> std::io::Result<actix_web::dev::Server> {
    serve(listener, recorder, workers, None)
}

/// [`server`] over HTTPS with the given TLS configuration (see [`TestCa::server_config`]).
pub fn server_tls(
    listener: TcpListener,
    recorder: Recorder,
    workers: usize,
    tls: rustls::ServerConfig,
) -> std::io::Result<actix_web::dev::Server> {
    serve(listener, recorder, workers, Some(tls))
}

fn serve(
    listener: TcpListener,
    recorder: Recorder,
    workers: usize,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(recorder);
    let http = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .configure(openai::configure)
            .configure(cohere::configure)
            .configure(anthropic::configure)
            .configure(bedrock::configure)
            .configure(gemini::configure)
            .configure(entra::configure)
            .configure(control::configure)
    })
    .workers(workers.max(1))
    // A client that closes its connection while a handler is still waiting (`hang`, `delay-*`) is noticed at once,
    // so tests can see when tollgate gives up on an upstream call.
    .h1_allow_half_closed(false)
    // As real LLM servers do (uvicorn, nginx and the like set TCP_NODELAY): a stream's events leave at once
    // rather than waiting for the client's ACK of the previous one (Nagle), which with a delayed ACK costs 40 ms.
    .tcp_nodelay(true)
    .disable_signals()
    .shutdown_timeout(1);
    let http = match tls {
        Some(tls) => http.listen_rustls_0_23(listener, tls)?,
        None => http.listen(listener)?,
    };
    Ok(http.run())
}

/// A fake upstream running on its own thread (with its own actix system), for tests. Dropping it stops the server.
pub struct FakeUpstream {
    /// `http://127.0.0.1:PORT` (`https://` for [`FakeUpstream::start_tls`]), without `/v1`.
    pub url: String,
    recorder: Recorder,
    handle: actix_web::dev::ServerHandle,
}

impl FakeUpstream {
    /// Starts on `127.0.0.1:<free port>` with one worker; returns once the server is accepting connections.
    pub fn start() -> FakeUpstream {
        Self::spawn(None)
    }

    /// Like [`FakeUpstream::start`], over HTTPS (`https://127.0.0.1:PORT`) with a leaf certificate for
    /// `localhost` and `127.0.0.1` from a new [`TestCa`]; trust the CA (its PEM) to reach it.
    pub fn start_tls() -> (FakeUpstream, TestCa) {
        let ca = TestCa::default();
        (Self::spawn(Some(ca.server_config())), ca)
    }

    fn spawn(tls: Option<rustls::ServerConfig>) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().expect("local addr"));
        let recorder = Recorder::default();
        let (tx, rx) = mpsc::channel();
        let rec = recorder.clone();
        thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = serve(listener, rec, 1, tls).expect("fake upstream starts");
                tx.send(server.handle()).expect("send handle");
                let _ = server.await;
            })
        });
        let handle = rx.recv_timeout(Duration::from_secs(10)).expect("fake upstream started");
        FakeUpstream { url, recorder, handle }
    }

    /// Recorded chat and embeddings requests, oldest first: `{"seq","at_ms","path","headers","body"}`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.recorder.requests()
    }

    /// Notable events, oldest first, e.g. `stream_dropped:<seq>`.
    pub fn events(&self) -> Vec<String> {
        self.recorder.events()
    }

    /// Requests for model `switch-<name>` (chat and embeddings) now behave as model `mode` does: flips a
    /// deployment between failing and healthy while the gateway's config stays the same.
    pub fn set_switch(&self, name: &str, mode: &str) {
        self.recorder.set_switch(name, mode);
    }

    /// Forgets recorded requests and events.
    pub fn clear(&self) {
        self.recorder.clear();
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}
