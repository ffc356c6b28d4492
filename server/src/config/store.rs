//! Where the store lives: `general_settings.database_url`, else the `DATABASE_URL` environment variable, else the
//! seed's `database: {type, connection_string}`, else the embedded default, a SQLite file `tollgate.db` in the
//! working directory (created on first start).

use std::{path::PathBuf, time::Duration};

use super::{
    raw::{RawDatabase, RawGeneralSettings, RawTollgateSettings},
    ConfigError, EnvLookup,
};
use crate::secret::Secret;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://tollgate.db?mode=rwc";
/// LiteLLM's default `user_api_key_cache_ttl`.
const DEFAULT_KEY_CACHE_TTL_SECS: f64 = 60.0;

#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// A secret: Postgres URLs carry passwords.
    pub database_url: Secret,
    /// How long a replica may honour a cached key that changed elsewhere.
    pub key_cache_ttl: Duration,
    /// The request log's journal directory (`tollgate.log_journal_dir`).
    pub log_journal: PathBuf,
    /// `general_settings.disable_spend_logs`: no request log rows in the store.
    pub disable_spend_logs: bool,
    /// `general_settings.budget_default_max_tokens`: a budget reservation's answer bound without `max_tokens`.
    pub budget_default_max_tokens: u64,
    /// `general_settings.maximum_spend_logs_retention_period`: log rows older than this are purged (`None`: kept).
    pub log_retention: Option<Duration>,
    /// `general_settings.maximum_spend_logs_retention_interval`: how often the purge runs.
    pub log_retention_interval: Duration,
}

/// LiteLLM's default `maximum_spend_logs_retention_interval`.
const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(86_400);

/// A retention duration: LiteLLM's `"30d"`, `"12h"`, `"15m"`, `"30s"` (calendar months are refused: a purge
/// needs a fixed age).
fn retention(path: &str, text: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = text else { return Ok(None) };
    match crate::access::period::Period::parse(text) {
        Ok(crate::access::period::Period::Seconds(s)) => Ok(Some(Duration::from_secs(s.unsigned_abs()))),
        Ok(crate::access::period::Period::Months(_)) => {
            Err(ConfigError::invalid(path, format!("`{text}`: write the age in days (\"30d\"), not months")))
        }
        Err(e) => Err(ConfigError::invalid(path, e.to_string())),
    }
}

/// The default of `general_settings.budget_default_max_tokens`.
pub const DEFAULT_BUDGET_MAX_TOKENS: u64 = 4096;

const DEFAULT_JOURNAL: &str = "tollgate-log-journal";

/// Beside a SQLite store's file (it lives where the data does), else in the working directory.
pub fn default_journal(database_url: &str) -> PathBuf {
    let file = database_url.strip_prefix("sqlite://").map(|rest| rest.split('?').next().unwrap_or(rest));
    match file {
        Some(path) if !path.is_empty() && !path.starts_with(':') => PathBuf::from(format!("{path}.log-journal")),
        _ => PathBuf::from(DEFAULT_JOURNAL),
    }
}

pub(super) fn resolve(
    general: &RawGeneralSettings,
    database: Option<&RawDatabase>,
    tollgate: &RawTollgateSettings,
    env: &dyn EnvLookup,
) -> Result<StoreSettings, ConfigError> {
    let url = match (&general.database_url, env.get("DATABASE_URL"), database) {
        (Some(url), _, _) => checked("general_settings.database_url", url)?,
        (None, Some(url), _) => checked("DATABASE_URL", &url)?,
        (None, None, Some(db)) => seed_url(db)?,
        (None, None, None) => DEFAULT_DATABASE_URL.to_owned(),
    };
    let ttl = general.user_api_key_cache_ttl.unwrap_or(DEFAULT_KEY_CACHE_TTL_SECS);
    let key_cache_ttl = Duration::try_from_secs_f64(ttl).map_err(|_| {
        ConfigError::invalid(
            "general_settings.user_api_key_cache_ttl",
            format!("must be seconds, 0 or more, got {ttl}"),
        )
    })?;
    let log_journal = tollgate.log_journal_dir.as_ref().map_or_else(|| default_journal(&url), PathBuf::from);
    let disable_spend_logs = general.disable_spend_logs.unwrap_or(false);
    let budget_default_max_tokens = general.budget_default_max_tokens.unwrap_or(DEFAULT_BUDGET_MAX_TOKENS);
    let log_retention = retention(
        "general_settings.maximum_spend_logs_retention_period",
        general.maximum_spend_logs_retention_period.as_deref(),
    )?;
    let log_retention_interval = retention(
        "general_settings.maximum_spend_logs_retention_interval",
        general.maximum_spend_logs_retention_interval.as_deref(),
    )?
    .unwrap_or(DEFAULT_RETENTION_INTERVAL);
    Ok(StoreSettings {
        database_url: Secret::new(url),
        key_cache_ttl,
        log_journal,
        disable_spend_logs,
        budget_default_max_tokens,
        log_retention,
        log_retention_interval,
    })
}

fn checked(path: &str, url: &str) -> Result<String, ConfigError> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("postgres" | "postgresql" | "sqlite") => Ok(url.to_owned()),
        _ => Err(ConfigError::invalid(
            path,
            "must be a postgres://, postgresql:// or sqlite:// URL (e.g. sqlite://tollgate.db?mode=rwc)",
        )),
    }
}

/// The seed's `database: {type: postgresql | sqlite, connection_string}`.
fn seed_url(db: &RawDatabase) -> Result<String, ConfigError> {
    let conn = db.connection_string.as_deref().unwrap_or("").trim();
    match db.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("postgres" | "postgresql") => checked("database.connection_string", conn),
        Some("sqlite") if conn.starts_with("sqlite://") => Ok(conn.to_owned()),
        Some("sqlite") if !conn.is_empty() => Ok(format!("sqlite://{conn}?mode=rwc")),
        Some("sqlite") => Ok(DEFAULT_DATABASE_URL.to_owned()),
        other => Err(ConfigError::invalid(
            "database.type",
            format!("must be `postgresql` or `sqlite`, got {}", other.unwrap_or("nothing")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general(url: Option<&str>) -> RawGeneralSettings {
        RawGeneralSettings { database_url: url.map(str::to_owned), ..RawGeneralSettings::default() }
    }

    fn db(kind: &str, conn: &str) -> RawDatabase {
        RawDatabase { kind: Some(kind.to_owned()), connection_string: Some(conn.to_owned()) }
    }

    #[test]
    fn the_database_url_comes_from_settings_then_environment_then_seed_then_default() {
        let env_url = |name: &str| (name == "DATABASE_URL").then(|| "postgres://e@h/db".to_owned());
        let no_env = |_: &str| None;
        let url = |g, d: Option<&RawDatabase>, env: &dyn EnvLookup| {
            resolve(&g, d, &RawTollgateSettings::default(), env)
                .map(|s| s.database_url.expose().to_owned())
                .map_err(|e| e.to_string())
        };
        let seed = db("postgresql", "postgresql://u:p@h:5432/seed");
        assert_eq!(url(general(Some("sqlite://x.db")), Some(&seed), &env_url), Ok("sqlite://x.db".into()));
        assert_eq!(url(general(None), Some(&seed), &env_url), Ok("postgres://e@h/db".into()));
        assert_eq!(url(general(None), Some(&seed), &no_env), Ok("postgresql://u:p@h:5432/seed".into()));
        assert_eq!(url(general(None), None, &no_env), Ok(DEFAULT_DATABASE_URL.into()));
        assert_eq!(
            url(general(None), Some(&db("sqlite", "data/gw.db")), &no_env),
            Ok("sqlite://data/gw.db?mode=rwc".into())
        );
        let bad = url(general(Some("mysql://h/db")), None, &no_env).err().unwrap_or_default();
        assert!(bad.contains("general_settings.database_url"), "{bad}");
        let bad = url(general(None), Some(&db("oracle", "x")), &no_env).err().unwrap_or_default();
        assert!(bad.contains("database.type"), "{bad}");
    }

    #[test]
    fn retention_periods_are_ages_in_seconds_to_days() {
        let cases: &[(Option<&str>, Result<Option<u64>, ()>)] = &[
            (None, Ok(None)),
            (Some("30d"), Ok(Some(2_592_000))),
            (Some("1s"), Ok(Some(1))),
            (Some("12h"), Ok(Some(43_200))),
            (Some("1mo"), Err(())),
            (Some("forever"), Err(())),
        ];
        for (text, want) in cases {
            let got = retention("p", *text).map(|d| d.map(|d| d.as_secs())).map_err(|_| ());
            assert_eq!(got, *want, "{text:?}");
        }
        let named = retention("general_settings.maximum_spend_logs_retention_period", Some("1mo"));
        assert!(named.err().is_some_and(|e| e.to_string().contains("maximum_spend_logs_retention_period")));
    }

    #[test]
    fn the_log_journal_lives_beside_a_sqlite_store() {
        assert_eq!(default_journal("sqlite://data/gw.db?mode=rwc"), PathBuf::from("data/gw.db.log-journal"));
        assert_eq!(default_journal("sqlite::memory:"), PathBuf::from(DEFAULT_JOURNAL));
        assert_eq!(default_journal("postgres://h/db"), PathBuf::from(DEFAULT_JOURNAL));
    }
}
