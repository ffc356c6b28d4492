//! The request log: one [`LogRecord`] per request, success or failure, handed by the request path to the
//! [`LogSink`], which appends it to the journal on disk ([`journal`]) with one write: from then on it survives a
//! crash of the process. The log writer (`actors::log_writer`) moves journal segments into the store in batches
//! (each batch in one transaction with the writer's cursor, so a record is applied exactly once) and deletes each
//! once stored and delivered to every callback ([`callback`]: webhooks and JSON-lines files, each with its own
//! cursor); while the store or a callback is down they wait on disk, and are written when it answers.

pub mod callback;
pub mod codec;
pub mod file;
pub mod journal;
pub mod metrics;
pub mod query;
pub mod request;

use std::sync::{
    atomic::{AtomicU64, Ordering::Relaxed},
    Arc,
};

use serde::{Deserialize, Serialize};

use self::{callback::CallbackStats, file::RequestFile, journal::Journal, metrics::RequestMetrics};

/// One request as the log stores it. Times are Unix milliseconds; money is nano-dollars, `None` when it could not
/// be counted (`accounting` names the gap). Serialized as one JSON line in the journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub request_id: String,
    pub started_at_ms: i64,
    pub first_byte_at_ms: Option<i64>,
    pub ended_at_ms: i64,
    /// SHA-256 (hex) of the virtual key, never the key.
    pub key_hash: Option<String>,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub end_user: Option<String>,
    pub model_group: String,
    pub deployment: Option<String>,
    pub provider: Option<String>,
    /// The deployment's base URL, without credentials.
    pub api_base: Option<String>,
    /// `/v1/chat/completions`, `/v1/messages`, ...
    pub route: String,
    pub streamed: bool,
    pub status: u16,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_nanos: Option<u64>,
    /// `exact`, or the accounting gap's cause.
    pub accounting: String,
    pub attempts: u32,
    /// The model group that served, when a fallback did.
    pub fallback: Option<String>,
    pub tags: Vec<String>,
    pub client_ip: Option<String>,
    /// The budget periods the request's cost counts in, `[entity_kind, period_start]` per budget it reserved on
    /// (`store::spend`): set only for budgeted callers, so other records' journal lines do not grow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budget_periods: Vec<(String, i64)>,
    /// The model the served answer named (the provider's, e.g. a dated version of the one asked for); taken, as
    /// `finish_reasons`, only for a record with a span (`trace`), the one reader of both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
    /// Why the served answer's choices stopped (OpenAI's names: `stop`, `length`, `tool_calls`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finish_reasons: Vec<String>,
    /// tollgate's own time before the served call went upstream, in microseconds (`x-tollgate-overhead-ms`):
    /// routing, admission, translation, and any earlier calls that failed. `None` when no call was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_us: Option<u64>,
    /// tollgate's span for the request, set only when spans are exported (the `otel` callback) and sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace_context::SpanIds>,
}

impl LogRecord {
    /// Whether the record adds to some entity's spend (`store::spend`): a cost, and a key, team, user or end user
    /// to count it toward.
    pub fn carries_spend(&self) -> bool {
        self.cost_nanos.is_some_and(|c| c > 0)
            && (self.key_hash.is_some() || self.team_id.is_some() || self.user_id.is_some() || self.end_user.is_some())
    }
}

/// Counters of the log path, exported by `GET /metrics`.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Records appended to the journal.
    pub accepted: AtomicU64,
    /// Records written to the store.
    pub written: AtomicU64,
    /// Records the journal could not take (its disk failed): each one logged.
    pub lost: AtomicU64,
    /// Journal lines that were not a record (torn by a crash).
    pub unreadable: AtomicU64,
    /// Lines the seed's request log file could not take.
    pub file_errors: AtomicU64,
}

/// The request path's handle: [`LogSink::record`] appends to the journal and returns.
#[derive(Clone)]
pub struct LogSink {
    journal: Arc<Journal>,
    stats: Arc<LogStats>,
    /// The seed's request log file, when `log_to_file` is on.
    file: Option<Arc<RequestFile>>,
    /// `GET /metrics`' request families, fed by the same records.
    metrics: Arc<RequestMetrics>,
    /// `false` with `general_settings.disable_spend_logs` and no callbacks: a record is journaled only when it
    /// carries spend (the writer then updates spend and stores no row); every record still feeds metrics and the
    /// log file.
    journaled: bool,
    /// The callbacks' counters, for `GET /metrics`.
    callbacks: Arc<[Arc<CallbackStats>]>,
}

impl LogSink {
    pub fn new(journal: Arc<Journal>) -> LogSink {
        LogSink {
            journal,
            stats: Arc::default(),
            file: None,
            metrics: Arc::default(),
            journaled: true,
            callbacks: Arc::new([]),
        }
    }

    /// Records go to metrics and the log file, and reach the store only for their spend (`disable_spend_logs`).
    pub fn without_store(mut self) -> LogSink {
        self.journaled = false;
        self
    }

    /// Also writes every record's line to the seed's request log file.
    pub fn with_file(mut self, file: RequestFile) -> LogSink {
        self.file = Some(Arc::new(file));
        self
    }

    /// The callbacks' counters, exported by `GET /metrics`.
    pub fn with_callbacks(mut self, callbacks: Vec<Arc<CallbackStats>>) -> LogSink {
        self.callbacks = callbacks.into();
        self
    }

    pub fn callbacks(&self) -> &[Arc<CallbackStats>] {
        &self.callbacks
    }

    pub fn record(&self, record: LogRecord) {
        self.metrics.observe(&record);
        if let Some(file) = &self.file {
            if let Err(e) = file.append(&record) {
                let failures = self.stats.file_errors.fetch_add(1, Relaxed) + 1;
                // The first failure and then every power of two: visible without flooding the log.
                if failures.is_power_of_two() {
                    tracing::error!(error = %e, failures, "the request log file cannot be written");
                }
            }
        }
        if !self.journaled && !record.carries_spend() {
            return;
        }
        match self.journal.append(record) {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Relaxed);
            }
            Err(refused) => {
                self.stats.lost.fetch_add(1, Relaxed);
                tracing::error!(request_id = %refused.record.request_id, error = %refused.error, "request log record lost: the journal cannot be written");
            }
        }
    }

    pub fn metrics(&self) -> &RequestMetrics {
        &self.metrics
    }

    pub fn stats(&self) -> &Arc<LogStats> {
        &self.stats
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }
}
