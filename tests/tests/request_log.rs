//! The request log (issue 16): every request, answered or refused, streamed or not, in any dialect, leaves
//! exactly one row, and the rows' tokens and cost are what the fake upstreams reported, on SQLite and Postgres.

use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use serde_json::json;
use tollgate_fakes::anthropic::{CACHE_CREATION, CACHE_READ, INPUT_TOKENS, OUTPUT_TOKENS};
use tollgate_tests::{
    chat_body, post, post_messages,
    store::{query_row, PgSchema, TempSqlite},
    FakeUpstream, Gateway, MASTER_KEY,
};

/// Per-token prices of both deployments (USD): in nano-dollars, 1 and 2 per token.
fn config(fake: &FakeUpstream) -> String {
    format!(
        "model_list:
  - model_name: oa
    litellm_params: {{model: openai/normal, api_base: {url}/v1, api_key: sk-fake-upstream-key-123456, input_cost_per_token: 0.000000001, output_cost_per_token: 0.000000002}}
  - model_name: an
    litellm_params: {{model: anthropic/normal, api_base: {url}, api_key: sk-fake-upstream-key-123456, input_cost_per_token: 0.000000001, output_cost_per_token: 0.000000002}}
general_settings: {{master_key: {MASTER_KEY}}}
",
        url = fake.url
    )
}

/// What the fakes report per call: the OpenAI fake 10 prompt tokens per message and 5 completion tokens; the
/// Anthropic fake its fixed usage, whose cache tokens count in the prompt (OpenAI's inclusive form).
const OA: (i64, i64) = (10, 5);
const AN: (i64, i64) = ((INPUT_TOKENS + CACHE_CREATION + CACHE_READ) as i64, OUTPUT_TOKENS as i64);

/// Sends `n` requests, `concurrency` at a time, cycling through eight kinds (half of them streamed); returns the
/// rows expected:
/// (count, prompt tokens, completion tokens, cost in nano-dollars, refused).
async fn traffic(gw: &Gateway, n: usize, concurrency: usize) -> (i64, i64, i64, i64, i64) {
    let kinds = stream::iter(0..n).map(|i| async move {
        let url = &gw.url;
        match i % 8 {
            0 => (post(url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("oa", json!({}))).await, Some(OA)),
            1 => (post(url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("oa", json!({"stream": true, "stream_options": {"include_usage": true}}))).await, Some(OA)),
            2 => (post_messages(url, json!({"model": "an", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).to_string()).await, Some(AN)),
            3 => (post_messages(url, json!({"model": "an", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string()).await, Some(AN)),
            // Across dialects: an OpenAI caller on the Anthropic deployment, and an Anthropic caller on OpenAI's.
            4 => (post(url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("an", json!({"stream": true, "stream_options": {"include_usage": true}}))).await, Some(AN)),
            5 => (post_messages(url, json!({"model": "oa", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string()).await, Some(OA)),
            // Refused: no such model, and a wrong key.
            6 => (post(url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("nope", json!({}))).await, None),
            _ => (post(url, "/v1/chat/completions", Some("sk-wrong"), chat_body("oa", json!({}))).await, None),
        }
    });
    let replies: Vec<_> = kinds.buffer_unordered(concurrency).collect().await;
    let mut want = (0, 0, 0, 0, 0);
    for (reply, usage) in replies {
        want.0 += 1;
        match usage {
            Some((prompt, completion)) => {
                assert_eq!(reply.status, 200, "{}", reply.text);
                want.1 += prompt;
                want.2 += completion;
                want.3 += prompt + 2 * completion;
            }
            None => {
                assert!(matches!(reply.status, 401 | 404), "{}", reply.text);
                want.4 += 1;
            }
        }
    }
    want
}

const SUMS: &str = "SELECT COUNT(*), CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), \
                    CAST(SUM(cost_nanos) AS BIGINT), CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) \
                    FROM request_log";

/// Waits (at most 60 s) until the log holds `want.0` rows, then checks every sum.
fn assert_logged(url: &str, want: (i64, i64, i64, i64, i64)) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got = query_row(url, SUMS).unwrap_or_default();
        if got.first() == Some(&want.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(got, vec![want.0, want.1, want.2, want.3, want.4], "rows, prompt, completion, cost, refused");
    let accounting = query_row(url, "SELECT COUNT(*) FROM request_log WHERE accounting <> 'exact'").unwrap_or_default();
    assert_eq!(accounting, vec![0], "every call was priced and reported its usage");
}

async fn every_request_one_row(url: &str, n: usize) {
    let fake = FakeUpstream::start();
    let gw = Gateway::start_on(&config(&fake), url);
    let want = traffic(&gw, n, 50).await;
    assert_logged(url, want);
    let streamed = query_row(url, "SELECT COUNT(*) FROM request_log WHERE streamed").unwrap_or_default();
    assert_eq!(streamed, vec![n as i64 / 2], "half of them streamed");
}

#[actix_rt::test]
async fn ten_thousand_requests_ten_thousand_rows_on_sqlite() {
    let db = TempSqlite::new();
    every_request_one_row(&db.url(), 10_000).await;
}

#[actix_rt::test]
async fn ten_thousand_requests_ten_thousand_rows_on_postgres() {
    let schema = PgSchema::new();
    every_request_one_row(&schema.url(), 10_000).await;
}

#[actix_rt::test]
async fn a_row_names_the_caller_the_deployment_and_the_outcome() {
    let db = TempSqlite::new();
    let fake = FakeUpstream::start();
    let gw = Gateway::start_on(&config(&fake), &db.url());
    let created = post(&gw.url, "/key/generate", Some(MASTER_KEY), json!({"key_alias": "ci-key"}).to_string()).await;
    let key = created.json["key"].as_str().unwrap_or_default().to_owned();
    let r = post(&gw.url, "/v1/chat/completions", Some(&key), chat_body("oa", json!({"stream": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.header("x-tollgate-request-id").unwrap_or_default().to_owned();
    let row = |sql: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = query_row(&db.url(), sql).unwrap_or_default();
            if got.first().is_some_and(|n| *n > 0) || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let matches = format!(
        "SELECT COUNT(*) FROM request_log WHERE request_id = '{id}' AND key_hash = '{hash}' AND key_alias = 'ci-key' \
         AND deployment = 'oa#0' AND provider = 'openai' AND route = '/v1/chat/completions' AND streamed AND status = 200 \
         AND attempts = 1 AND first_byte_at_ms >= started_at_ms AND ended_at_ms >= first_byte_at_ms AND client_ip = '127.0.0.1'",
        hash = created.json["token"].as_str().unwrap_or_default()
    );
    assert_eq!(row(&matches), vec![1], "the row of {id}");
    let key_in_clear = format!("SELECT COUNT(*) FROM request_log WHERE key_hash = '{key}' OR key_alias = '{key}'");
    assert_eq!(query_row(&db.url(), &key_in_clear).unwrap_or_default(), vec![0], "never the key itself");
    let refused = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("nope", json!({}))).await;
    let id = refused.header("x-tollgate-request-id").unwrap_or_default().to_owned();
    let sql = format!(
        "SELECT COUNT(*) FROM request_log WHERE request_id = '{id}' AND status = 404 AND error_class = 'model_not_found' \
         AND model_group = 'nope' AND attempts = 0 AND cost_nanos = 0"
    );
    assert_eq!(row(&sql), vec![1]);
}

/// `n` chat requests to the mock group `m`, `concurrency` at a time; returns the request ids of those answered
/// 200 (every request must be, unless `tolerate_failures`).
async fn mock_traffic(url: &str, n: usize, concurrency: usize, tolerate_failures: bool) -> Vec<String> {
    let replies: Vec<_> = stream::iter(0..n).map(|_| try_chat(url)).buffer_unordered(concurrency).collect().await;
    let mut ids = Vec::new();
    for r in replies {
        match r {
            Ok(id) => ids.push(id),
            Err(e) => assert!(tolerate_failures, "{e}"),
        }
    }
    ids
}

/// One chat request to the mock group; the request id when it was answered 200 with its whole body, else why not
/// (a gateway killed mid-request gives a transport error, which is no answer).
async fn try_chat(url: &str) -> Result<String, String> {
    let request = tollgate_tests::client()
        .post(format!("{url}/v1/chat/completions"))
        .insert_header(("authorization", format!("Bearer {MASTER_KEY}")))
        .insert_header(("content-type", "application/json"));
    let mut response = request.send_body(chat_body("m", json!({}))).await.map_err(|e| e.to_string())?;
    let body = response.body().await.map_err(|e| e.to_string())?;
    let id = response.headers().get("x-tollgate-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match response.status().as_u16() {
        200 => Ok(id.to_owned()),
        status => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
    }
}

fn wait_rows(url: &str, want: i64, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        let got =
            query_row(url, "SELECT COUNT(*) FROM request_log").ok().and_then(|v| v.first().copied()).unwrap_or(-1);
        if got >= want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const MOCK: &str = "model_list:\n  - {model_name: m, litellm_params: {model: mock/m}}\ngeneral_settings: {master_key: sk-test-master}\n";

/// Must-show 2 (first half): Postgres reached through a TCP forwarder that the test cuts for 10 s mid-run.
/// Requests keep succeeding (the request path never waits for the store), and once the store is back every
/// record is in it.
#[actix_rt::test]
async fn requests_succeed_while_the_store_is_cut_off_and_every_record_arrives_after() {
    let schema = PgSchema::new();
    let forwarder = tollgate_tests::tcp_cut::TcpCut::start("127.0.0.1:5432".parse().expect("addr"));
    let through = schema.url().replace(":5432/", &format!(":{}/", forwarder.port));
    let gw = Gateway::start_on(MOCK, &through);
    let mut answered = mock_traffic(&gw.url, 300, 20, false).await;
    assert_eq!(wait_rows(&schema.url(), 300, Duration::from_secs(30)), 300, "before the cut");
    forwarder.cut();
    let cut_at = Instant::now();
    while cut_at.elapsed() < Duration::from_secs(10) {
        answered.extend(mock_traffic(&gw.url, 100, 20, false).await);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let during = answered.len() - 300;
    assert!(during >= 100, "requests kept succeeding while the store was unreachable: {during}");
    assert_eq!(wait_rows(&schema.url(), 300, Duration::from_secs(1)), 300, "nothing reached the store while cut");
    forwarder.restore();
    let total = answered.len() as i64;
    assert_eq!(wait_rows(&schema.url(), total, Duration::from_secs(60)), total, "every record, once the store is back");
    let metric = tollgate_tests::metric(&gw.url, "tollgate_request_log_written_total", &[]).await;
    assert_eq!(metric, Some(total as f64));
}

/// Must-show 2 (second half): the gateway is killed with SIGKILL mid-load and started again on the same store;
/// every request that was answered before the kill has its row (the journal is replayed).
#[test]
fn every_answered_request_survives_a_sigkill() {
    let db = TempSqlite::new();
    let dir = std::env::temp_dir().join(format!("tollgate-sigkill-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config.yaml");
    std::fs::write(&config, MOCK).expect("config");
    let env = [("DATABASE_URL", db.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let file = config.to_string_lossy().into_owned();
    let mut first = tollgate_tests::GatewayProcess::spawn_with(&["--config", &file], &env);
    let url = first.url.clone();
    let load = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut ids = Vec::new();
            // Until the gateway dies: requests in flight at the kill fail, the answered ones count.
            for _ in 0..200 {
                let batch = mock_traffic(&url, 50, 25, true).await;
                let done = batch.len() < 50;
                ids.extend(batch);
                if done {
                    break;
                }
            }
            ids
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    first.signal("KILL");
    let _ = first.wait_exit(Duration::from_secs(10), "the killed gateway exits");
    let answered = load.join().expect("load thread");
    assert!(answered.len() > 100, "load ran before the kill: {}", answered.len());
    let second = tollgate_tests::GatewayProcess::spawn_with(&["--config", &file], &env);
    let want = answered.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut missing = answered.clone();
    while !missing.is_empty() && Instant::now() < deadline {
        missing.retain(|id| {
            let sql = format!("SELECT COUNT(*) FROM request_log WHERE request_id = '{id}'");
            query_row(&db.url(), &sql).ok().and_then(|v| v.first().copied()) != Some(1)
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        missing.is_empty(),
        "{} of {want} answered requests have no row: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    drop(second);
    let _ = std::fs::remove_dir_all(dir);
}

/// Must-show 6: the seed's logging snippet writes one JSON line per request, whose token counts are the
/// upstream's.
#[actix_rt::test]
async fn the_seeds_log_file_has_a_line_per_request_with_the_upstreams_tokens() {
    let fake = FakeUpstream::start();
    let dir = std::env::temp_dir().join(format!("tollgate-seed-log-{}", uuid::Uuid::new_v4().simple()));
    let path = dir.join("requests.jsonl");
    let yaml = format!(
        "{}litellm_settings:\n  log_level: INFO\n  log_to_file: true\n  log_file_path: {}\n  log_completion_tokens: true\n",
        config(&fake),
        path.display()
    );
    let gw = Gateway::start(&yaml);
    for i in 0..20 {
        let body = chat_body("oa", json!({"stream": i % 2 == 0, "stream_options": {"include_usage": i % 2 == 0}}));
        let body = if i % 2 == 0 { body } else { chat_body("oa", json!({})) };
        assert_eq!(post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), body).await.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        lines = std::fs::read_to_string(&path).unwrap_or_default().lines().map(str::to_owned).collect();
        if lines.len() >= 20 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 20, "one line per request");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        assert_eq!(
            (v["model"].as_str(), v["prompt_tokens"].as_i64(), v["completion_tokens"].as_i64()),
            (Some("oa"), Some(OA.0), Some(OA.1)),
            "{line}"
        );
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')) && v["latency_ms"].as_i64().is_some(),
            "{line}"
        );
        assert_eq!(v["cost"].as_f64(), Some((OA.0 + 2 * OA.1) as f64 / 1e9), "{line}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// LiteLLM's `general_settings.disable_spend_logs`: no rows in the store, while metrics still count every request.
#[actix_rt::test]
async fn disable_spend_logs_keeps_requests_out_of_the_store_but_not_out_of_metrics() {
    let db = TempSqlite::new();
    let yaml = MOCK.replace("{master_key: sk-test-master}", "{master_key: sk-test-master, disable_spend_logs: true}");
    let gw = Gateway::start_on(&yaml, &db.url());
    let answered = mock_traffic(&gw.url, 20, 5, false).await;
    assert_eq!(answered.len(), 20);
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(query_row(&db.url(), "SELECT COUNT(*) FROM request_log").unwrap_or_default(), vec![0]);
    let counted = tollgate_tests::metric(&gw.url, "tollgate_requests_total", &["status=\"200\""]).await;
    assert_eq!(counted, Some(20.0));
}
