//! Redis shared by replicas: the connection pool (deadpool-redis) the rate limiter's scripts run on, and the key
//! invalidation channel ([`invalidation`]). Everything here is optional: without Redis settings a gateway keeps
//! its limits and key cache to itself.
//!
//! Contract: no request waits on Redis longer than `tollgate.redis_timeout_ms`; what happens when Redis fails is
//! decided per use (`limits::redis`: fail open to local limits; `invalidation`: the cache TTL bounds staleness).

pub mod invalidation;

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use deadpool_redis::{
    redis::{aio::MultiplexedConnection, RedisResult},
    Config as PoolConfig, Connection, Pool, Runtime,
};

use crate::{
    access::cache::KeyCache,
    budgets::{redis::Leases, Ledger},
    config::RedisSettings,
    limits::{redis::RedisLimiter, Limiter},
};

/// Connections per thread's pool: one is held and shared ([`Pools`]); more only while tasks race to open the first
/// or a discarded one is being replaced. Pub/sub has its own connection.
const POOL_SIZE: usize = 4;

/// Redis connections, per thread that uses them: one multiplexed connection that every task of the thread shares
/// (a redis-rs multiplexed connection pipelines concurrent commands), taken from a deadpool pool of the thread's
/// own. Why per thread: such a connection is driven by a task on the runtime that opened it, so a connection
/// opened by one thread and used by another (a pool shared by threads hands out whichever is idle; the first was
/// opened by the main thread's start-up ping) makes every command cross threads twice (two wake-ups, two context
/// switches). Why held rather than taken from the pool per command: deadpool-redis checks a pooled connection with
/// a PING round trip each time it is taken, which doubled the round trips on the request path. Measured with
/// tests/bench/auth.sh (docs/benchmarks.md "Auth").
///
/// A command that fails on the connection (I/O, dropped, or late) discards the thread's connection; the next
/// command takes a new one from the pool.
#[derive(Clone)]
pub struct Pools {
    /// Tells this process's gateways apart (tests run several in one process).
    id: u64,
    config: Arc<PoolConfig>,
}

struct ThreadRedis {
    pool: Pool,
    held: Option<Connection>,
}

thread_local! {
    static THREAD_REDIS: RefCell<HashMap<u64, ThreadRedis>> = RefCell::new(HashMap::new());
}

impl Pools {
    fn new(config: PoolConfig) -> Result<Pools, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // Checked once here, so a bad URL fails at start-up and not on each thread.
        config.create_pool(Some(Runtime::Tokio1)).map_err(|e| e.to_string())?;
        Ok(Pools { id: NEXT.fetch_add(1, Relaxed), config: Arc::new(config) })
    }

    /// This thread's connection, or a new one from this thread's pool.
    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        let (held, pool) = THREAD_REDIS.with(|thread| {
            let mut thread = thread.borrow_mut();
            if let Some(t) = thread.get(&self.id) {
                return Ok((t.held.as_ref().map(|c| MultiplexedConnection::clone(c)), t.pool.clone()));
            }
            let pool = self.config.create_pool(Some(Runtime::Tokio1)).map_err(|e| e.to_string())?;
            thread.insert(self.id, ThreadRedis { pool: pool.clone(), held: None });
            Ok::<_, String>((None, pool))
        })?;
        if let Some(connection) = held {
            return Ok(connection);
        }
        let object = pool.get().await.map_err(|e| e.to_string())?;
        let connection = MultiplexedConnection::clone(&object);
        THREAD_REDIS.with(|thread| {
            if let Some(t) = thread.borrow_mut().get_mut(&self.id) {
                // Another task of this thread may have taken one meanwhile: then this one goes back to the pool.
                if t.held.is_none() {
                    t.held = Some(object);
                }
            }
        });
        Ok(connection)
    }

    fn discard(&self) {
        THREAD_REDIS.with(|thread| {
            if let Some(held) = thread.borrow_mut().get_mut(&self.id).and_then(|t| t.held.take()) {
                // Taken out of the pool's accounting: it is dropped, not handed out again.
                drop(Connection::take(held));
            }
        });
    }

    /// Runs `call` on this thread's connection within `deadline`.
    pub async fn run<T>(
        &self,
        deadline: Duration,
        call: impl AsyncFnOnce(&mut MultiplexedConnection) -> RedisResult<T>,
    ) -> Result<T, String> {
        let attempt = async {
            let mut connection = self.connection().await?;
            call(&mut connection).await.map_err(|e| {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.discard();
                }
                e.to_string()
            })
        };
        match actix_rt::time::timeout(deadline, attempt).await {
            Ok(result) => result,
            Err(_) => {
                self.discard();
                Err("timed out".to_owned())
            }
        }
    }
}

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
pub async fn start(settings: &RedisSettings, keys: &KeyCache) -> Result<(Limiter, Ledger), SharedStateError> {
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
    invalidation::start(client, pool.clone(), settings, keys.clone());
    let ledger = Ledger::with_leases(Leases::new(pool.clone(), settings.prefix.clone(), settings.timeout));
    Ok((Limiter::with_redis(RedisLimiter::new(pool, settings.prefix.clone(), settings.timeout)), ledger))
}

async fn ping(pool: &Pools, deadline: Duration) -> Result<(), String> {
    pool.run(deadline, async |c| deadpool_redis::redis::cmd("PING").query_async::<String>(c).await).await.map(drop)
}
