//! Redis, shared by replicas for rate limits and key invalidations: LiteLLM's `router_settings.redis_url`, else
//! `redis_host` / `redis_port` / `redis_password`, else the environment's `REDIS_URL`, else `REDIS_HOST` /
//! `REDIS_PORT` / `REDIS_PASSWORD` (LiteLLM's variables). Without any, limits are in-process only.
//!
//! tollgate's own keys: `tollgate.redis_key_prefix` (default `tollgate:`; replicas sharing limits share it, tests
//! isolate by it) and `tollgate.redis_timeout_ms` (default 100: the longest a request waits for Redis).

use std::time::Duration;

use super::{
    raw::{RawRouterSettings, RawTollgateSettings},
    ConfigError, EnvLookup,
};
use crate::secret::Secret;

pub const DEFAULT_REDIS_PREFIX: &str = "tollgate:";
const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port[/db]`: a secret, it may carry the password.
    pub url: Secret,
    /// Every Redis key and channel tollgate uses starts with this.
    pub prefix: String,
    /// The longest a request waits for Redis before falling back to local limits.
    pub timeout: Duration,
}

pub(super) fn resolve(
    router: &RawRouterSettings,
    tollgate: &RawTollgateSettings,
    env: &dyn EnvLookup,
) -> Result<Option<RedisSettings>, ConfigError> {
    let from_parts = |host: Option<String>, port: Option<String>, password: Option<String>, path: &str| {
        let host = host?;
        let port = port.unwrap_or_else(|| "6379".to_owned());
        let auth = password.filter(|p| !p.is_empty()).map(|p| format!(":{p}@")).unwrap_or_default();
        Some((format!("redis://{auth}{host}:{port}"), path.to_owned()))
    };
    let url = router
        .redis_url
        .clone()
        .map(|u| (u, "router_settings.redis_url".to_owned()))
        .or_else(|| {
            from_parts(
                router.redis_host.clone(),
                router.redis_port.as_ref().and_then(port_text),
                router.redis_password.clone(),
                "router_settings.redis_host",
            )
        })
        .or_else(|| env.get("REDIS_URL").map(|u| (u, "REDIS_URL".to_owned())))
        .or_else(|| from_parts(env.get("REDIS_HOST"), env.get("REDIS_PORT"), env.get("REDIS_PASSWORD"), "REDIS_HOST"));
    let Some((url, path)) = url else { return Ok(None) };
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("redis") => {}
        Some("rediss") => {
            return Err(ConfigError::invalid(path, "not supported yet: TLS to Redis (rediss://); use redis://"))
        }
        _ => return Err(ConfigError::invalid(path, "must be a redis:// URL (e.g. redis://127.0.0.1:6379)")),
    }
    let prefix = tollgate.redis_key_prefix.clone().unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned());
    let ms = tollgate.redis_timeout_ms.unwrap_or(DEFAULT_REDIS_TIMEOUT_MS);
    if ms == 0 {
        return Err(ConfigError::invalid("tollgate.redis_timeout_ms", "must be 1 or more milliseconds"));
    }
    Ok(Some(RedisSettings { url: Secret::new(url), prefix, timeout: Duration::from_millis(ms) }))
}

/// `redis_port` as written: a number or a string.
fn port_text(port: &serde_yaml::Value) -> Option<String> {
    match port {
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_comes_from_router_settings_then_the_environment() {
        let router = |url: Option<&str>, host: Option<&str>| RawRouterSettings {
            redis_url: url.map(str::to_owned),
            redis_host: host.map(str::to_owned),
            redis_port: Some(serde_yaml::Value::from(6380)),
            redis_password: Some("pw".to_owned()),
            ..RawRouterSettings::default()
        };
        let env = |name: &str| match name {
            "REDIS_HOST" => Some("envhost".to_owned()),
            _ => None,
        };
        let none = |_: &str| None;
        let url = |r: RawRouterSettings, env: &dyn EnvLookup| {
            resolve(&r, &RawTollgateSettings::default(), env)
                .map(|s| s.map(|s| s.url.expose().to_owned()))
                .map_err(|e| e.to_string())
        };
        assert_eq!(url(router(Some("redis://a:1"), Some("h")), &env), Ok(Some("redis://a:1".into())));
        assert_eq!(url(router(None, Some("h")), &env), Ok(Some("redis://:pw@h:6380".into())));
        assert_eq!(url(RawRouterSettings::default(), &env), Ok(Some("redis://envhost:6379".into())));
        assert_eq!(url(RawRouterSettings::default(), &none), Ok(None));
        let bad = url(router(Some("http://x"), None), &none).err().unwrap_or_default();
        assert!(bad.contains("router_settings.redis_url"), "{bad}");
        let tls = url(router(Some("rediss://x"), None), &none).err().unwrap_or_default();
        assert!(tls.contains("not supported yet"), "{tls}");
    }
}
