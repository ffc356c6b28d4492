//! Callbacks (issue 16, must-show 5): `success_callback` / `failure_callback` / `callbacks` deliver every request
//! log record exactly once to a webhook (a test server here, counting records by request id), including while it
//! answers 500 for a while and across a graceful restart with the webhook down; successes and failures go to their
//! own sinks; the JSON-lines file sink gets one line per record; the store gets every row while the webhook is down.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use tollgate_tests::{
    chat_body, metric, post, serve,
    store::{query_row, TempSqlite},
    Gateway, GatewayProcess, MASTER_KEY,
};

/// What the receiver was sent, by path.
#[derive(Default)]
struct Seen {
    /// path -> request id -> times received in a batch it accepted.
    ids: HashMap<String, HashMap<String, u32>>,
    /// path -> the payloads' `status` values.
    statuses: HashMap<String, Vec<String>>,
    refused_batches: u32,
    /// The `authorization` header of the last batch, by path.
    authorization: HashMap<String, String>,
    /// A virtual or provider key seen in a body.
    saw_a_key: bool,
}

/// A webhook receiver on its own actix system: answers 500 while `failing`, 400 on `/reject`, else takes the
/// batch (a JSON array) and counts its records.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
    failing: Arc<AtomicBool>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start(failing: bool) -> Receiver {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let failing = Arc::new(AtomicBool::new(failing));
        let state = web::Data::new((seen.clone(), failing.clone()));
        let (port, handle) = serve(move |cfg| {
            cfg.app_data(state.clone()).app_data(web::PayloadConfig::new(64 << 20)).default_service(web::to(receive));
        });
        Receiver { url: format!("http://127.0.0.1:{port}"), seen, failing, handle }
    }

    fn count(&self, path: &str) -> usize {
        self.seen.lock().expect("lock").ids.get(path).map_or(0, HashMap::len)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

type State = web::Data<(Arc<Mutex<Seen>>, Arc<AtomicBool>)>;

async fn receive(req: HttpRequest, body: web::Bytes, state: State) -> HttpResponse {
    let (seen, failing) = (&state.0, &state.1);
    let path = req.path().to_owned();
    if failing.load(SeqCst) {
        seen.lock().expect("lock").refused_batches += 1;
        return HttpResponse::InternalServerError().body("down for a while");
    }
    if path == "/reject" {
        return HttpResponse::BadRequest().body("not here");
    }
    let Ok(Value::Array(records)) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().body("not a JSON array");
    };
    let text = String::from_utf8_lossy(&body);
    let mut seen = seen.lock().expect("lock");
    seen.saw_a_key |= text.contains(MASTER_KEY) || text.contains("sk-fake");
    if let Some(auth) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
        seen.authorization.insert(path.clone(), auth.to_owned());
    }
    for record in records {
        let id = record["id"].as_str().unwrap_or_default().to_owned();
        *seen.ids.entry(path.clone()).or_default().entry(id).or_default() += 1;
        let status = record["status"].as_str().unwrap_or_default().to_owned();
        seen.statuses.entry(path.clone()).or_default().push(status);
    }
    HttpResponse::Ok().finish()
}

/// Sends `n` requests, `concurrency` at a time: every fifth to a group whose upstream fails (HTTP 500), every
/// seventh with a wrong key (401), half of the rest streamed. Returns (request id, status) of each.
async fn traffic(url: &str, n: usize) -> Vec<(String, u16)> {
    let replies = stream::iter(0..n).map(|i| async move {
        let (model, key) = match i {
            i if i % 5 == 0 => ("broken", MASTER_KEY),
            i if i % 7 == 0 => ("m", "sk-wrong"),
            _ => ("m", MASTER_KEY),
        };
        let extra = if i % 2 == 0 { json!({"stream": true}) } else { json!({}) };
        let reply = post(url, "/v1/chat/completions", Some(key), chat_body(model, extra)).await;
        (reply.header("x-tollgate-request-id").unwrap_or_default().to_owned(), reply.status)
    });
    replies.buffer_unordered(20).collect().await
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

fn rows(db: &str) -> i64 {
    query_row(db, "SELECT COUNT(*) FROM request_log").ok().and_then(|v| v.first().copied()).unwrap_or(-1)
}

/// Every id of `want` was received exactly once on `path`, and nothing else was.
fn assert_exactly_once(receiver: &Receiver, path: &str, want: &[&String]) {
    let seen = receiver.seen.lock().expect("lock");
    let got = seen.ids.get(path).cloned().unwrap_or_default();
    let duplicates: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "{path}: delivered more than once: {:?}", &duplicates[..duplicates.len().min(5)]);
    let missing: Vec<_> = want.iter().filter(|id| !got.contains_key(id.as_str())).collect();
    assert!(
        missing.is_empty(),
        "{path}: {} of {} missing: {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(got.len(), want.len(), "{path}: records that were not sent there");
}

#[actix_rt::test]
async fn every_record_reaches_its_webhook_once_while_the_webhook_fails_for_a_while() {
    let receiver = Receiver::start(true);
    let db = TempSqlite::new();
    let dir = std::env::temp_dir().join(format!("tollgate-callbacks-{}", uuid::Uuid::new_v4().simple()));
    let file = dir.join("records.jsonl");
    let yaml = format!(
        "model_list:
  - {{model_name: m, litellm_params: {{model: mock/m}}}}
  - {{model_name: broken, litellm_params: {{model: mock/error-500}}}}
general_settings: {{master_key: {MASTER_KEY}}}
litellm_settings:
  success_callback: [webhook, langfuse]
  failure_callback: [failures]
  callbacks: [jsonl_file]
callback_settings:
  webhook: {{url: '{url}/success', batch_size: 50, flush_interval: 0.2}}
  failures: {{callback_type: generic_api, endpoint: '{url}/failure', batch_size: 50, flush_interval: 0.2, headers: {{Authorization: Bearer hook-secret}}}}
  jsonl_file: {{path: '{file}', batch_size: 100, flush_interval: 0.2}}
",
        url = receiver.url,
        file = file.display()
    );
    let gw = Gateway::start_on(&yaml, &db.url());
    let sent = traffic(&gw.url, 500).await;
    let (ok, failed): (Vec<_>, Vec<_>) = sent.iter().partition(|(_, status)| *status < 400);
    assert!(ok.len() > 250 && failed.len() > 100, "{} ok, {} failed", ok.len(), failed.len());
    assert!(failed.iter().any(|(_, s)| *s == 401) && failed.iter().any(|(_, s)| *s >= 500), "{failed:?}");
    assert!(sent.iter().all(|(id, _)| !id.is_empty()));

    // The webhook is down: the store still gets every row, and the file sink every line.
    assert!(wait_until(Duration::from_secs(30), || rows(&db.url()) == 500), "rows: {}", rows(&db.url()));
    let lines = || std::fs::read_to_string(&file).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>();
    assert!(
        wait_until(Duration::from_secs(10), || lines().len() >= 500),
        "file lines: {}\n{}",
        lines().len(),
        tollgate_tests::logs::captured()
            .lines()
            .filter(|l| l.contains("callback") || l.contains("journal"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!((receiver.count("/success"), receiver.count("/failure")), (0, 0));
    // Down for a while: several tries, each after a longer backoff.
    let refused = || receiver.seen.lock().expect("lock").refused_batches;
    assert!(wait_until(Duration::from_secs(20), || refused() >= 4), "the webhook was tried: {}", refused());
    let lag = metric(&gw.url, "tollgate_callback_lag_records", &["callback=\"webhook\""]).await.unwrap_or(0.0);
    assert!(lag >= ok.len() as f64, "the successes wait for the webhook: lag {lag}");
    assert!(metric(&gw.url, "tollgate_callback_failures_total", &["callback=\"webhook\""]).await > Some(0.0));
    assert!(metric(&gw.url, "tollgate_request_log_journal_bytes", &[]).await > Some(0.0), "segments wait on disk");

    let warned = tollgate_tests::logs::captured();
    assert!(warned.contains("not supported yet: langfuse"), "an unknown callback is warned about at start-up");

    // It comes back: every record arrives, once, at the sink its status routes it to.
    receiver.failing.store(false, SeqCst);
    let ok_ids: Vec<&String> = ok.iter().map(|(id, _)| id).collect();
    let failed_ids: Vec<&String> = failed.iter().map(|(id, _)| id).collect();
    let arrived = wait_until(Duration::from_secs(60), || {
        receiver.count("/success") >= ok_ids.len() && receiver.count("/failure") >= failed_ids.len()
    });
    assert!(
        arrived,
        "{} of {} successes, {} of {} failures",
        receiver.count("/success"),
        ok_ids.len(),
        receiver.count("/failure"),
        failed_ids.len()
    );
    // Anything sent twice would arrive within a turn or two.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&receiver, "/success", &ok_ids);
    assert_exactly_once(&receiver, "/failure", &failed_ids);
    {
        let seen = receiver.seen.lock().expect("lock");
        assert!(seen.statuses["/success"].iter().all(|s| s == "success"));
        assert!(seen.statuses["/failure"].iter().all(|s| s == "failure"));
        assert_eq!(seen.authorization.get("/failure").map(String::as_str), Some("Bearer hook-secret"));
        assert!(!seen.saw_a_key, "no key in a payload");
    }
    // The file sink: one line per record, each record once.
    let file_ids: Vec<String> = lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_default()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut unique = file_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((file_ids.len(), unique.len()), (500, 500));
    assert!(sent.iter().all(|(id, _)| unique.binary_search(id).is_ok()));
    // Every consumer passed every segment: the journal is emptied, the lag is gone.
    let mut bytes = None;
    for _ in 0..50 {
        bytes = metric(&gw.url, "tollgate_request_log_journal_bytes", &[]).await;
        if bytes == Some(0.0) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bytes, Some(0.0));
    assert_eq!(metric(&gw.url, "tollgate_callback_lag_records", &["callback=\"webhook\""]).await, Some(0.0));
    assert_eq!(
        metric(&gw.url, "tollgate_callback_delivered_total", &["callback=\"failures\""]).await,
        Some(failed_ids.len() as f64)
    );
    assert_eq!(rows(&db.url()), 500, "no row twice");
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
async fn a_rejected_batch_is_dropped_counted_and_passed() {
    let receiver = Receiver::start(false);
    let yaml = format!(
        "model_list:\n  - {{model_name: m, litellm_params: {{model: mock/m}}}}\ngeneral_settings: {{master_key: {MASTER_KEY}}}\nlitellm_settings: {{callbacks: [webhook]}}\ncallback_settings: {{webhook: {{url: '{}/reject', batch_size: 10, flush_interval: 0.1}}}}\n",
        receiver.url
    );
    let gw = Gateway::start(&yaml);
    let sent = traffic(&gw.url, 30).await;
    let mut dropped = None;
    for _ in 0..50 {
        dropped = metric(&gw.url, "tollgate_callback_dropped_total", &["callback=\"webhook\""]).await;
        if dropped == Some(sent.len() as f64) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dropped, Some(30.0));
    assert_eq!(metric(&gw.url, "tollgate_callback_lag_records", &["callback=\"webhook\""]).await, Some(0.0));
    assert_eq!(
        metric(&gw.url, "tollgate_callback_failures_total", &["callback=\"webhook\""]).await,
        Some(0.0),
        "not retried"
    );
}

/// Records in a journal file, by its documented framing (server/src/logs/journal.rs): a little-endian `u32` length
/// and a CRC-32, then the record, up to the first zero length.
fn frames(bytes: &[u8]) -> usize {
    let (mut at, mut n) = (0, 0);
    while let Some(len) = bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize) {
        if len == 0 {
            break;
        }
        at += 8 + len;
        n += 1;
    }
    n
}

/// The gateway is stopped gracefully (SIGTERM) while the webhook is down; the records wait in the journal, and the
/// next process delivers them once the webhook is back.
#[test]
fn a_restarted_gateway_delivers_the_backlog_once_the_webhook_is_back() {
    let receiver = Receiver::start(true);
    let db = TempSqlite::new();
    let dir = std::env::temp_dir().join(format!("tollgate-callbacks-restart-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let journal = dir.join("journal");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - {{model_name: m, litellm_params: {{model: mock/m}}}}\n  - {{model_name: broken, litellm_params: {{model: mock/error-500}}}}\ngeneral_settings: {{master_key: {MASTER_KEY}}}\nlitellm_settings: {{callbacks: [webhook]}}\ncallback_settings: {{webhook: {{url: '{}/all', batch_size: 25, flush_interval: 0.2}}}}\ntollgate: {{log_journal_dir: '{}'}}\n",
            receiver.url,
            journal.display()
        ),
    )
    .expect("config");
    let file = config.to_string_lossy().into_owned();
    let env = [("DATABASE_URL", db.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = GatewayProcess::spawn_with(&["--config", &file], &env);
    let url = first.url.clone();
    let sent = std::thread::spawn(move || actix_rt::System::new().block_on(traffic(&url, 200))).join().expect("load");
    assert!(wait_until(Duration::from_secs(30), || rows(&db.url()) == 200), "rows: {}", rows(&db.url()));
    first.signal("TERM");
    let status = first.wait_exit(Duration::from_secs(30), "the gateway stops on SIGTERM");
    assert!(status.success(), "{}", first.log_text());
    assert_eq!(receiver.count("/all"), 0);
    let segments = std::fs::read_dir(&journal)
        .expect("journal")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("segment-"))
        .count();
    assert!(segments > 0, "the backlog waits in the journal");
    let journaled: usize = std::fs::read_dir(&journal)
        .expect("journal")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| frames(&std::fs::read(e.path()).unwrap_or_default()))
        .sum();
    assert_eq!(journaled, 200, "every record waits in the journal: {}", first.log_text());

    receiver.failing.store(false, SeqCst);
    let second = GatewayProcess::spawn_with(&["--config", &file], &env);
    let ids: Vec<&String> = sent.iter().map(|(id, _)| id).collect();
    assert!(
        wait_until(Duration::from_secs(60), || receiver.count("/all") >= ids.len()),
        "{} of {} delivered: {}",
        receiver.count("/all"),
        ids.len(),
        second.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once(&receiver, "/all", &ids);
    assert_eq!(rows(&db.url()), 200, "the store did not get the replay twice");
    drop(second);
    let _ = std::fs::remove_dir_all(dir);
}
