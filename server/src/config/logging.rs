//! Process logging and the seed's request log file, from `litellm_settings` (`log_level`, `json_logs`,
//! `log_to_file`, `log_file_path`, `log_completion_tokens`).

use std::path::PathBuf;

use super::{raw::RawLitellmSettings, ConfigError};

const DEFAULT_LOG_FILE: &str = "tollgate-requests.jsonl";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Logging {
    /// A `tracing` filter directive (`debug`, `info`, `warn`, `error`), when the config sets a level.
    pub level: Option<String>,
    pub json: bool,
    /// The request log file, when `log_to_file` is on.
    pub file: Option<LogFile>,
    /// `success_callback` / `failure_callback` / `callbacks` sinks (`config/callbacks.rs`).
    pub callbacks: Vec<super::CallbackConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogFile {
    pub path: PathBuf,
    pub completion_tokens: bool,
}

pub(super) fn resolve(litellm: &RawLitellmSettings) -> Result<Logging, ConfigError> {
    let level = match litellm.log_level.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None => None,
        Some("DEBUG") => Some("debug"),
        Some("INFO") => Some("info"),
        Some("WARNING" | "WARN") => Some("warn"),
        Some("ERROR" | "CRITICAL") => Some("error"),
        Some(other) => {
            return Err(ConfigError::invalid(
                "litellm_settings.log_level",
                format!("`{other}` is not a level: DEBUG, INFO, WARNING, ERROR or CRITICAL"),
            ))
        }
    };
    let file = litellm.log_to_file.unwrap_or(false).then(|| LogFile {
        path: PathBuf::from(litellm.log_file_path.as_deref().unwrap_or(DEFAULT_LOG_FILE)),
        completion_tokens: litellm.log_completion_tokens.unwrap_or(true),
    });
    if file.is_none() && litellm.log_file_path.is_some() {
        return Err(ConfigError::invalid(
            "litellm_settings.log_file_path",
            "is set but `log_to_file` is not true: nothing would be written there",
        ));
    }
    Ok(Logging {
        level: level.map(str::to_owned),
        json: litellm.json_logs.unwrap_or(false),
        file,
        callbacks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(level: Option<&str>, to_file: Option<bool>, path: Option<&str>) -> RawLitellmSettings {
        RawLitellmSettings {
            log_level: level.map(str::to_owned),
            log_to_file: to_file,
            log_file_path: path.map(str::to_owned),
            ..RawLitellmSettings::default()
        }
    }

    #[test]
    fn reads_the_seeds_logging_keys() {
        let seed = resolve(&settings(Some("info"), Some(true), Some("logs/gw.jsonl"))).unwrap_or_default();
        assert_eq!(seed.level.as_deref(), Some("info"));
        assert_eq!(seed.file, Some(LogFile { path: "logs/gw.jsonl".into(), completion_tokens: true }));
        for (given, want) in [("DEBUG", "debug"), ("warning", "warn"), ("CRITICAL", "error")] {
            assert_eq!(resolve(&settings(Some(given), None, None)).ok().and_then(|l| l.level), Some(want.to_owned()));
        }
        let bad = resolve(&settings(Some("LOUD"), None, None)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(bad.contains("litellm_settings.log_level"), "{bad}");
        let orphan = resolve(&settings(None, None, Some("x.jsonl"))).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(orphan.contains("log_to_file"), "{orphan}");
        assert_eq!(
            resolve(&settings(None, Some(true), None)).ok().and_then(|l| l.file).map(|f| f.path),
            Some(DEFAULT_LOG_FILE.into())
        );
    }
}
