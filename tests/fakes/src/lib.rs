//! Fake LLM provider servers that speak each provider's exact wire format, for integration tests, SDK tests
//! and benchmarks. The OpenAI fake picks its behaviour from the request's `model`:
//!
//! | model         | behaviour                                                                        |
//! |---------------|----------------------------------------------------------------------------------|
//! | `normal`/other| "Hello from fake upstream"; streams 4 content chunks; usage chunk only if asked  |
//! | `tools`       | a `get_weather` tool call, streamed as argument fragments                        |
//! | `error-<N>`   | HTTP N with an OpenAI error body (429 adds `retry-after: 7`)                     |
//! | `delay-<ms>`  | waits, then `normal`                                                             |
//! | `hang`        | never answers                                                                    |
//! | `slow-stream` | a `tick ` chunk every 50 ms for a minute; records `stream_dropped:<seq>` if cut |
//! | `reset`       | breaks the connection mid-body                                                   |
//! | `stall`       | streams two chunks, then sends nothing more (records `stream_dropped` if cut)    |
//! | `echo`        | content = the request body it received                                           |

pub mod openai;
pub mod record;

use std::{net::TcpListener, sync::mpsc, thread, time::Duration};

use actix_web::{web, App, HttpServer};
pub use record::Recorder;

/// Builds the server on an already-bound listener (the caller runs it inside an actix system).
pub fn server(listener: TcpListener, recorder: Recorder, workers: usize) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(recorder);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .configure(openai::configure)
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

/// A fake upstream running on its own thread, for tests.
pub struct FakeUpstream {
    /// `http://127.0.0.1:PORT`, without `/v1`.
    pub url: String,
    recorder: Recorder,
    handle: actix_web::dev::ServerHandle,
}

impl FakeUpstream {
    pub fn start() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let recorder = Recorder::default();
        let (tx, rx) = mpsc::channel();
        let rec = recorder.clone();
        thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = server(listener, rec, 1).expect("fake upstream starts");
                tx.send(server.handle()).expect("send handle");
                let _ = server.await;
            })
        });
        let handle = rx.recv_timeout(Duration::from_secs(10)).expect("fake upstream started");
        FakeUpstream { url, recorder, handle }
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.recorder.requests()
    }

    pub fn events(&self) -> Vec<String> {
        self.recorder.events()
    }

    pub fn clear(&self) {
        self.recorder.clear();
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
