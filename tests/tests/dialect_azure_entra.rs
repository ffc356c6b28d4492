//! Azure OpenAI with Microsoft Entra ID client credentials: the deployment's worker fetches a token from the
//! (fake) Entra endpoint that `AZURE_AUTHORITY_HOST` points at, requests carry it as a bearer, and until it
//! arrives the deployment answers 503 `deployment_not_ready` instead of calling upstream without credentials.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_tests::{chat_body, post, FakeUpstream, Gateway, MASTER_KEY};

#[actix_rt::test]
async fn client_credentials_are_exchanged_for_a_token_the_requests_carry() {
    let fake = FakeUpstream::start();
    let yaml = format!(
        "model_list:\n  - model_name: az\n    litellm_params:\n      model: azure/gpt4o-prod\n      api_base: {}\n      \
         tenant_id: contoso-tenant\n      client_id: app-123\n      client_secret: {}\ngeneral_settings:\n  master_key: {MASTER_KEY}\n",
        fake.url,
        tollgate_fakes::entra::CLIENT_SECRET
    );
    let gw = Gateway::start_with_env(&yaml, &[("AZURE_AUTHORITY_HOST", &fake.url)]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let reply = loop {
        let r = post(&gw.url, "/v1/chat/completions", Some(MASTER_KEY), chat_body("az", json!({}))).await;
        if r.status != 503 || Instant::now() > deadline {
            break r;
        }
        assert_eq!(r.json["error"]["code"], "deployment_not_ready", "{}", r.text);
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reply.status, 200, "{}", reply.text);
    let seen = fake.requests();
    let token_call =
        seen.iter().find(|r| r["path"] == "/contoso-tenant/oauth2/v2.0/token").cloned().unwrap_or_default();
    assert_eq!(token_call["body"]["grant_type"], "client_credentials");
    assert_eq!(token_call["body"]["client_id"], "app-123");
    assert_eq!(token_call["body"]["scope"], "https://cognitiveservices.azure.com/.default");
    let chat = seen
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/openai/deployments/gpt4o-prod/chat/completions?")))
        .cloned()
        .unwrap_or_default();
    let bearer = format!("Bearer {}", tollgate_fakes::entra::ACCESS_TOKEN);
    assert_eq!(chat["headers"]["authorization"], bearer.as_str(), "{seen:?}");
    assert!(chat["headers"].get("api-key").is_none());
}

#[actix_rt::test]
async fn a_refused_secret_keeps_the_deployment_unready_with_a_clear_error() {
    let fake = FakeUpstream::start();
    let yaml = format!(
        "model_list:\n  - model_name: az\n    litellm_params:\n      model: azure/d\n      api_base: {}\n      \
         tenant_id: t\n      client_id: app\n      client_secret: wrong-secret\n",
        fake.url
    );
    let gw = Gateway::start_with_env(&yaml, &[("AZURE_AUTHORITY_HOST", &fake.url)]);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let r = post(&gw.url, "/v1/chat/completions", None, chat_body("az", json!({}))).await;
    assert_eq!((r.status, r.json["error"]["code"].as_str()), (503, Some("deployment_not_ready")), "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(!r.text.contains("wrong-secret"));
    assert!(
        fake.requests().iter().all(|q| !q["path"].as_str().unwrap_or_default().contains("/openai/")),
        "no call went upstream"
    );
}
