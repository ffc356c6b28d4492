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

/// Sends `n` requests, `concurrency` at a time, cycling through eight kinds; returns the rows expected:
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
            5 => (post_messages(url, json!({"model": "oa", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).to_string()).await, Some(OA)),
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
