//! Virtual keys over HTTP, on SQLite and on Postgres: the management routes (LiteLLM's paths and shapes) and the
//! request path's checks (unknown, blocked, expired, model not allowed), a second gateway sharing the store, and
//! `tollgate migrate`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_tests::{
    chat_body, get, post,
    store::{PgSchema, TempSqlite},
    tollgate_bin, Gateway, Reply, MASTER_KEY,
};

/// Two mock model groups, and a key cache that lets a replica honour a changed key for at most a second.
const CONFIG: &str = "model_list:
  - {model_name: a, litellm_params: {model: mock/a}}
  - {model_name: b, litellm_params: {model: mock/b}}
general_settings:
  master_key: sk-test-master
  user_api_key_cache_ttl: 1
";

async fn admin_post(gw: &Gateway, path: &str, body: Value) -> Reply {
    post(&gw.url, path, Some(MASTER_KEY), body.to_string()).await
}

async fn chat(gw: &Gateway, key: &str, model: &str) -> Reply {
    post(&gw.url, "/v1/chat/completions", Some(key), chat_body(model, json!({}))).await
}

fn code(r: &Reply) -> &str {
    r.json["error"]["code"].as_str().unwrap_or("<no code>")
}

/// LiteLLM's `token`: the SHA-256 of the key, in hex.
fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The whole lifecycle on one store: generate, use, update, block, unblock, regenerate, list, delete; and a second
/// gateway on the same store sees each change within the cache TTL.
async fn lifecycle(database_url: &str) {
    let gw = Gateway::start_on(CONFIG, database_url);
    let replica = Gateway::start_on(CONFIG, database_url);

    let created =
        admin_post(&gw, "/key/generate", json!({"models": ["a"], "key_alias": "ci", "metadata": {"team": "x"}})).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let key = created.json["key"].as_str().unwrap_or_default().to_owned();
    assert!(key.starts_with("sk-") && key.len() >= 35, "{key}");
    assert_eq!(created.json["token"], sha256_hex(&key), "the key is stored as its SHA-256");
    assert_eq!(created.json["key_name"], format!("sk-...{}", &key[key.len() - 4..]));
    assert_eq!(created.json["models"], json!(["a"]));

    // Use: its model, not the other; /v1/models lists what it may call; the replica knows it too.
    assert_eq!(chat(&gw, &key, "a").await.status, 200);
    assert_eq!(chat(&replica, &key, "a").await.status, 200);
    let refused = chat(&gw, &key, "b").await;
    assert_eq!((refused.status, code(&refused)), (403, "model_not_allowed"), "{}", refused.text);
    let models = get(&gw.url, "/v1/models", Some(&key)).await;
    assert_eq!(models.json["data"].as_array().map(|d| d.len()), Some(1), "{}", models.text);
    assert_eq!(get(&gw.url, "/v1/models/b", Some(&key)).await.status, 404);

    // Info and list show the hash and the display name, never the value.
    let info = get(&gw.url, &format!("/key/info?key={key}"), Some(MASTER_KEY)).await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.json["info"]["key_alias"], "ci");
    assert!(!info.text.contains(&key), "{}", info.text);
    let list = get(&gw.url, "/key/list?key_alias=ci", Some(MASTER_KEY)).await;
    assert_eq!(list.json["keys"], json!([sha256_hex(&key)]), "{}", list.text);
    assert_eq!(list.json["total_count"], 1);

    // A key is not an admin.
    assert_eq!(admin_post(&gw, "/key/generate", json!({})).await.status, 200);
    let as_key = post(&gw.url, "/key/generate", Some(&key), "{}").await;
    assert_eq!(as_key.status, 401, "{}", as_key.text);

    // Update: now both models.
    let updated = admin_post(&gw, "/key/update", json!({"key": key, "models": ["a", "b"]})).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(chat(&gw, &key, "b").await.status, 200, "the change is in force at once on this gateway");

    // Block and unblock: at once here, within the TTL on the replica.
    assert_eq!(admin_post(&gw, "/key/block", json!({"key": key})).await.status, 200);
    let blocked = chat(&gw, &key, "a").await;
    assert_eq!((blocked.status, code(&blocked)), (403, "key_blocked"), "{}", blocked.text);
    assert_eq!(eventually(&replica, &key, 403).await, 403, "the replica drops the blocked key within its TTL");
    assert_eq!(admin_post(&gw, "/key/unblock", json!({"key": sha256_hex(&key)})).await.status, 200);
    assert_eq!(chat(&gw, &key, "a").await.status, 200, "unblocked, addressed by its hash");

    // Regenerate: the old value stops working, the new one has the same settings.
    let again = admin_post(&gw, &format!("/key/{key}/regenerate"), json!({})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let new_key = again.json["key"].as_str().unwrap_or_default().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(again.json["models"], json!(["a", "b"]));
    assert_eq!(chat(&gw, &key, "a").await.status, 401);
    assert_eq!(chat(&gw, &new_key, "b").await.status, 200);

    // Delete: rejected at once here, within the TTL on the replica.
    assert_eq!(chat(&replica, &new_key, "a").await.status, 200);
    let deleted = admin_post(&gw, "/key/delete", json!({"keys": [new_key]})).await;
    assert_eq!(deleted.json["deleted_keys"], json!([sha256_hex(&new_key)]), "{}", deleted.text);
    let gone = chat(&gw, &new_key, "a").await;
    assert_eq!((gone.status, code(&gone)), (401, "invalid_api_key"), "{}", gone.text);
    assert_eq!(eventually(&replica, &new_key, 401).await, 401, "the replica drops the deleted key within its TTL");
    assert_eq!(admin_post(&gw, "/key/delete", json!({"keys": [new_key]})).await.status, 404);
}

/// Calls `gw` with `key` until it answers `status` (for at most 3 s: the TTL is 1 s); returns the last status.
async fn eventually(gw: &Gateway, key: &str, status: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = chat(gw, key, "a").await.status;
        if got == status || Instant::now() > deadline {
            return got;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn key_lifecycle_on_sqlite() {
    let db = TempSqlite::new();
    lifecycle(&db.url()).await;
}

#[actix_rt::test]
async fn key_lifecycle_on_postgres() {
    let schema = PgSchema::new();
    lifecycle(&schema.url()).await;
}

#[actix_rt::test]
async fn refusals_are_distinct_and_clear() {
    let gw = Gateway::start(CONFIG);
    let unknown = chat(&gw, "sk-not-a-key-at-all", "a").await;
    assert_eq!((unknown.status, code(&unknown)), (401, "invalid_api_key"), "{}", unknown.text);

    // Three seconds to live: with one, a loaded CI machine let the key expire before its first call.
    let short = admin_post(&gw, "/key/generate", json!({"duration": "3s"})).await;
    let key = short.json["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(chat(&gw, &key, "a").await.status, 200);
    actix_rt::time::sleep(Duration::from_millis(4100)).await;
    let expired = chat(&gw, &key, "a").await;
    assert_eq!((expired.status, code(&expired)), (401, "key_expired"), "{}", expired.text);
    assert!(expired.json["error"]["message"].as_str().is_some_and(|m| m.contains("expired")), "{}", expired.text);

    // Settings tollgate does not enforce yet are refused, not stored as a promise it cannot keep (rate limits and
    // budgets are enforced: tests/tests/limits.rs, tests/tests/budgets.rs).
    let tags = admin_post(&gw, "/key/generate", json!({"tags": ["a"], "rpm_limit": 5})).await;
    assert_eq!((tags.status, code(&tags)), (400, "not_supported_yet"), "{}", tags.text);
    assert!(tags.text.contains("not supported yet: tags ("), "{}", tags.text);
    let unknown_field = admin_post(&gw, "/key/generate", json!({"modelz": ["a"]})).await;
    assert_eq!(unknown_field.status, 400, "{}", unknown_field.text);
    let bad_duration = admin_post(&gw, "/key/generate", json!({"duration": "forever"})).await;
    assert_eq!((bad_duration.status, bad_duration.json["error"]["param"].as_str()), (400, Some("duration")));
    let chosen = admin_post(&gw, "/key/generate", json!({"key": "sk-my-chosen-key-123"})).await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    let twice = admin_post(&gw, "/key/generate", json!({"key": "sk-my-chosen-key-123"})).await;
    assert_eq!(twice.status, 400, "{}", twice.text);
    assert!(!twice.text.contains("sk-my-chosen-key-123"), "a key value is never echoed in an error");
    let missing = get(&gw.url, "/key/info?key=sk-my-mistyped-key-999", Some(MASTER_KEY)).await;
    assert_eq!(missing.status, 404);
    assert!(!missing.text.contains("sk-my-mistyped-key-999"), "{}", missing.text);
}

#[actix_rt::test]
async fn an_open_gateway_has_no_key_management() {
    let gw = Gateway::start("model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\n");
    let r = post(&gw.url, "/key/generate", None, "{}").await;
    assert_eq!((r.status, code(&r)), (403, "forbidden"), "{}", r.text);
    assert!(r.text.contains("master_key"), "{}", r.text);
}

#[test]
fn migrate_creates_the_schema_once() {
    let db = TempSqlite::new();
    let run = || {
        std::process::Command::new(tollgate_bin())
            .arg("migrate")
            .env("DATABASE_URL", db.url())
            .output()
            .expect("run tollgate migrate")
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("sqlite store") && !stdout.contains(" 0 migration(s) applied"), "{stdout}");
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 migration(s) applied"));
}
