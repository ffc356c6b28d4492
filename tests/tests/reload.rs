//! Reload under load (must-show 8 of issue 14): `POST /config/reload` swaps the routing table while requests keep
//! arriving on a fixed schedule; none fails, requests routed before the swap finish on the old table, and the new
//! weights decide every request sent after the reload answered.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_tests::{chat_body, model_at, post, FakeUpstream, Gateway, MASTER_KEY};

/// 200 requests per second for 10 s, fired on schedule whatever the earlier ones are doing (open loop).
const RATE_PER_SEC: u64 = 200;
const SECONDS: u64 = 10;

fn config(a: &FakeUpstream, b: &FakeUpstream, weights: (u32, u32)) -> String {
    // Each upstream takes 100 ms, so about 20 calls are in flight at any moment, the reload's included.
    let entry = |fake: &FakeUpstream, id: &str, weight: u32| {
        format!("{}      weight: {weight}\n    model_info: {{id: {id}}}\n", model_at("g", "delay-100", &fake.url, ""))
    };
    format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        entry(a, "a", weights.0),
        entry(b, "b", weights.1)
    )
}

struct Outcome {
    sent: Instant,
    done: Instant,
    status: u16,
    deployment: Option<String>,
}

#[actix_rt::test]
async fn reload_under_load_fails_no_request_and_applies_the_new_weights() {
    let (a, b) = (FakeUpstream::start(), FakeUpstream::start());
    let path = std::env::temp_dir().join(format!("tollgate-reload-under-load-{}.yaml", std::process::id()));
    std::fs::write(&path, config(&a, &b, (1, 0))).expect("write config");
    let gw = Gateway::start_file(&path);
    let started = Instant::now();
    let total = RATE_PER_SEC * SECONDS;
    let mut calls = Vec::with_capacity(total as usize);
    let mut reload = None;
    for i in 0..total {
        let at = started + Duration::from_micros(i * 1_000_000 / RATE_PER_SEC);
        actix_rt::time::sleep_until(at.into()).await;
        if i == total / 2 {
            std::fs::write(&path, config(&a, &b, (0, 1))).expect("rewrite config");
            let url = gw.url.clone();
            reload = Some(actix_rt::spawn(async move {
                let sent = Instant::now();
                let r = post(&url, "/config/reload", Some(MASTER_KEY), "").await;
                (sent, Instant::now(), r)
            }));
        }
        let url = gw.url.clone();
        calls.push(actix_rt::spawn(async move {
            let sent = Instant::now();
            let r = post(&url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
            let deployment = r.header("x-tollgate-deployment").map(str::to_owned);
            Outcome { sent, done: Instant::now(), status: r.status, deployment }
        }));
    }
    let (reload_sent, reload_done, reloaded) = reload.expect("reload sent").await.expect("reload task");
    assert_eq!(reloaded.status, 200, "{}", reloaded.text);
    assert_eq!(reloaded.json["deployments"], 2);
    let mut outcomes = Vec::with_capacity(calls.len());
    for call in calls {
        outcomes.push(call.await.expect("request task"));
    }
    let _ = std::fs::remove_file(&path);

    let failed: Vec<_> = outcomes.iter().filter(|o| o.status != 200).map(|o| o.status).collect();
    assert!(failed.is_empty(), "{} of {total} requests failed: {failed:?}", failed.len());
    let served_by = |o: &Outcome, id: &str| o.deployment.as_deref() == Some(id);
    assert!(outcomes.iter().filter(|o| o.done < reload_sent).all(|o| served_by(o, "a")), "old weights 1:0");
    // `a` has weight 0 in the new table: a call it served that ended after the reload was routed on the old table
    // and finished on it.
    let across = outcomes.iter().filter(|o| served_by(o, "a") && o.done > reload_done).count();
    assert!(across >= 1, "calls in flight across the reload finish on the old table (none seen)");
    let after: Vec<_> = outcomes.iter().filter(|o| o.sent > reload_done).collect();
    assert!(after.len() as u64 >= total / 4, "most of the second half is sent after the reload: {}", after.len());
    let to_b = after.iter().filter(|o| served_by(o, "b")).count();
    assert_eq!(to_b, after.len(), "new weights 0:1 decide every request sent after the reload");
}
