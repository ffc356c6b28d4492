//! Key invalidations across replicas: every key change made through the management API (update, block, unblock,
//! regenerate, delete) is published on the Redis channel `<prefix>key-invalidations` (the key's hash, never its
//! value), and so is every team, user and end-user change (`team:<id>`, `user:<id>`, `end_user:<id>`: blocked,
//! models, limits, budgets, members, deletion); every replica's subscriber drops what changed from its `KeyCache` or
//! `EndUserCache`, so a revoked key or a blocked team or end user stops working everywhere within a second.
//!
//! Two tasks per process: the publisher drains the cache's queue of changed keys (each PUBLISH within a deadline;
//! a failure is logged, the other replicas then notice within their cache TTL), and the subscriber holds a pub/sub
//! connection, reconnecting with backoff (100 ms doubling to 5 s). After a reconnect it forgets every cached key,
//! since announcements may have been missed meanwhile; while disconnected, the TTL still bounds staleness.

use std::time::Duration;

use deadpool_redis::redis::Client;
use futures_util::StreamExt;

use crate::{
    access::{
        cache::{Change, KeyCache},
        end_users::EndUserCache,
    },
    config::RedisSettings,
    redis_pool::Pools,
};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A publish waits at most this long (nobody waits for it; the bound keeps the queue moving).
const PUBLISH_DEADLINE: Duration = Duration::from_secs(2);

pub fn channel(prefix: &str) -> String {
    format!("{prefix}key-invalidations")
}

/// Starts the publisher and the subscriber for `keys` (must run inside the actix system).
pub fn start(client: Client, pool: Pools, settings: &RedisSettings, keys: KeyCache, end_users: EndUserCache) {
    let channel = channel(&settings.prefix);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
    keys.publish_to(tx.clone());
    end_users.publish_to(tx);
    let publish_to = channel.clone();
    actix_rt::spawn(async move {
        while let Some(change) = rx.recv().await {
            let publish = deadpool_redis::redis::cmd("PUBLISH").arg(&publish_to).arg(change.to_wire()).clone();
            let call = async |c: &mut _| publish.query_async::<u64>(c).await;
            if let Err(e) = pool.run(PUBLISH_DEADLINE, call).await {
                tracing::error!(error = %e, "could not publish a key change to other replicas; they see it within \
                    their key cache TTL");
            }
        }
    });
    actix_rt::spawn(subscribe(client, channel, keys, end_users));
}

async fn subscribe(client: Client, channel: String, keys: KeyCache, end_users: EndUserCache) {
    let mut backoff = FIRST_BACKOFF;
    let mut connected_before = false;
    // Failures are logged when an outage starts, not at every retry.
    let mut failing = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if connected_before {
                        keys.forget_all();
                        end_users.forget_all();
                        tracing::warn!("key invalidation channel reconnected; cached keys and end users dropped");
                    }
                    connected_before = true;
                    failing = false;
                    backoff = FIRST_BACKOFF;
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let payload: String = message.get_payload().unwrap_or_default();
                        match Change::from_wire(&payload) {
                            Some(Change::EndUser(id)) => end_users.forget(&id),
                            Some(change) => keys.apply(&change),
                            None => {}
                        }
                    }
                    tracing::warn!("key invalidation channel closed; reconnecting");
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot subscribe to key invalidations; retrying with backoff");
                }
                Err(_) => {}
            },
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot connect to Redis for key invalidations; retrying with backoff (the \
                    key cache TTL bounds staleness meanwhile)");
            }
            Err(_) => {}
        }
        actix_rt::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
