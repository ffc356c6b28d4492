//! Redis connections for the rate limiter, the budget leases and key invalidations ([`Pools`]): one multiplexed
//! connection per thread, from a deadpool-redis pool per thread. A leaf: it knows Redis, nothing of tollgate.

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

/// Connections per thread's pool: one is held and shared ([`Pools`]); more only while tasks race to open the first
/// or a discarded one is being replaced. Pub/sub has its own connection.
pub const POOL_SIZE: usize = 4;

/// Redis connections, per thread that uses them: one multiplexed connection that every task of the thread shares
/// (a redis-rs multiplexed connection pipelines concurrent commands), taken from a deadpool pool of the thread's
/// own. Why per thread: such a connection is driven by a task on the runtime that opened it, so a connection
/// opened by one thread and used by another (a pool shared by threads hands out whichever is idle; the first was
/// opened by the main thread's start-up ping) makes every command cross threads twice (two wake-ups, two context
/// switches). Why held rather than taken from the pool per command: deadpool-redis checks a pooled connection with
/// a PING round trip each time it is taken, which doubled the round trips on the request path. Measured with
/// tests/bench/auth.sh (docs/benchmarks.md, "Virtual keys, limits and budgets").
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
    pub fn new(config: PoolConfig) -> Result<Pools, String> {
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
