//! Test harness: starts tollgate in-process (real HTTP on a random port) or as the real binary, and gives tests
//! an HTTP client (awc, or a raw socket that shows the framing) and the in-process gateways' settlement log lines
//! ([`logs`]). Fake provider servers live in the `tollgate-fakes` crate.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{mpsc, OnceLock},
    thread,
    time::{Duration, Instant},
};

use tollgate::{
    app::{self, ServeOptions},
    config::Config,
};
pub use tollgate_fakes::{raw, ConnectProxy, FakeUpstream, SeenConnect, TestCa};

pub mod dialect;
pub mod dialect_b;
pub mod logs;
pub mod redis;
pub mod store;
pub mod tcp_cut;

pub const MASTER_KEY: &str = "sk-test-master";

/// A gateway running in this process on its own actix system thread.
pub struct Gateway {
    pub url: String,
    handle: actix_web::dev::ServerHandle,
    /// The gateway's own SQLite store, when the test gave it none (removed on drop).
    _db: Option<store::TempSqlite>,
}

impl Gateway {
    /// Starts a gateway from a config.yaml text; panics (test failure) if the config is invalid.
    pub fn start(yaml: &str) -> Gateway {
        Self::start_config(Config::load_str(yaml, &|name: &str| std::env::var(name).ok()).expect("valid test config"))
    }

    /// Like [`Gateway::start`], but the config sees only `env` as its environment (`SSL_CERT_FILE`, `HTTPS_PROXY`,
    /// providers' `AZURE_API_BASE`, `ANTHROPIC_API_KEY`, ...), so tests can vary it in parallel without touching
    /// the process environment.
    pub fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Gateway {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Self::start_config(Config::load_str_shared(yaml, std::sync::Arc::new(lookup)).expect("valid test config"))
    }

    /// Like [`Gateway::start`], on the store at `database_url` (a [`store::PgSchema`], a shared SQLite file).
    pub fn start_on(yaml: &str, database_url: &str) -> Gateway {
        let mut config = Config::load_str(yaml, &|name: &str| std::env::var(name).ok()).expect("valid test config");
        config.store.database_url = tollgate::secret::Secret::new(database_url);
        Self::launch(config, None, None)
    }

    /// Starts a gateway from a config file, which `POST /config/reload` (and only that: no signals in-process)
    /// re-reads; panics (test failure) if the config is invalid.
    pub fn start_file(path: &std::path::Path) -> Gateway {
        Self::start_options(Config::load_file(path).expect("valid test config"), Some(path.to_owned()))
    }

    fn start_config(config: Config) -> Gateway {
        Self::start_options(config, None)
    }

    fn start_options(mut config: Config, config_path: Option<PathBuf>) -> Gateway {
        // Unless the test chose a store, each gateway gets its own SQLite file (never the working directory's).
        let db = (config.store.database_url.expose() == tollgate::config::DEFAULT_DATABASE_URL).then(|| {
            let db = store::TempSqlite::new();
            config.store.database_url = tollgate::secret::Secret::new(db.url());
            db
        });
        Self::launch(config, config_path, db)
    }

    fn launch(mut config: Config, config_path: Option<PathBuf>, db: Option<store::TempSqlite>) -> Gateway {
        // The request log's journal, if it is ever needed, goes to the temp directory, never the working directory.
        config.store.log_journal =
            std::env::temp_dir().join(format!("tollgate-test-{}.journal", uuid::Uuid::new_v4().simple()));
        logs::capture();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let options = ServeOptions { workers: Some(1), config_path, allow_example_master_key: false };
                let gateway = app::start(config, listener, &options).await.expect("gateway starts");
                tx.send(gateway.handle.clone()).expect("send handle");
                let _ = gateway.server.await;
            })
        });
        let handle = rx.recv_timeout(Duration::from_secs(20)).expect("gateway started");
        Gateway { url, handle, _db: db }
    }

    /// A config with the master key and the given `model_list` entries (YAML list items).
    pub fn with_models(model_list: &str) -> Gateway {
        Gateway::start(&format!("model_list:\n{model_list}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Stopping is fire-and-forget: the server thread winds down on its own.
        drop(self.handle.stop(false));
    }
}

/// Runs a test's own HTTP server (a webhook, a collector) on a free loopback port, with one worker on its own actix
/// system and thread; `configure` sets its routes and data. Returns the port and the handle that stops it.
pub fn serve<F>(configure: F) -> (u16, actix_web::dev::ServerHandle)
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
                .workers(1)
                .bind("127.0.0.1:0")
                .expect("bind a test server");
            let port = server.addrs()[0].port();
            let server = server.run();
            tx.send((port, server.handle())).expect("send the test server's port");
            let _ = server.await;
        })
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the test server started")
}

/// An awc client for tests (crypto provider installed, no default timeout surprises).
pub fn client() -> awc::Client {
    app::install_crypto_provider();
    awc::Client::builder().timeout(Duration::from_secs(30)).finish()
}

/// `model_list` entry pointing a public model name at a fake upstream mode.
pub fn fake_model(name: &str, mode: &str, fake: &FakeUpstream, extra: &str) -> String {
    model_at(name, mode, &fake.url, extra)
}

/// `model_list` entry pointing a public model name at `openai/<upstream_model>` served at `<url>/v1`.
pub fn model_at(name: &str, upstream_model: &str, url: &str, extra: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: openai/{upstream_model}\n      api_base: {url}/v1\n      api_key: sk-fake-upstream-key-123456\n{extra}"
    )
}

/// A port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The `tollgate` binary: `$TOLLGATE_BIN`, else the debug build, (re)built first if it is missing or older than
/// the sources (so `cargo test -p tollgate-tests` alone never runs a stale binary).
pub fn tollgate_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("TOLLGATE_BIN") {
            return PathBuf::from(p);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        let bin = target.join("debug").join("tollgate");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let sources = ["server", "entity", "assets"].iter().filter_map(|d| newest_mtime(&root.join(d))).max();
        if built.is_some_and(|b| sources.is_none_or(|s| s <= b)) {
            return bin;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "tollgate", "--bin", "tollgate"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the tollgate binary failed");
        bin
    })
    .clone()
}

fn newest_mtime(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let mtime = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        newest = newest.max(mtime);
    }
    newest
}

/// The tollgate binary running as a child process; killed on drop.
pub struct GatewayProcess {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl GatewayProcess {
    /// Runs `tollgate --config <file> --port <free>` and waits for readiness.
    pub fn spawn(config_file: &std::path::Path) -> GatewayProcess {
        let file = config_file.to_string_lossy().into_owned();
        Self::spawn_with(&["--config", &file], &[])
    }

    /// Runs `tollgate <args> --port <free>` with extra environment variables and waits for readiness.
    pub fn spawn_with(args: &[&str], env: &[(&str, &str)]) -> GatewayProcess {
        let port = dead_port();
        let log = std::env::temp_dir().join(format!("tollgate-test-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        // The embedded store goes to a file of its own unless the test chose one.
        let db = std::env::temp_dir().join(format!("tollgate-test-{port}.db"));
        // Whatever the process puts in its working directory (the request log's journal beside a Postgres store)
        // goes to a temp directory, the same one for every process of a test's database (a restart replays it).
        let chosen_db = env.iter().find(|(k, _)| *k == "DATABASE_URL").map(|(_, v)| *v);
        let cwd = std::env::temp_dir().join(match chosen_db {
            Some(url) => format!("tollgate-test-cwd-{:016x}", fnv1a(url)),
            None => format!("tollgate-test-cwd-{port}"),
        });
        std::fs::create_dir_all(&cwd).expect("working directory");
        let child = Command::new(tollgate_bin())
            .current_dir(&cwd)
            .args(args)
            .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
            .envs(env.iter().copied())
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
            .stdout(log_file.try_clone().expect("clone"))
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn tollgate");
        let url = format!("http://127.0.0.1:{port}");
        let mut process = GatewayProcess { child, url, log };
        process.wait_ready();
        process
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tollgate exited early with {status}: {}", self.log_text());
            }
            if blocking_get(&format!("{}/health/readiness", self.url)).is_some_and(|(s, _)| s == 200) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("tollgate did not become ready: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `limit` for the process to exit; fails the test with `why` and the log otherwise.
    pub fn wait_exit(&mut self, limit: Duration, why: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{why}: {}", self.log_text());
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} failed");
    }
}

/// FNV-1a: a stable name for a test's working directory.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal blocking HTTP/1.1 GET over a raw socket: (status, body). For probes outside an actix runtime.
pub fn blocking_get(url: &str) -> Option<(u16, String)> {
    raw_request(url, "GET", &[], "")
}

/// Minimal blocking HTTP/1.1 request with `Connection: close`; returns (status, body).
pub fn raw_request(url: &str, method: &str, headers: &[(&str, &str)], body: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut stream = raw_send(url, method, headers, body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// POSTs `body` to `path` with the master key over a raw socket and decodes the response as it arrived:
/// `complete` is false when the gateway cut the transfer short, which awc would report as a clean end.
pub fn raw_post(base: &str, path: &str, body: &str) -> raw::Response {
    raw::read_response(&mut raw_post_open(base, path, body))
}

/// Sends what [`raw_post`] sends and returns the socket, for reading the response as it arrives.
pub fn raw_post_open(base: &str, path: &str, body: &str) -> std::net::TcpStream {
    let auth = format!("Bearer {MASTER_KEY}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    raw_send(&format!("{base}{path}"), "POST", &headers, body).expect("request sent")
}

/// Connects and writes one request with `Connection: close`; the caller reads the response.
fn raw_send(url: &str, method: &str, headers: &[(&str, &str)], body: &str) -> Option<std::net::TcpStream> {
    use std::io::Write;
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).ok()?;
    Some(stream)
}

/// A finished response: status, headers and the body parsed as JSON (`Value::Null` if it is not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub text: String,
    pub json: serde_json::Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.type` of an OpenAI-shaped error body.
    pub fn error_type(&self) -> &str {
        self.json["error"]["type"].as_str().unwrap_or("<no error.type>")
    }
}

/// POSTs a raw body to `path` with `key` as bearer token (none: no auth header), reading the whole response.
pub async fn post(base: &str, path: &str, key: Option<&str>, body: impl Into<bytes::Bytes>) -> Reply {
    let req =
        authorized(client().post(format!("{base}{path}")), key).insert_header(("content-type", "application/json"));
    read_reply(req.send_body(body.into()).await.expect("request sent")).await
}

/// POSTs a JSON body with exactly these headers (besides `content-type`), reading the whole response.
pub async fn post_with(base: &str, path: &str, headers: &[(&str, &str)], body: impl Into<bytes::Bytes>) -> Reply {
    let mut req = client().post(format!("{base}{path}")).insert_header(("content-type", "application/json"));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    read_reply(req.send_body(body.into()).await.expect("request sent")).await
}

/// POSTs an Anthropic Messages request the way the `anthropic` SDK does (`x-api-key`, `anthropic-version`).
pub async fn post_messages(base: &str, body: impl Into<bytes::Bytes>) -> Reply {
    let headers = [("x-api-key", MASTER_KEY), ("anthropic-version", "2023-06-01")];
    post_with(base, "/v1/messages", &headers, body).await
}

/// The `(event name, data as JSON)` pairs of an SSE body, in order (`""` for events without a name).
pub fn sse_events(text: &str) -> Vec<(String, serde_json::Value)> {
    text.split("\n\n")
        .filter_map(|event| {
            let name = event.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("").to_owned();
            let data = event.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name, serde_json::from_str(data).unwrap_or(serde_json::Value::String(data.to_owned()))))
        })
        .collect()
}

pub async fn get(base: &str, path: &str, key: Option<&str>) -> Reply {
    read_reply(authorized(client().get(format!("{base}{path}")), key).send().await.expect("request sent")).await
}

/// GETs `path` with exactly these headers, reading the whole response.
pub async fn get_with(base: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(format!("{base}{path}"));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    read_reply(req.send().await.expect("request sent")).await
}

fn authorized(req: awc::ClientRequest, key: Option<&str>) -> awc::ClientRequest {
    match key {
        Some(key) => req.insert_header(("authorization", format!("Bearer {key}"))),
        None => req,
    }
}

async fn read_reply(mut res: awc::ClientResponse) -> Reply {
    let bytes = res.body().limit(64 * 1024 * 1024).await.expect("body read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        text,
    }
}

/// A chat request body for `model` with one user message.
pub fn chat_body(model: &str, extra: serde_json::Value) -> String {
    let mut body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(obj), serde_json::Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    body.to_string()
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_owned))
        .collect()
}

/// One sample of `GET /metrics`: the value on the line of metric `name` whose labels contain every one of
/// `labels` (written as `key="value"`); `None` if there is no such line.
pub async fn metric(base: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let text = get(base, "/metrics", Some(MASTER_KEY)).await.text;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Polls [`metric`] until it reads `want` (settlements land when a response body is dropped, a moment after the
/// client read its last byte); returns the last value read.
pub async fn wait_metric(base: &str, name: &str, labels: &[&str], want: f64) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = metric(base, name, labels).await;
        if got.is_some_and(|v| (v - want).abs() < 1e-12) || Instant::now() > deadline {
            return got;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}
