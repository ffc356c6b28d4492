//! Budgets over HTTP (issue 15, must-show 3): `max_budget` on keys, teams, members, end users and per model, held
//! under concurrency on SQLite and Postgres and across gateways sharing Redis; the 429 `budget_exceeded` answer;
//! periods that reset on time; spend that survives a SIGKILL; soft budgets that only warn.
//!
//! Prices are set per deployment (input free, output $0.001 a token) and every request asks for exactly the
//! tokens the mock answers with, so a request's reservation equals its cost and the number of requests a budget
//! admits is exact.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};
use tollgate_tests::{
    get, post,
    redis::RedisPrefix,
    store::{query_row, PgSchema, TempSqlite},
    Gateway, GatewayProcess, Reply, MASTER_KEY,
};

/// $ per output token.
const OUT_PRICE: f64 = 0.001;

fn config(extra: &str) -> String {
    format!(
        "model_list:
  - {{model_name: a, litellm_params: {{model: mock/a, input_cost_per_token: 0, output_cost_per_token: {OUT_PRICE}}}}}
  - {{model_name: b, litellm_params: {{model: mock/b, input_cost_per_token: 0, output_cost_per_token: {OUT_PRICE}}}}}
general_settings:
  master_key: {MASTER_KEY}
{extra}"
    )
}

async fn admin(url: &str, path: &str, body: Value) -> Reply {
    let r = post(url, path, Some(MASTER_KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r
}

async fn generate(url: &str, body: Value) -> String {
    admin(url, "/key/generate", body).await.json["key"].as_str().unwrap_or_default().to_owned()
}

/// The mock's answer length in tokens: every budgeted request asks for exactly this many (`max_tokens`).
async fn answer_tokens(url: &str) -> u64 {
    let key = generate(url, json!({})).await;
    let r = chat(url, &key, "a", json!({})).await;
    r.json["usage"]["completion_tokens"].as_u64().unwrap_or(0)
}

async fn chat(url: &str, key: &str, model: &str, extra: Value) -> Reply {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    post(url, "/v1/chat/completions", Some(key), body.to_string()).await
}

fn count(replies: &[Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

fn code(r: &Reply) -> &str {
    r.json["error"]["code"].as_str().unwrap_or("<no code>")
}

fn message(r: &Reply) -> &str {
    r.json["error"]["message"].as_str().unwrap_or_default()
}

/// USD amounts as the API shows them (nano-dollars back to floats) against the test's own floats.
fn close(shown: Option<f64>, want: f64) -> bool {
    shown.is_some_and(|v| (v - want).abs() < 1e-9)
}

/// One request's cost in USD, for `tokens` output tokens.
fn call_usd(tokens: u64) -> f64 {
    tokens as f64 * OUT_PRICE
}

/// The store's spend of an entity (all periods), in nano-dollars.
fn stored_spend(db_url: &str, kind: &str, id: &str) -> i64 {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(spend_nanos), 0) AS BIGINT) FROM spend WHERE entity_kind = '{kind}' AND entity_id = '{id}'"
    );
    query_row(db_url, &sql).ok().and_then(|v| v.first().copied()).unwrap_or(-1)
}

/// Waits up to 10 s for the store's spend of an entity to reach `want` nano-dollars; returns what it holds.
async fn wait_stored(db_url: &str, kind: &str, id: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = stored_spend(db_url, kind, id);
        if now >= want || Instant::now() > deadline {
            return now;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (a) Must-show 3: 100 concurrent requests on a key whose budget covers 20 requests (and half of one more):
/// exactly 20 are admitted, and the spend the store ends with is 20 requests' cost, within the budget.
async fn no_overshoot(database_url: &str) {
    let gw = Gateway::start_on(&config(""), database_url);
    let tokens = answer_tokens(&gw.url).await;
    assert!(tokens > 0, "the mock reports usage");
    let budget = call_usd(tokens) * 20.5;
    let created = admin(&gw.url, "/key/generate", json!({"max_budget": budget})).await;
    let key = created.json["key"].as_str().unwrap_or_default().to_owned();
    let hash = created.json["token"].as_str().unwrap_or_default().to_owned();
    let replies = join_all((0..100).map(|_| chat(&gw.url, &key, "a", json!({"max_tokens": tokens})))).await;
    assert_eq!((count(&replies, 200), count(&replies, 429)), (20, 80));
    assert!(replies.iter().filter(|r| r.status == 429).all(|r| code(r) == "budget_exceeded"));
    let want = (call_usd(tokens) * 20.0 * 1e9).round() as i64;
    let stored = wait_stored(database_url, "key", &hash, want).await;
    assert_eq!(stored, want, "the store holds exactly the 20 admitted requests' cost");
    assert!(stored as f64 <= budget * 1e9, "{stored} within {budget}");
    let info = get(&gw.url, &format!("/key/info?key={key}"), Some(MASTER_KEY)).await;
    let spend = info.json["info"]["spend"].as_f64().unwrap_or(-1.0);
    assert!((spend - call_usd(tokens) * 20.0).abs() < 1e-9, "{}", info.text);
    assert!(close(info.json["info"]["max_budget"].as_f64(), budget), "{}", info.text);
}

#[actix_rt::test]
async fn concurrent_requests_never_overshoot_a_key_budget_on_sqlite() {
    let db = TempSqlite::new();
    no_overshoot(&db.url()).await;
}

#[actix_rt::test]
async fn concurrent_requests_never_overshoot_a_key_budget_on_postgres() {
    let schema = PgSchema::new();
    no_overshoot(&schema.url()).await;
}

/// (b) The refusal: 429, `budget_exceeded`, naming the key, its spend and cap and when it resets;
/// `x-should-retry: false` and no `retry-after` beyond the reset.
#[actix_rt::test]
async fn an_exceeded_budget_is_a_429_that_names_it_and_says_when_it_resets() {
    let gw = Gateway::start(&config(""));
    let tokens = answer_tokens(&gw.url).await;
    let key = generate(&gw.url, json!({"max_budget": call_usd(tokens) * 1.5, "budget_duration": "1d"})).await;
    let ask = json!({"max_tokens": tokens});
    assert_eq!(chat(&gw.url, &key, "a", ask.clone()).await.status, 200);
    let over = chat(&gw.url, &key, "a", ask).await;
    assert_eq!(over.status, 429, "{}", over.text);
    assert_eq!(over.json["error"]["type"], "budget_exceeded");
    assert_eq!(over.json["error"]["code"], "budget_exceeded");
    assert_eq!(over.json["error"]["param"], Value::Null);
    let shown = format!("sk-...{}", &key[key.len() - 4..]);
    let spent = format!("spend ${:.2} of ${:.2}; resets ", call_usd(tokens), call_usd(tokens) * 1.5);
    let text = message(&over);
    assert!(text.starts_with(&format!("Budget exceeded for key {shown}: ")), "{text}");
    assert!(text.contains(&spent) && text.ends_with('Z'), "{text}");
    assert!(!text.contains(&key), "never the key itself: {text}");
    assert_eq!(over.header("x-should-retry"), Some("false"));
    let retry: u64 = over.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    assert!((1..=86_400).contains(&retry), "retry-after within the period: {retry}");
    // A lifetime budget never resets: no retry-after at all.
    let lifetime = generate(&gw.url, json!({"max_budget": 0})).await;
    let never = chat(&gw.url, &lifetime, "a", json!({})).await;
    assert_eq!((never.status, code(&never)), (429, "budget_exceeded"), "{}", never.text);
    assert_eq!((never.header("retry-after"), never.header("x-should-retry")), (None, Some("false")));
    assert!(message(&never).contains("does not reset"), "{}", never.text);
}

/// (c) A key in a team is bound by the team's budget even when its own is larger; a member's budget; an end
/// user's budget through the body's `user`; a per-model budget binds only its model.
#[actix_rt::test]
async fn team_member_end_user_and_model_budgets_bind_beside_the_keys() {
    let gw = Gateway::start(&config(""));
    let tokens = answer_tokens(&gw.url).await;
    let two_calls = call_usd(tokens) * 2.5;
    let ask = json!({"max_tokens": tokens});
    let three = |key: String, model: &'static str, extra: Value| {
        let url = gw.url.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..3 {
                out.push(chat(&url, &key, model, extra.clone()).await);
            }
            out
        }
    };

    admin(&gw.url, "/team/new", json!({"team_id": "t1", "max_budget": two_calls})).await;
    let key = generate(&gw.url, json!({"team_id": "t1", "max_budget": 100})).await;
    let replies = three(key, "a", ask.clone()).await;
    assert_eq!(replies.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 429]);
    assert!(message(&replies[2]).starts_with("Budget exceeded for team t1: "), "{}", replies[2].text);
    let team = get(&gw.url, "/team/info?team_id=t1", Some(MASTER_KEY)).await;
    let spend = team.json["team_info"]["spend"].as_f64().unwrap_or(-1.0);
    assert!((spend - call_usd(tokens) * 2.0).abs() < 1e-9, "{}", team.text);

    admin(&gw.url, "/user/new", json!({"user_id": "u1", "user_email": "u1@example.com"})).await;
    admin(&gw.url, "/team/new", json!({"team_id": "t2"})).await;
    let added = admin(
        &gw.url,
        "/team/member_add",
        json!({"team_id": "t2", "member": {"user_id": "u1"}, "max_budget_in_team": two_calls}),
    )
    .await;
    assert!(close(added.json["members_with_roles"][0]["max_budget_in_team"].as_f64(), two_calls), "{}", added.text);
    let key = generate(&gw.url, json!({"team_id": "t2", "user_id": "u1"})).await;
    let replies = three(key, "a", ask.clone()).await;
    assert_eq!(replies.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 429]);
    assert!(message(&replies[2]).starts_with("Budget exceeded for team member u1 in team t2: "), "{}", replies[2].text);

    admin(&gw.url, "/customer/new", json!({"user_id": "eve", "max_budget": two_calls})).await;
    let key = generate(&gw.url, json!({})).await;
    let mut as_eve = ask.clone();
    as_eve["user"] = json!("eve");
    let replies = three(key.clone(), "a", as_eve).await;
    assert_eq!(replies.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 429]);
    assert!(message(&replies[2]).starts_with("Budget exceeded for end user eve: "), "{}", replies[2].text);
    assert_eq!(chat(&gw.url, &key, "a", ask.clone()).await.status, 200, "the key itself has no budget");
    let eve = get(&gw.url, "/customer/info?end_user_id=eve", Some(MASTER_KEY)).await;
    assert!(close(eve.json["litellm_budget_table"]["max_budget"].as_f64(), two_calls), "{}", eve.text);

    let key =
        generate(&gw.url, json!({"model_max_budget": {"a": {"max_budget": two_calls, "budget_duration": "1d"}}})).await;
    let replies = three(key.clone(), "a", ask.clone()).await;
    assert_eq!(replies.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 429]);
    assert!(message(&replies[2]).contains("model budget of key") && message(&replies[2]).contains("model `a`"));
    assert_eq!(chat(&gw.url, &key, "b", ask).await.status, 200, "model b has no budget");
    let info = get(&gw.url, &format!("/key/info?key={key}"), Some(MASTER_KEY)).await;
    let shown = &info.json["info"]["model_max_budget"]["a"];
    assert!(close(shown["max_budget"].as_f64(), two_calls) && shown["budget_duration"] == "1d", "{}", info.text);
}

/// (d) A budget with `budget_duration: "2s"` starts again at 0 when its period ends: the first request after the
/// reset is admitted, and `/key/info` shows 0 spent and the next reset.
#[actix_rt::test]
async fn a_budget_period_resets_on_time() {
    let gw = Gateway::start(&config(""));
    let tokens = answer_tokens(&gw.url).await;
    let key = generate(&gw.url, json!({"max_budget": call_usd(tokens) * 1.5, "budget_duration": "2s"})).await;
    let ask = json!({"max_tokens": tokens});
    // Start right after a reset, so the two requests fall in one period.
    let info = get(&gw.url, &format!("/key/info?key={key}"), Some(MASTER_KEY)).await;
    let first_reset = info.json["info"]["budget_reset_at"].as_str().unwrap_or_default().to_owned();
    assert!(first_reset.ends_with('Z'), "{}", info.text);
    assert_eq!(chat(&gw.url, &key, "a", ask.clone()).await.status, 200);
    let refused = chat(&gw.url, &key, "a", ask.clone()).await;
    if refused.status == 200 {
        // The period turned between the two requests (the test was slow): the rule still held.
        return;
    }
    assert_eq!(code(&refused), "budget_exceeded");
    actix_rt::time::sleep(Duration::from_millis(2_100)).await;
    let info = get(&gw.url, &format!("/key/info?key={key}"), Some(MASTER_KEY)).await;
    assert_eq!(info.json["info"]["spend"].as_f64(), Some(0.0), "a new period: {}", info.text);
    assert_ne!(info.json["info"]["budget_reset_at"].as_str(), Some(first_reset.as_str()), "{}", info.text);
    let after = chat(&gw.url, &key, "a", ask).await;
    assert_eq!(after.status, 200, "{}", after.text);
}

/// (e) Settled spend survives a SIGKILL: a gateway killed right after its requests, restarted on the same store
/// and journal, shows their spend and admits only what is left of the budget.
#[test]
fn a_restart_loses_no_settled_spend() {
    let db = TempSqlite::new();
    let dir = std::env::temp_dir().join(format!("tollgate-budget-restart-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("config.yaml");
    std::fs::write(&file, config("")).expect("config");
    let file = file.to_string_lossy().into_owned();
    let env = [("DATABASE_URL", db.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = GatewayProcess::spawn_with(&["--config", &file], &env);
    let url = first.url.clone();
    let (key, hash, tokens) = actix_rt::System::new().block_on(async {
        let tokens = answer_tokens(&url).await;
        let created = admin(&url, "/key/generate", json!({"max_budget": call_usd(tokens) * 5.5})).await;
        let key = created.json["key"].as_str().unwrap_or_default().to_owned();
        for _ in 0..3 {
            assert_eq!(chat(&url, &key, "a", json!({"max_tokens": tokens})).await.status, 200);
        }
        (key, created.json["token"].as_str().unwrap_or_default().to_owned(), tokens)
    });
    // At once: the log writer may not have written the last records yet; they are in the journal.
    first.signal("KILL");
    let _ = first.wait_exit(Duration::from_secs(10), "the killed gateway exits");
    let second = GatewayProcess::spawn_with(&["--config", &file], &env);
    actix_rt::System::new().block_on(async {
        let want = (call_usd(tokens) * 3.0 * 1e9).round() as i64;
        assert_eq!(wait_stored(&db.url(), "key", &hash, want).await, want, "{}", second.log_text());
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(chat(&second.url, &key, "a", json!({"max_tokens": tokens})).await.status);
        }
        assert_eq!(statuses, [200, 200, 429], "two of five.5 left after the restart");
    });
    drop(second);
    let _ = std::fs::remove_dir_all(dir);
}

/// (f) Must-show 3 across replicas: three gateways sharing Redis (two processes and one in this process, each with
/// a store of its own), 100 concurrent requests split between them, a budget for 20.5 requests: no more than 20
/// are admitted (reservations never pass the cap: docs/budgets.md's lease bound), and leases held by the replicas
/// make them refuse early by at most one lease each.
#[actix_rt::test]
async fn gateways_sharing_redis_stay_within_the_budget() {
    let redis = RedisPrefix::new();
    let yaml = config(&redis.yaml());
    let dir = std::env::temp_dir().join(format!("tollgate-budget-redis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("config.yaml");
    std::fs::write(&file, &yaml).expect("config");
    let processes = [GatewayProcess::spawn(&file), GatewayProcess::spawn(&file)];
    let gw = Gateway::start(&yaml);
    let urls = [gw.url.clone(), processes[0].url.clone(), processes[1].url.clone()];
    let tokens = answer_tokens(&gw.url).await;
    let cap = call_usd(tokens) * 20.5;
    let key = format!("sk-shared-{}", uuid::Uuid::new_v4().simple());
    for url in &urls {
        admin(url, "/key/generate", json!({"key": key, "max_budget": cap})).await;
    }
    let ask = json!({"max_tokens": tokens});
    let calls = (0..100).map(|i| chat(&urls[i % 3], &key, "a", ask.clone()));
    let replies = join_all(calls).await;
    let admitted = count(&replies, 200);
    assert_eq!(admitted + count(&replies, 429), 100, "{}", processes[0].log_text());
    let spent = admitted as f64 * call_usd(tokens);
    assert!(spent <= cap + 1e-9, "{admitted} requests spent ${spent} of ${cap}");
    // The documented bound the other way: unused leases (10% of the cap each) held by the three replicas make
    // them refuse early by at most three leases, 3 × 2.05 requests.
    assert!(admitted >= 14, "only {admitted} of 20 admitted: more stranded than three leases");
    assert!(redis.keys().iter().any(|k| k.contains("budget:key:")), "{:?}", redis.keys());
    let _ = std::fs::remove_dir_all(dir);
}

/// (g) A soft budget never refuses: the request that crosses it succeeds, a WARN line names it, and the counter
/// rises once per period, not per request.
#[actix_rt::test]
async fn a_soft_budget_warns_once_and_never_refuses() {
    let gw = Gateway::start(&config(""));
    let tokens = answer_tokens(&gw.url).await;
    let key = generate(&gw.url, json!({"soft_budget": call_usd(tokens) * 0.5})).await;
    let metric = "tollgate_soft_budget_crossed_total";
    assert_eq!(tollgate_tests::metric(&gw.url, metric, &["entity_kind=\"key\""]).await, Some(0.0));
    for _ in 0..3 {
        assert_eq!(chat(&gw.url, &key, "a", json!({})).await.status, 200);
    }
    let crossed = tollgate_tests::wait_metric(&gw.url, metric, &["entity_kind=\"key\""], 1.0).await;
    assert_eq!(crossed, Some(1.0));
    assert!(tollgate_tests::logs::count_lines("soft budget crossed") >= 1);
}

/// `disable_spend_logs` keeps request rows out of the store, not spend: a key's spend is still counted and
/// persisted (through the journal), so its budget holds across a restart.
#[actix_rt::test]
async fn disable_spend_logs_still_counts_spend() {
    let db = TempSqlite::new();
    let gw = Gateway::start_on(&config("  disable_spend_logs: true\n"), &db.url());
    let key = generate(&gw.url, json!({})).await;
    let tokens = answer_tokens(&gw.url).await;
    for _ in 0..3 {
        let r = chat(&gw.url, &key, "a", json!({"max_tokens": tokens})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let want = (3 * tokens) as f64 * OUT_PRICE;
    let deadline = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let sql = "SELECT COALESCE(SUM(spend_nanos), 0) FROM spend WHERE entity_kind = 'key'";
        let nanos = query_row(&db.url(), sql).unwrap_or_default().first().copied().unwrap_or(0);
        // answer_tokens' own key spent too: at least the three calls' cost is stored.
        if nanos as f64 / 1e9 >= want - 1e-9 || Instant::now() > deadline {
            break nanos;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stored as f64 / 1e9 >= want - 1e-9, "spend stored: {stored} nanos, want ≥ {want} USD");
    assert_eq!(query_row(&db.url(), "SELECT COUNT(*) FROM request_log").unwrap_or_default(), vec![0]);
}
