//! Redis for tests: the machine's Redis (127.0.0.1:6379; `TOLLGATE_TEST_REDIS` overrides it) under a key prefix
//! of the test's own, whose keys are deleted when it drops. Redis is required: these tests never skip.

use deadpool_redis::redis;

pub fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test uses.
pub struct RedisPrefix {
    pub prefix: String,
}

impl RedisPrefix {
    /// Panics (fails the test) when Redis is not reachable.
    pub fn new() -> RedisPrefix {
        let prefix = format!("tollgate-test-{}:", uuid::Uuid::new_v4().simple());
        if let Err(e) = run(|c| redis::cmd("PING").query::<String>(c).map(drop)) {
            panic!("the test Redis at {} is required: {e}", redis_url());
        }
        RedisPrefix { prefix }
    }

    /// The config lines that point a gateway at this Redis under this prefix (`router_settings` and `tollgate`).
    pub fn yaml(&self) -> String {
        format!("router_settings:\n  redis_url: {}\ntollgate:\n  redis_key_prefix: \"{}\"\n", redis_url(), self.prefix)
    }

    /// The keys under this prefix.
    pub fn keys(&self) -> Vec<String> {
        run(|c| redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query(c)).unwrap_or_default()
    }
}

impl Default for RedisPrefix {
    fn default() -> Self {
        Self::new()
    }
}

fn run<T>(f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T, String> {
    let client = redis::Client::open(redis_url()).map_err(|e| e.to_string())?;
    let mut conn = client.get_connection().map_err(|e| e.to_string())?;
    f(&mut conn).map_err(|e| e.to_string())
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _ = run(|c| redis::cmd("DEL").arg(&keys).query::<u64>(c));
        }
    }
}
