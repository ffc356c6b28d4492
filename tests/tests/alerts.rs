//! Alerts to Slack webhooks (`general_settings.alerting: ["slack"]`, issue 16): a soft budget crossed and a
//! deployment put in cooldown each reach the webhook as Slack's `{"text": ...}`, once, even while the webhook fails
//! for a while (retried), and name what happened without a key or the webhook's URL.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering::SeqCst},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use tollgate_tests::{chat_body, fake_model, post, serve, FakeUpstream, Gateway, MASTER_KEY};

/// A webhook on its own actix system: refuses the first `fail_first` posts with 500, records the rest.
struct Webhook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Webhook {
    fn start(fail_first: u32) -> Webhook {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let state = web::Data::new((bodies.clone(), Arc::new(AtomicU32::new(fail_first))));
        let (port, handle) = serve(move |cfg| {
            cfg.app_data(state.clone()).default_service(web::to(
                |state: web::Data<(Arc<Mutex<Vec<Value>>>, Arc<AtomicU32>)>, body: web::Json<Value>| async move {
                    let failing = state.1.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok();
                    if failing {
                        return HttpResponse::InternalServerError().finish();
                    }
                    if let Ok(mut bodies) = state.0.lock() {
                        bodies.push(body.into_inner());
                    }
                    HttpResponse::Ok().body("ok")
                },
            ));
        });
        Webhook { url: format!("http://127.0.0.1:{port}/services/T000/B000/secret-token"), bodies, handle }
    }

    fn texts(&self) -> Vec<String> {
        let bodies = self.bodies.lock().map(|b| b.clone()).unwrap_or_default();
        bodies.iter().map(|b| b["text"].as_str().unwrap_or("<no text>").to_owned()).collect()
    }

    /// Waits until `count` alerts containing `needle` arrived (or 15 s passed) and returns those.
    async fn wait_for(&self, needle: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<String> = self.texts().into_iter().filter(|t| t.contains(needle)).collect();
            if found.len() >= count || Instant::now() > deadline {
                return found;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

#[actix_rt::test]
async fn a_crossed_soft_budget_reaches_the_slack_webhook_once_even_while_it_fails_for_a_while() {
    // Fails twice: the alert arrives on the third try (after 1 s and 2 s of backoff).
    let webhook = Webhook::start(2);
    let gw = Gateway::start(&format!(
        "model_list:
  - {{model_name: a, litellm_params: {{model: mock/a, input_cost_per_token: 0, output_cost_per_token: 0.001}}}}
environment_variables:
  SLACK_WEBHOOK_URL: {}
general_settings:
  master_key: {MASTER_KEY}
  alerting: [slack]
",
        webhook.url
    ));
    let r = post(
        &gw.url,
        "/key/generate",
        Some(MASTER_KEY),
        json!({"key_alias": "team-a-bot", "soft_budget": 0.000001}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let key = r.json["key"].as_str().unwrap_or_default().to_owned();
    for _ in 0..3 {
        let r = post(&gw.url, "/v1/chat/completions", Some(&key), chat_body("a", json!({}))).await;
        assert_eq!(r.status, 200, "a soft budget never refuses: {}", r.text);
    }
    let alerts = webhook.wait_for("soft budget", 1).await;
    assert_eq!(alerts.len(), 1, "one alert per budget and period, delivered despite two 500s: {:?}", webhook.texts());
    let text = &alerts[0];
    assert!(text.contains("team-a-bot") && text.contains("key"), "names the key by its alias: {text}");
    assert!(!text.contains(&key) && !text.contains("secret-token"), "no key, no webhook URL: {text}");
    // Nothing else was sent (no cooldowns here), and nothing more arrives later.
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(webhook.texts().len(), 1, "{:?}", webhook.texts());
}

#[actix_rt::test]
async fn a_deployment_put_in_cooldown_is_announced_on_its_types_webhook_only() {
    let budget_hook = Webhook::start(0);
    let cooldown_hook = Webhook::start(0);
    let fake = FakeUpstream::start();
    fake.set_switch("limited", "rate-limited-2");
    let gw = Gateway::start(&format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: {MASTER_KEY}\n  \
         alerting: [slack, email]\n  alert_types: [cooldown_deployment, llm_too_slow]\n  alert_to_webhook_url:\n    \
         cooldown_deployment: {}\n    budget_alerts: {}\n",
        fake_model("g", "switch-limited", &fake, ""),
        fake_model("g", "normal", &fake, ""),
        cooldown_hook.url,
        budget_hook.url,
    ));
    // Calls until one reaches the rate-limited deployment (429 with retry-after: 2): it cools down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("g", json!({}))).await;
        if r.status == 429 {
            break;
        }
    }
    let alerts = cooldown_hook.wait_for("cooling down", 1).await;
    assert_eq!(alerts.len(), 1, "{:?}", cooldown_hook.texts());
    assert!(
        alerts[0].contains("`g#0`") && alerts[0].contains("2.0 s"),
        "names the deployment and the wait: {}",
        alerts[0]
    );
    assert!(budget_hook.texts().is_empty(), "budget_alerts are off (not in alert_types): {:?}", budget_hook.texts());
}
