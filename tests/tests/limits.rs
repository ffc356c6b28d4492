//! Rate limits over HTTP: keys' `rpm_limit`, `tpm_limit`, `max_parallel_requests` and per-model limits, teams'
//! and users' limits shared by their keys, end users', on SQLite and Postgres, in-process and shared through Redis
//! by gateways that share nothing else; the answers' 429s and `x-ratelimit-*` headers; and the seed's
//! `key_settings`.

use futures_util::future::join_all;
use serde_json::{json, Value};
use tollgate_tests::{
    chat_body, get, post,
    redis::RedisPrefix,
    store::{PgSchema, TempSqlite},
    Gateway, Reply, MASTER_KEY,
};

fn config(extra: &str) -> String {
    format!(
        "model_list:
  - {{model_name: a, litellm_params: {{model: mock/a}}}}
  - {{model_name: b, litellm_params: {{model: mock/b}}}}
  - {{model_name: slow, litellm_params: {{model: mock/slow, mock_latency_ms: 700}}}}
general_settings:
  master_key: {MASTER_KEY}
{extra}"
    )
}

async fn generate(gw: &Gateway, body: Value) -> String {
    let created = post(&gw.url, "/key/generate", Some(MASTER_KEY), body.to_string()).await;
    assert_eq!(created.status, 200, "{}", created.text);
    created.json["key"].as_str().unwrap_or_default().to_owned()
}

async fn chat(url: &str, key: &str, model: &str) -> Reply {
    post(url, "/v1/chat/completions", Some(key), chat_body(model, json!({}))).await
}

fn code(r: &Reply) -> &str {
    r.json["error"]["code"].as_str().unwrap_or("<no code>")
}

/// Statuses of `n` concurrent chats per gateway URL.
async fn burst(urls: &[&str], key: &str, n: usize) -> Vec<Reply> {
    let calls = urls.iter().flat_map(|url| (0..n).map(move |_| chat(url, key, "a")));
    join_all(calls).await
}

fn count(replies: &[Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

/// Must-show 2, one gateway: exactly `rpm_limit` of 50 concurrent requests pass; every other one is a 429 that
/// names the limit and the key and says when to retry; every answer carries OpenAI's rate-limit headers.
async fn rpm_exactly(database_url: &str) {
    let gw = Gateway::start_on(&config(""), database_url);
    let key = generate(&gw, json!({"rpm_limit": 10, "key_alias": "ci-bot"})).await;
    let replies = burst(&[&gw.url], &key, 50).await;
    assert_eq!((count(&replies, 200), count(&replies, 429)), (10, 40));
    for r in &replies {
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("10"), "{}", r.text);
        assert!(
            r.header("x-ratelimit-remaining-requests").is_some() && r.header("x-ratelimit-reset-requests").is_some()
        );
        if r.status == 429 {
            assert_eq!((r.error_type(), code(r)), ("rate_limit_error", "rpm_limit_exceeded"), "{}", r.text);
            let retry: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
            assert!((1..=120).contains(&retry), "retry-after {retry}");
            let message = r.json["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("key ci-bot") && message.contains("rpm_limit of 10"), "{message}");
            assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
        }
    }
    // Info shows the limit; another key is not affected.
    let info = get(&gw.url, &format!("/key/info?key={key}"), Some(MASTER_KEY)).await;
    assert_eq!(info.json["info"]["rpm_limit"], 10, "{}", info.text);
    let other = generate(&gw, json!({})).await;
    let free = chat(&gw.url, &other, "a").await;
    assert_eq!(free.status, 200);
    assert!(free.header("x-ratelimit-limit-requests").is_none(), "an unlimited key gets no rate-limit headers");
}

#[actix_rt::test]
async fn rpm_limit_admits_exactly_the_limit_on_sqlite() {
    let db = TempSqlite::new();
    rpm_exactly(&db.url()).await;
}

#[actix_rt::test]
async fn rpm_limit_admits_exactly_the_limit_on_postgres() {
    let schema = PgSchema::new();
    rpm_exactly(&schema.url()).await;
}

/// Must-show 2, across replicas: two gateways with a store each (they share nothing but Redis) hold one key with
/// `rpm_limit: 10`; 25 concurrent requests to each: exactly 10 pass in total.
#[actix_rt::test]
async fn rpm_limit_holds_across_gateways_sharing_redis() {
    let redis = RedisPrefix::new();
    let yaml = config(&redis.yaml());
    let (one, two) = (Gateway::start(&yaml), Gateway::start(&yaml));
    let key = format!("sk-shared-{}", uuid::Uuid::new_v4().simple());
    for gw in [&one, &two] {
        assert_eq!(generate(gw, json!({"key": key, "rpm_limit": 10})).await, key);
    }
    let replies = burst(&[&one.url, &two.url], &key, 25).await;
    assert_eq!((count(&replies, 200), count(&replies, 429)), (10, 40));
    assert!(replies.iter().filter(|r| r.status == 429).all(|r| r.header("retry-after").is_some()));
    assert!(redis.keys().iter().any(|k| k.contains(":r:")), "the counters live in Redis under the test's prefix");
}

/// The same with a gateway PROCESS and an in-process gateway (each with a SQLite file of its own): exactly 10.
#[actix_rt::test]
async fn rpm_limit_holds_across_processes_sharing_redis() {
    let redis = RedisPrefix::new();
    let yaml = config(&redis.yaml());
    let dir = std::env::temp_dir().join(format!("tollgate-limits-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("config.yaml");
    std::fs::write(&file, &yaml).expect("write config");
    let process = tollgate_tests::GatewayProcess::spawn(&file);
    let gw = Gateway::start(&yaml);
    let key = format!("sk-shared-{}", uuid::Uuid::new_v4().simple());
    let body = json!({"key": key, "rpm_limit": 10}).to_string();
    for url in [&gw.url, &process.url] {
        let created = post(url, "/key/generate", Some(MASTER_KEY), body.clone()).await;
        assert_eq!(created.status, 200, "{}", created.text);
    }
    let replies = burst(&[&gw.url, &process.url], &key, 25).await;
    assert_eq!((count(&replies, 200), count(&replies, 429)), (10, 40), "{}", process.log_text());
    let _ = std::fs::remove_dir_all(dir);
}

/// Through Redis too, tokens are counted at settlement and parallel slots are given back when requests end.
#[actix_rt::test]
async fn redis_counts_tokens_and_gives_parallel_slots_back() {
    let redis = RedisPrefix::new();
    let gw = Gateway::start(&config(&redis.yaml()));
    let key = generate(&gw, json!({"max_parallel_requests": 2, "tpm_limit": 1000000})).await;
    let replies = join_all((0..5).map(|_| chat(&gw.url, &key, "slow"))).await;
    assert_eq!((count(&replies, 200), count(&replies, 429)), (2, 3));
    let parallel = redis.keys().into_iter().find(|k| k.ends_with(":p")).unwrap_or_default();
    assert!(!parallel.is_empty(), "the parallel counter lives in Redis: {:?}", redis.keys());
    // The release runs on a task of its own: within moments both slots are free again.
    let mut after = Vec::new();
    for _ in 0..50 {
        after = join_all((0..2).map(|_| chat(&gw.url, &key, "a"))).await;
        if count(&after, 200) == 2 {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count(&after, 200), 2, "both slots were given back");
    let tpm = generate(&gw, json!({"tpm_limit": 5})).await;
    assert_eq!(chat(&gw.url, &tpm, "a").await.status, 200);
    let mut over = chat(&gw.url, &tpm, "a").await;
    for _ in 0..50 {
        if over.status == 429 {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
        over = chat(&gw.url, &tpm, "a").await;
    }
    assert_eq!((over.status, code(&over)), (429, "tpm_limit_exceeded"), "{}", over.text);
}

/// max_parallel_requests: slots are taken at admission and given back when each request ends.
#[actix_rt::test]
async fn max_parallel_requests_counts_requests_in_flight() {
    let gw = Gateway::start(&config(""));
    let key = generate(&gw, json!({"max_parallel_requests": 2})).await;
    let replies = join_all((0..5).map(|_| chat(&gw.url, &key, "slow"))).await;
    assert_eq!((count(&replies, 200), count(&replies, 429)), (2, 3));
    let refused = replies.iter().find(|r| r.status == 429);
    assert_eq!(refused.map(code), Some("max_parallel_exceeded"));
    // All ended: the slots are free again (streams too).
    assert_eq!(chat(&gw.url, &key, "a").await.status, 200);
    let stream = post(&gw.url, "/v1/chat/completions", Some(&key), chat_body("a", json!({"stream": true}))).await;
    assert_eq!(stream.status, 200);
    let after = join_all((0..2).map(|_| chat(&gw.url, &key, "a"))).await;
    assert_eq!(count(&after, 200), 2, "a finished stream gave its slot back");
}

/// tpm_limit counts the tokens of settled calls, and refuses while the minute's tokens are at the limit.
#[actix_rt::test]
async fn tpm_limit_counts_settled_tokens() {
    let gw = Gateway::start(&config(""));
    let key = generate(&gw, json!({"tpm_limit": 5})).await;
    let first = chat(&gw.url, &key, "a").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("x-ratelimit-limit-tokens"), Some("5"));
    let tokens = first.json["usage"]["total_tokens"].as_u64().unwrap_or(0);
    assert!(tokens >= 5, "the mock's answer alone uses the minute's tokens: {tokens}");
    let over = chat(&gw.url, &key, "a").await;
    assert_eq!((over.status, code(&over)), (429, "tpm_limit_exceeded"), "{}", over.text);
    assert_eq!(over.header("x-ratelimit-remaining-tokens"), Some("0"));
}

/// Per-model limits bind only their model; updating a key's limits takes effect at once.
#[actix_rt::test]
async fn model_rpm_limit_binds_its_model_and_updates_apply() {
    let gw = Gateway::start(&config(""));
    let key = generate(&gw, json!({"model_rpm_limit": {"a": 2}})).await;
    let a = join_all((0..4).map(|_| chat(&gw.url, &key, "a"))).await;
    assert_eq!(count(&a, 200), 2);
    let refused = a.iter().find(|r| r.status == 429).map(|r| r.text.clone()).unwrap_or_default();
    assert!(refused.contains("model_rpm_limit of 2 requests per minute for model `a`"), "{refused}");
    assert_eq!(chat(&gw.url, &key, "b").await.status, 200, "model b is not limited");
    let update = post(&gw.url, "/key/update", Some(MASTER_KEY), json!({"key": key, "rpm_limit": 1}).to_string()).await;
    assert_eq!(update.status, 200, "{}", update.text);
    assert_eq!(chat(&gw.url, &key, "b").await.status, 200);
    assert_eq!(chat(&gw.url, &key, "b").await.status, 429, "the new rpm_limit holds at once");
    let bad = post(&gw.url, "/key/update", Some(MASTER_KEY), json!({"key": key, "rpm_limit": -3}).to_string()).await;
    assert_eq!((bad.status, bad.json["error"]["param"].as_str()), (400, Some("rpm_limit")), "{}", bad.text);
}

/// The seed's snippet: keys declared in `key_settings` with the example master key, on loopback.
const SEED: &str = r#"model_list:
  - model_name: gpt-4
    litellm_params:
      model: mock/gpt-4
general_settings:
  master_key: "sk-1234"
key_settings:
  - api_key: "sk-team-a-0123456789"
    rate_limit:
      requests_per_minute: 60
      tokens_per_minute: 100000
    budget:
      monthly_limit: 100
  - api_key: "sk-team-b-0123456789"
    rate_limit:
      requests_per_minute: 30
"#;

/// Must-show 6: the first declared key takes 60 requests a minute; the 61st gets 429.
#[actix_rt::test]
async fn key_settings_declare_keys_with_their_limits() {
    let config = tollgate::config::Config::load_str(SEED, &|_: &str| None).expect("the seed snippet loads");
    assert!(
        !config.warnings.iter().any(|w| w.contains("monthly_limit")),
        "the budget is enforced, not warned about: {:?}",
        config.warnings
    );
    let db = TempSqlite::new();
    let gw = Gateway::start_on(SEED, &db.url());
    for n in 1..=60 {
        let r = chat(&gw.url, "sk-team-a-0123456789", "gpt-4").await;
        assert_eq!(r.status, 200, "request {n}: {}", r.text);
    }
    let over = chat(&gw.url, "sk-team-a-0123456789", "gpt-4").await;
    assert_eq!((over.status, code(&over)), (429, "rpm_limit_exceeded"), "{}", over.text);
    assert!(over.text.contains("sk-...6789") && !over.text.contains("sk-team-a"), "{}", over.text);
    assert_eq!(chat(&gw.url, "sk-team-b-0123456789", "gpt-4").await.status, 200, "each key has its own limit");
    let info = get(&gw.url, "/key/info?key=sk-team-b-0123456789", Some("sk-1234")).await;
    assert_eq!(info.json["info"]["rpm_limit"], 30, "{}", info.text);
    let a = get(&gw.url, "/key/info?key=sk-team-a-0123456789", Some("sk-1234")).await;
    let a = &a.json["info"];
    assert_eq!((a["max_budget"].as_f64(), a["budget_duration"].as_str()), (Some(100.0), Some("1mo")), "{a}");
    assert!(a["budget_reset_at"].as_str().is_some_and(|t| t.ends_with("-01T00:00:00Z")), "the 1st of a month: {a}");
    assert!(!info.text.contains("sk-team-b"), "only the hash and display name are shown: {}", info.text);
    // A restart whose config no longer declares team b: its key stops working; team a's limit changed.
    drop(gw);
    let without_b = SEED.replace("requests_per_minute: 60", "requests_per_minute: 61");
    let without_b = &without_b[..without_b.find("  - api_key: \"sk-team-b").unwrap_or(without_b.len())];
    let gw = Gateway::start_on(without_b, &db.url());
    let gone = chat(&gw.url, "sk-team-b-0123456789", "gpt-4").await;
    assert_eq!((gone.status, code(&gone)), (401, "invalid_api_key"), "{}", gone.text);
    let info = get(&gw.url, "/key/info?key=sk-team-a-0123456789", Some("sk-1234")).await;
    assert_eq!(info.json["info"]["rpm_limit"], 61, "{}", info.text);
}

/// The example master key is refused on an address other hosts can reach.
#[test]
fn the_example_master_key_is_refused_off_loopback() {
    let dir = std::env::temp_dir().join(format!("tollgate-seed-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("config.yaml");
    std::fs::write(&file, SEED).expect("write config");
    let db = TempSqlite::new();
    let port = tollgate_tests::dead_port().to_string();
    let spawn = |extra: &[&str]| {
        std::process::Command::new(tollgate_tests::tollgate_bin())
            .args(["--config", &file.to_string_lossy(), "--host", "0.0.0.0", "--port", &port, "--workers", "1"])
            .args(extra)
            .env("DATABASE_URL", db.url())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run tollgate")
    };
    // Refused: it exits at once, saying why and how to proceed.
    let mut refused = spawn(&[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while refused.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = refused.kill();
            panic!("tollgate kept running with the example master key on 0.0.0.0");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = refused.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("sk-1234") && text.contains("--allow-example-master-key"), "{text}");
    // Allowed with the flag: it serves.
    let mut allowed = spawn(&["--allow-example-master-key"]);
    let ready = format!("http://127.0.0.1:{port}/health/readiness");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut up = false;
    while !up && std::time::Instant::now() < deadline && allowed.try_wait().ok().flatten().is_none() {
        up = tollgate_tests::blocking_get(&ready).is_some_and(|(s, _)| s == 200);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = allowed.kill();
    let _ = allowed.wait();
    assert!(up, "with --allow-example-master-key tollgate serves on 0.0.0.0");
    let _ = std::fs::remove_dir_all(dir);
}

async fn admin(gw: &Gateway, path: &str, body: Value) -> Reply {
    post(&gw.url, path, Some(MASTER_KEY), body.to_string()).await
}

async fn chat_as(gw: &Gateway, key: &str, user: &str) -> Reply {
    post(&gw.url, "/v1/chat/completions", Some(key), chat_body("a", json!({"user": user}))).await
}

/// End users (LiteLLM's customers): the request's `user` has limits of its own, beside the key's; a blocked one
/// is refused; the `/customer/*` routes in LiteLLM's shapes.
async fn end_users(database_url: &str) {
    let gw = Gateway::start_on(&config(""), database_url);
    let created = admin(&gw, "/customer/new", json!({"user_id": "bob", "alias": "Bob", "rpm_limit": 2})).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.json["litellm_budget_table"]["rpm_limit"], 2);
    let budget = admin(&gw, "/customer/new", json!({"user_id": "eve", "soft_budget": 5})).await;
    assert_eq!((budget.status, code(&budget)), (400, "not_supported_yet"), "{}", budget.text);
    assert!(budget.text.contains("soft_budget"), "{}", budget.text);

    let key = generate(&gw, json!({})).await;
    let bob = join_all((0..4).map(|_| chat_as(&gw, &key, "bob"))).await;
    assert_eq!((count(&bob, 200), count(&bob, 429)), (2, 2));
    let refused = bob.iter().find(|r| r.status == 429).map(|r| r.text.clone()).unwrap_or_default();
    assert!(refused.contains("end user bob is at its rpm_limit of 2"), "{refused}");
    assert_eq!(chat_as(&gw, &key, "carol").await.status, 200, "an unknown end user has no limits");
    assert_eq!(chat(&gw.url, &key, "a").await.status, 200, "no `user`, no end-user limit");

    assert_eq!(admin(&gw, "/customer/block", json!({"user_ids": ["bob"]})).await.status, 200);
    let blocked = chat_as(&gw, &key, "bob").await;
    assert_eq!((blocked.status, code(&blocked)), (403, "end_user_blocked"), "{}", blocked.text);
    assert_eq!(admin(&gw, "/customer/unblock", json!({"user_ids": ["bob"]})).await.status, 200);
    let update = admin(&gw, "/customer/update", json!({"user_id": "bob", "rpm_limit": 100})).await;
    assert_eq!(update.json["litellm_budget_table"]["rpm_limit"], 100, "{}", update.text);
    assert_eq!(chat_as(&gw, &key, "bob").await.status, 200, "unblocked, with a higher limit");

    let info = get(&gw.url, "/customer/info?end_user_id=bob", Some(MASTER_KEY)).await;
    assert_eq!((info.json["user_id"].as_str(), info.json["alias"].as_str()), (Some("bob"), Some("Bob")));
    let list = get(&gw.url, "/customer/list", Some(MASTER_KEY)).await;
    assert_eq!(list.json.as_array().map(Vec::len), Some(1), "{}", list.text);
    let deleted = admin(&gw, "/customer/delete", json!({"user_ids": ["bob"]})).await;
    assert_eq!(deleted.json["deleted_customers"], json!(["bob"]), "{}", deleted.text);
    assert_eq!(get(&gw.url, "/customer/info?end_user_id=bob", Some(MASTER_KEY)).await.status, 404);
    assert_eq!(post(&gw.url, "/customer/new", Some(&key), "{}").await.status, 401, "a key is not an admin");
}

#[actix_rt::test]
async fn end_users_have_limits_and_can_be_blocked_on_sqlite() {
    let db = TempSqlite::new();
    end_users(&db.url()).await;
}

#[actix_rt::test]
async fn end_users_have_limits_and_can_be_blocked_on_postgres() {
    let schema = PgSchema::new();
    end_users(&schema.url()).await;
}

/// Redis down: the limits fall back to the gateway's own counters (fail open to local limits, not to no limits),
/// and the outage is logged once, not per request.
#[actix_rt::test]
async fn without_redis_limits_fall_back_to_this_gateways_own_counters() {
    let redis = format!(
        "router_settings:\n  redis_url: redis://127.0.0.1:{}\ntollgate:\n  redis_key_prefix: \"t-{}:\"\n  redis_timeout_ms: 100\n",
        tollgate_tests::dead_port(),
        uuid::Uuid::new_v4().simple()
    );
    let gw = Gateway::start(&config(&redis));
    let key = generate(&gw, json!({"rpm_limit": 3})).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(chat(&gw.url, &key, "a").await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    assert_eq!(tollgate_tests::logs::count_lines("Redis did not answer a rate-limit check"), 1, "logged once");
}

/// Every answer to a limited key's admitted request carries its rate-limit headers, upstream errors included.
#[actix_rt::test]
async fn error_answers_carry_the_rate_limit_headers_too() {
    let yaml = format!(
        "model_list:\n  - {{model_name: broken, litellm_params: {{model: mock/error-500}}}}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
    );
    let gw = Gateway::start(&yaml);
    let key = generate(&gw, json!({"rpm_limit": 5})).await;
    let failed = chat(&gw.url, &key, "broken").await;
    assert_eq!(failed.status, 500, "{}", failed.text);
    assert_eq!(failed.header("x-ratelimit-limit-requests"), Some("5"), "{}", failed.text);
    assert_eq!(failed.header("x-ratelimit-remaining-requests"), Some("4"));
}

/// The statuses of one request after another, cycling through `keys`.
async fn alternate(url: &str, keys: &[&str], n: usize) -> Vec<Reply> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(chat(url, keys[i % keys.len()], "a").await);
    }
    out
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status).collect()
}

fn message(r: &Reply) -> &str {
    r.json["error"]["message"].as_str().unwrap_or_default()
}

/// A team's `rpm_limit` binds every key of the team together: two keys taking turns get exactly the team's 3
/// requests in the minute, the 4th is a 429 naming the team; a key of another team is not affected. One
/// admission covers the key's limits and the team's, all or nothing: a request its key refuses takes no team slot.
async fn team_rpm(database_url: &str) {
    let gw = Gateway::start_on(&config(""), database_url);
    let team = admin(&gw, "/team/new", json!({"team_id": "ml", "team_alias": "ml-team", "rpm_limit": 3})).await;
    assert_eq!((team.status, team.json["rpm_limit"].as_i64()), (200, Some(3)), "{}", team.text);
    assert_eq!(admin(&gw, "/team/new", json!({"team_id": "other", "rpm_limit": 3})).await.status, 200);
    let (one, two) = (generate(&gw, json!({"team_id": "ml"})).await, generate(&gw, json!({"team_id": "ml"})).await);
    let outsider = generate(&gw, json!({"team_id": "other"})).await;

    let replies = alternate(&gw.url, &[&one, &two], 6).await;
    assert_eq!(statuses(&replies), [200, 200, 200, 429, 429, 429]);
    for r in &replies {
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"), "{}", r.text);
        assert!(
            r.header("x-ratelimit-remaining-requests").is_some() && r.header("x-ratelimit-reset-requests").is_some()
        );
    }
    let refused = &replies[3];
    assert_eq!((refused.error_type(), code(refused)), ("rate_limit_error", "rpm_limit_exceeded"), "{}", refused.text);
    assert!(message(refused).contains("team ml-team is at its rpm_limit of 3"), "{}", refused.text);
    assert!(refused.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| (1..=120).contains(&s))));
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(chat(&gw.url, &outsider, "a").await.status, 200, "another team's key has counters of its own");

    // All or nothing: a key's own limit refusing takes no slot of its team's.
    let team = admin(&gw, "/team/new", json!({"team_id": "both", "rpm_limit": 3})).await;
    assert_eq!(team.status, 200, "{}", team.text);
    let tight = generate(&gw, json!({"team_id": "both", "rpm_limit": 1, "key_alias": "tight"})).await;
    let loose = generate(&gw, json!({"team_id": "both"})).await;
    let first = alternate(&gw.url, &[&tight, &tight, &tight], 3).await;
    assert_eq!(statuses(&first), [200, 429, 429]);
    assert!(message(&first[1]).contains("key tight is at its rpm_limit of 1"), "{}", first[1].text);
    let rest = alternate(&gw.url, &[&loose], 3).await;
    assert_eq!(statuses(&rest), [200, 200, 429], "the team's 3: one by `tight`, two by `loose`");
    assert!(message(&rest[2]).contains("team both is at its rpm_limit of 3"), "{}", rest[2].text);

    let info = get(&gw.url, "/team/info?team_id=ml", Some(MASTER_KEY)).await;
    assert_eq!(info.json["team_info"]["rpm_limit"], 3, "{}", info.text);
    let list = get(&gw.url, "/team/list", Some(MASTER_KEY)).await;
    let ml = list.json.as_array().into_iter().flatten().find(|t| t["team_id"] == "ml").cloned().unwrap_or_default();
    assert_eq!((ml["rpm_limit"].as_i64(), ml["max_parallel_requests"].as_i64()), (Some(3), None), "{}", list.text);
}

#[actix_rt::test]
async fn team_rpm_limit_binds_every_key_of_the_team_on_sqlite() {
    let db = TempSqlite::new();
    team_rpm(&db.url()).await;
}

#[actix_rt::test]
async fn team_rpm_limit_binds_every_key_of_the_team_on_postgres() {
    let schema = PgSchema::new();
    team_rpm(&schema.url()).await;
}

/// A team's `max_parallel_requests` counts the requests in flight of all its keys: with 2, a third concurrent
/// slow request (by either key) is refused, and the slots come back when the requests end.
#[actix_rt::test]
async fn team_max_parallel_requests_counts_every_key_in_flight() {
    let gw = Gateway::start(&config(""));
    assert_eq!(admin(&gw, "/team/new", json!({"team_id": "p", "max_parallel_requests": 2})).await.status, 200);
    let (one, two) = (generate(&gw, json!({"team_id": "p"})).await, generate(&gw, json!({"team_id": "p"})).await);
    let keys = [&one, &two, &one, &two];
    let replies = join_all(keys.iter().map(|k| chat(&gw.url, k, "slow"))).await;
    assert_eq!((count(&replies, 200), count(&replies, 429)), (2, 2));
    let refused = replies.iter().find(|r| r.status == 429);
    assert_eq!(refused.map(code), Some("max_parallel_exceeded"));
    assert!(refused.is_some_and(|r| message(r).contains("team p is at its max_parallel_requests of 2")));
    let after = join_all([&one, &two].map(|k| chat(&gw.url, k, "a"))).await;
    assert_eq!(count(&after, 200), 2, "every slot was given back");
}

/// A user's `rpm_limit` binds every key the user owns together; `/user/update` applies at once; a key of another
/// user is not affected.
#[actix_rt::test]
async fn user_rpm_limit_binds_every_key_the_user_owns() {
    let gw = Gateway::start(&config(""));
    let made = admin(&gw, "/user/new", json!({"user_id": "ann", "rpm_limit": 2})).await;
    assert_eq!((made.status, made.json["rpm_limit"].as_i64()), (200, Some(2)), "{}", made.text);
    assert_eq!(admin(&gw, "/user/new", json!({"user_id": "ben", "rpm_limit": 2})).await.status, 200);
    let (one, two) = (generate(&gw, json!({"user_id": "ann"})).await, generate(&gw, json!({"user_id": "ann"})).await);
    let bens = generate(&gw, json!({"user_id": "ben"})).await;
    let replies = alternate(&gw.url, &[&one, &two], 4).await;
    assert_eq!(statuses(&replies), [200, 200, 429, 429]);
    assert_eq!(code(&replies[2]), "rpm_limit_exceeded");
    assert!(message(&replies[2]).contains("user ann is at its rpm_limit of 2"), "{}", replies[2].text);
    assert_eq!(replies[2].header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(chat(&gw.url, &bens, "a").await.status, 200, "another user's key has counters of its own");

    let raised = admin(&gw, "/user/update", json!({"user_id": "ann", "rpm_limit": 3})).await;
    assert_eq!((raised.status, raised.json["rpm_limit"].as_i64()), (200, Some(3)), "{}", raised.text);
    assert_eq!(statuses(&alternate(&gw.url, &[&two, &one], 2).await), [200, 429], "the new limit, at once");
    let info = get(&gw.url, "/user/info?user_id=ann", Some(MASTER_KEY)).await;
    assert_eq!(info.json["user_info"]["rpm_limit"], 3, "{}", info.text);
    let bad = admin(&gw, "/user/update", json!({"user_id": "ann", "max_parallel_requests": "many"})).await;
    assert_eq!((bad.status, bad.json["error"]["param"].as_str()), (400, Some("max_parallel_requests")), "{}", bad.text);
}

/// `/team/update` lowering a team's `rpm_limit` applies to the very next request (the team's keys are dropped
/// from the key cache; no TTL wait), and invalid values get a 400 naming the field.
#[actix_rt::test]
async fn team_update_applies_to_the_next_request() {
    let gw = Gateway::start(&config("  user_api_key_cache_ttl: 600\n"));
    assert_eq!(admin(&gw, "/team/new", json!({"team_id": "u", "rpm_limit": 10})).await.status, 200);
    let key = generate(&gw, json!({"team_id": "u"})).await;
    assert_eq!(statuses(&alternate(&gw.url, &[&key], 2).await), [200, 200]);
    let lowered = admin(&gw, "/team/update", json!({"team_id": "u", "rpm_limit": 2})).await;
    assert_eq!((lowered.status, lowered.json["rpm_limit"].as_i64()), (200, Some(2)), "{}", lowered.text);
    let next = chat(&gw.url, &key, "a").await;
    assert_eq!((next.status, code(&next)), (429, "rpm_limit_exceeded"), "{}", next.text);
    assert!(message(&next).contains("team u is at its rpm_limit of 2"), "{}", next.text);
    let bad = admin(&gw, "/team/update", json!({"team_id": "u", "tpm_limit": -1})).await;
    assert_eq!((bad.status, bad.json["error"]["param"].as_str()), (400, Some("tpm_limit")), "{}", bad.text);
    assert_eq!(bad.error_type(), "invalid_request_error");
}

/// Two gateways that share nothing but Redis, one key of the team on each: the team's `rpm_limit: 3` holds in
/// total (10 concurrent requests, exactly 3 pass).
#[actix_rt::test]
async fn team_rpm_limit_holds_across_gateways_sharing_redis() {
    let redis = RedisPrefix::new();
    let yaml = config(&redis.yaml());
    let (one, two) = (Gateway::start(&yaml), Gateway::start(&yaml));
    let mut keys = Vec::new();
    for gw in [&one, &two] {
        assert_eq!(admin(gw, "/team/new", json!({"team_id": "shared", "rpm_limit": 3})).await.status, 200);
        keys.push(generate(gw, json!({"team_id": "shared"})).await);
    }
    let calls = [(&one.url, &keys[0]), (&two.url, &keys[1])]
        .into_iter()
        .flat_map(|(url, key)| (0..5).map(move |_| chat(url, key, "a")));
    let replies = join_all(calls).await;
    assert_eq!((count(&replies, 200), count(&replies, 429)), (3, 7));
    assert!(replies.iter().filter(|r| r.status == 429).all(|r| message(r).contains("team shared")));
    assert!(redis.keys().iter().any(|k| k.contains("t:shared:r:")), "{:?}", redis.keys());
}
