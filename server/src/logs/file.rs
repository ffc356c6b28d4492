//! The seed's request log file (`litellm_settings.log_to_file`): one JSON line per request with the fields of the
//! seed article's own handler (timestamp, model, prompt_tokens, completion_tokens, latency_ms, cost), appended when
//! the request's record is journaled, and rotated by size ([`MAX_BYTES`], keeping [`BACKUPS`] older files).

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::Serialize;

use super::LogRecord;

/// A file past this size is rotated: `path` → `path.1` → ... → `path.BACKUPS`.
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const BACKUPS: u32 = 3;

#[derive(Debug)]
pub struct RequestFile {
    path: PathBuf,
    completion_tokens: bool,
    max_bytes: u64,
    /// The open file and its size.
    state: Mutex<(File, u64)>,
}

#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    model: &'a str,
    prompt_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens: Option<u64>,
    latency_ms: i64,
    /// USD; `null` when the cost could not be counted (the request log's `accounting` says why).
    cost: Option<f64>,
}

fn open(path: &Path) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

impl RequestFile {
    pub fn open(path: impl Into<PathBuf>, completion_tokens: bool) -> std::io::Result<RequestFile> {
        Self::with_limit(path, completion_tokens, MAX_BYTES)
    }

    pub fn with_limit(
        path: impl Into<PathBuf>,
        completion_tokens: bool,
        max_bytes: u64,
    ) -> std::io::Result<RequestFile> {
        let path = path.into();
        let state = Mutex::new(open(&path)?);
        Ok(RequestFile { path, completion_tokens, max_bytes, state })
    }

    pub fn append(&self, r: &LogRecord) -> std::io::Result<()> {
        let line = Line {
            timestamp: crate::clock::iso8601_ms(r.ended_at_ms),
            model: &r.model_group,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: self.completion_tokens.then_some(r.completion_tokens),
            latency_ms: r.ended_at_ms - r.started_at_ms,
            // The seed's handler logs a cost whenever it has one; an uncounted one is null, never 0.
            cost: (r.accounting == "exact").then(|| r.cost_nanos.map(|n| n as f64 / 1e9)).flatten(),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let mut state = self.state.lock().map_err(|_| std::io::Error::other("log file lock poisoned"))?;
        if state.1 > 0 && state.1 + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
            *state = open(&self.path)?;
        }
        state.0.write_all(&bytes)?;
        state.1 += bytes.len() as u64;
        Ok(())
    }

    fn backup(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&self) -> std::io::Result<()> {
        for n in (1..BACKUPS).rev() {
            let from = self.backup(n);
            if from.exists() {
                std::fs::rename(&from, self.backup(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.backup(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record_with_the_seeds_fields_rotated_by_size() {
        let dir = std::env::temp_dir().join(format!("tollgate-file-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join("requests.jsonl");
        let file = RequestFile::with_limit(&path, true, 400).unwrap_or_else(|e| unreachable!("{e}"));
        let record = LogRecord {
            model_group: "gpt-4".into(),
            started_at_ms: 1_796_022_310_000,
            ended_at_ms: 1_796_022_310_250,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_nanos: Some(20_000),
            accounting: "exact".into(),
            ..LogRecord::default()
        };
        assert!(file.append(&record).is_ok());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
        assert_eq!(
            line,
            serde_json::json!({"timestamp": "2026-11-30T07:05:10.250Z", "model": "gpt-4", "prompt_tokens": 10,
                "completion_tokens": 5, "latency_ms": 250, "cost": 0.00002})
        );
        for _ in 0..10 {
            assert!(file.append(&record).is_ok());
        }
        assert!(dir.join("requests.jsonl.1").exists() && dir.join("requests.jsonl.2").exists(), "rotated by size");
        let kept = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(kept, 1 + BACKUPS as usize, "at most {BACKUPS} backups");
        let unknown = LogRecord { accounting: "unpriced".into(), ..record };
        let quiet = RequestFile::open(dir.join("quiet.jsonl"), false).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(quiet.append(&unknown).is_ok());
        let text = std::fs::read_to_string(dir.join("quiet.jsonl")).unwrap_or_default();
        assert!(text.contains("\"cost\":null") && !text.contains("completion_tokens"), "{text}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
