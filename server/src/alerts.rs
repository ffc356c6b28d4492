//! Alerts to Slack-compatible webhooks (`general_settings.alerting`, config/alerts.rs): a soft budget crossed, a
//! deployment put in cooldown. The code that notices raises an alert and goes on: [`Alerts::raise`] never waits (a
//! bounded queue; a full one drops the alert, counted and logged, since an alert storm must not grow memory); one
//! task POSTs `{"text": ...}` (Slack's incoming-webhook body) to the type's webhook, each within [`POST_DEADLINE`],
//! retrying a failure [`RETRIES`] times with doubling delays, and logs (without the URL, a secret) an alert it could
//! not deliver.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use crate::{
    config::{AlertType, Alerting},
    upstream::Upstream,
};

/// Alerts waiting to be sent; more are dropped (counted and logged).
const QUEUE: usize = 256;
const POST_DEADLINE: Duration = Duration::from_secs(10);
const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The handle that raises alerts. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    tx: tokio::sync::mpsc::Sender<(AlertType, String)>,
    on: Arc<[AlertType]>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").field("on", &self.on).finish_non_exhaustive()
    }
}

impl Alerts {
    /// Starts the delivery task (must run inside the actix system); webhooks connect as upstream calls do
    /// (`upstream`: trusted certificates, proxy, connect timeout).
    pub fn start(alerting: &Alerting, upstream: Upstream) -> Alerts {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(AlertType, String)>(QUEUE);
        let webhooks = alerting.webhooks.clone();
        let on: Arc<[AlertType]> = webhooks.keys().copied().collect();
        actix_rt::spawn(async move {
            let client = upstream.awc();
            while let Some((kind, text)) = rx.recv().await {
                let Some(url) = webhooks.get(&kind) else { continue };
                deliver(&client, url.expose(), kind, &text).await;
            }
        });
        Alerts { tx, on, dropped: Arc::default() }
    }

    /// Queues `text` for the webhook of `kind`, if that type is on; never waits.
    pub fn raise(&self, kind: AlertType, text: String) {
        if !self.on.contains(&kind) {
            return;
        }
        if self.tx.try_send((kind, text)).is_err() {
            let dropped = self.dropped.fetch_add(1, Relaxed) + 1;
            // The first and then every power of two: visible without flooding the log.
            if dropped.is_power_of_two() {
                tracing::error!(alert_type = kind.name(), dropped, "alert dropped: the alert queue is full");
            }
        }
    }
}

async fn deliver(client: &awc::Client, url: &str, kind: AlertType, text: &str) {
    let body = serde_json::json!({ "text": text });
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=RETRIES {
        let outcome = match client.post(url).timeout(POST_DEADLINE).send_json(&body).await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(e) => e.to_string(),
        };
        if attempt == RETRIES {
            tracing::error!(alert_type = kind.name(), error = %outcome, attempts = RETRIES + 1,
                "alert not delivered: the webhook did not take it");
            return;
        }
        tracing::warn!(alert_type = kind.name(), error = %outcome, retry_in_secs = backoff.as_secs(),
            "alert webhook failed; retrying");
        actix_rt::time::sleep(backoff).await;
        backoff *= 2;
    }
}
