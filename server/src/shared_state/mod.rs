//! Redis shared by replicas: the connection pool (deadpool-redis) the rate limiter's scripts run on, and the key
//! invalidation channel ([`invalidation`]). Everything here is optional: without Redis settings a gateway keeps
//! its limits and key cache to itself.
//!
//! Contract: no request waits on Redis longer than `tollgate.redis_timeout_ms`; what happens when Redis fails is
//! decided per use (`limits::redis`: fail open to local limits; `invalidation`: the cache TTL bounds staleness).

pub mod invalidation;

use std::time::Duration;

use deadpool_redis::Config as PoolConfig;

use crate::redis_pool::{Pools, POOL_SIZE};
use crate::{
    access::{cache::KeyCache, end_users::EndUserCache},
    budgets::{redis::Leases, Ledger},
    config::RedisSettings,
    limits::{redis::RedisLimiter, Limiter},
};

#[derive(Debug, thiserror::Error)]
#[error("cannot set up Redis at {url}: {message}")]
pub struct SharedStateError {
    url: String,
    message: String,
}

/// `url` without its password, for messages.
pub fn masked(url: &str) -> String {
    crate::store::masked_url(url)
}

/// The limiter, the budget ledger's leases and the key invalidations over Redis. Redis need not be up: the pool
/// connects on use, a failed start-up ping is a warning (limits and budgets fall back to local ones until Redis
/// answers), and the subscriber retries.
pub async fn start(
    settings: &RedisSettings,
    keys: &KeyCache,
    end_users: &EndUserCache,
) -> Result<(Limiter, Ledger), SharedStateError> {
    let url = settings.url.expose();
    let error = |message: String| SharedStateError { url: masked(url), message };
    let mut config = PoolConfig::from_url(url);
    config.pool = Some(deadpool_redis::PoolConfig {
        max_size: POOL_SIZE,
        timeouts: deadpool_redis::Timeouts {
            wait: Some(settings.timeout),
            create: Some(settings.timeout.max(Duration::from_secs(1))),
            recycle: Some(settings.timeout),
        },
        ..deadpool_redis::PoolConfig::default()
    });
    let pool = Pools::new(config).map_err(error)?;
    match ping(&pool, settings.timeout.max(Duration::from_secs(1))).await {
        Ok(()) => {
            tracing::info!(redis = %masked(url), prefix = %settings.prefix, "Redis: limits and key invalidations shared across replicas")
        }
        Err(e) => tracing::error!(redis = %masked(url), error = %e,
            "Redis does not answer at start-up: limits are per replica until it does (fail open to local limits)"),
    }
    let client = deadpool_redis::redis::Client::open(url).map_err(|e| error(e.to_string()))?;
    invalidation::start(client, pool.clone(), settings, keys.clone(), end_users.clone());
    let ledger = Ledger::with_leases(Leases::new(pool.clone(), settings.prefix.clone(), settings.timeout));
    Ok((Limiter::with_redis(RedisLimiter::new(pool, settings.prefix.clone(), settings.timeout)), ledger))
}

async fn ping(pool: &Pools, deadline: Duration) -> Result<(), String> {
    pool.run(deadline, async |c| deadpool_redis::redis::cmd("PING").query_async::<String>(c).await).await.map(drop)
}
