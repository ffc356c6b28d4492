//! Must-show 1, second half: a key changed or deleted through one gateway's management API is seen by a second
//! gateway PROCESS sharing Postgres and Redis within a second, through the Redis invalidation channel (the key
//! cache TTL is a minute here, so only the channel can explain it).

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_tests::{
    chat_body, post, redis::RedisPrefix, store::PgSchema, Gateway, GatewayProcess, Reply, MASTER_KEY,
};

fn config(redis: &RedisPrefix) -> String {
    format!(
        "model_list:
  - {{model_name: a, litellm_params: {{model: mock/a}}}}
general_settings:
  master_key: {MASTER_KEY}
  user_api_key_cache_ttl: 60
{}",
        redis.yaml()
    )
}

async fn chat(url: &str, key: &str) -> Reply {
    post(url, "/v1/chat/completions", Some(key), chat_body("a", json!({}))).await
}

/// Polls `url` with `key` until it answers `status`; returns how long that took (or panics after 5 s).
async fn seen_within(url: &str, key: &str, status: u16) -> Duration {
    let start = Instant::now();
    loop {
        let got = chat(url, key).await.status;
        if got == status {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still {got}, not {status}, after 5 s");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An in-process gateway and a gateway process that share nothing but Postgres and Redis.
struct Pair {
    gw: Gateway,
    replica: GatewayProcess,
    dir: std::path::PathBuf,
    _schema: PgSchema,
    _redis: RedisPrefix,
}

impl Pair {
    fn start() -> Pair {
        let (schema, redis) = (PgSchema::new(), RedisPrefix::new());
        let yaml = config(&redis);
        let gw = Gateway::start_on(&yaml, &schema.url());
        let dir = std::env::temp_dir().join(format!("tollgate-revocation-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("config.yaml");
        std::fs::write(&file, &yaml).expect("write config");
        let replica =
            GatewayProcess::spawn_with(&["--config", &file.to_string_lossy()], &[("DATABASE_URL", &schema.url())]);
        Pair { gw, replica, dir, _schema: schema, _redis: redis }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[actix_rt::test]
async fn a_second_process_drops_changed_and_deleted_keys_within_a_second() {
    let pair = Pair::start();
    let (gw, replica) = (&pair.gw, &pair.replica);

    let created = post(&gw.url, "/key/generate", Some(MASTER_KEY), "{}").await;
    let key = created.json["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(chat(&replica.url, &key).await.status, 200, "the replica knows the key (and caches it for 60 s)");

    let admin = |path: &'static str, body: serde_json::Value| {
        let url = gw.url.clone();
        async move { post(&url, path, Some(MASTER_KEY), body.to_string()).await }
    };
    assert_eq!(admin("/key/block", json!({"key": key})).await.status, 200);
    let blocked = seen_within(&replica.url, &key, 403).await;
    assert_eq!(admin("/key/unblock", json!({"key": key})).await.status, 200);
    let unblocked = seen_within(&replica.url, &key, 200).await;
    assert_eq!(admin("/key/delete", json!({"keys": [key]})).await.status, 200);
    let deleted = seen_within(&replica.url, &key, 401).await;
    for (what, took) in [("block", blocked), ("unblock", unblocked), ("delete", deleted)] {
        assert!(took < Duration::from_secs(1), "{what} reached the replica after {took:?}: {}", replica.log_text());
    }
}

/// Team, user and end-user changes reach the other replica as key changes do: blocking a team stops its keys there
/// within a second, unblocking restores them, a user's new rpm limit applies to the user's keys there at once, and
/// a blocked end user is refused there within a second.
#[actix_rt::test]
async fn a_second_process_drops_keys_of_a_changed_team_or_user_within_a_second() {
    let pair = Pair::start();
    let (gw, replica) = (&pair.gw, &pair.replica);
    let admin = |path: &'static str, body: serde_json::Value| {
        let url = gw.url.clone();
        async move {
            let r = post(&url, path, Some(MASTER_KEY), body.to_string()).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            r
        }
    };
    admin("/team/new", json!({"team_id": "t-rev"})).await;
    admin("/user/new", json!({"user_id": "u-rev"})).await;
    let team_key =
        admin("/key/generate", json!({"team_id": "t-rev"})).await.json["key"].as_str().unwrap_or_default().to_owned();
    let user_key =
        admin("/key/generate", json!({"user_id": "u-rev"})).await.json["key"].as_str().unwrap_or_default().to_owned();
    for key in [&team_key, &user_key] {
        assert_eq!(chat(&replica.url, key).await.status, 200, "the replica knows the key (and caches it for 60 s)");
    }

    admin("/team/block", json!({"team_id": "t-rev"})).await;
    let blocked = seen_within(&replica.url, &team_key, 403).await;
    admin("/team/unblock", json!({"team_id": "t-rev"})).await;
    let unblocked = seen_within(&replica.url, &team_key, 200).await;
    // rpm 1 for the user: once the replica has dropped the cached key it loads the new limit, and its polling
    // requests exceed it (429). With the old cached key it would answer 200 for the cache TTL (60 s).
    admin("/user/update", json!({"user_id": "u-rev", "rpm_limit": 1})).await;
    let limited = seen_within(&replica.url, &user_key, 429).await;
    // An end user (the request's `user`) known to the replica, then blocked through the first gateway.
    admin("/customer/new", json!({"user_id": "cust-rev"})).await;
    let as_customer = |url: String, key: String| async move {
        post(&url, "/v1/chat/completions", Some(&key), chat_body("a", json!({"user": "cust-rev"}))).await.status
    };
    assert_eq!(as_customer(replica.url.clone(), team_key.clone()).await, 200);
    admin("/customer/block", json!({"user_ids": ["cust-rev"]})).await;
    let start = Instant::now();
    while as_customer(replica.url.clone(), team_key.clone()).await != 403 {
        assert!(start.elapsed() < Duration::from_secs(5), "the replica still serves the blocked end user after 5 s");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let customer_blocked = start.elapsed();
    for (what, took) in [
        ("team block", blocked),
        ("team unblock", unblocked),
        ("user limit", limited),
        ("end user block", customer_blocked),
    ] {
        assert!(took < Duration::from_secs(1), "{what} reached the replica after {took:?}: {}", replica.log_text());
    }
}
