//! The request log: one [`LogRecord`] per request, success or failure, handed by the request path to the
//! [`LogSink`] without waiting, and written to the store in batches by the log writer
//! (`actors::log_writer`). Nothing is dropped: when the writer's queue is full the record goes straight to the
//! append-only [`spool`], and when the store is down the writer spools whole batches; spooled records are
//! replayed into the store once it answers again (a replayed row that was already written is a no-op).

pub mod request;
pub mod spool;

use std::sync::{
    atomic::{AtomicU64, Ordering::Relaxed},
    Arc,
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use self::spool::Spool;

/// One request as the log stores it. Times are Unix milliseconds; money is nano-dollars, `None` when it could not
/// be counted (`accounting` names the gap). Serialized as one JSON line in the spool.
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
}

/// Counters of the log path, exported by `GET /metrics`.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Records accepted by the sink (queued or spooled).
    pub accepted: AtomicU64,
    /// Records written to the store (replays included).
    pub written: AtomicU64,
    /// Records written to the spool (queue full or store down).
    pub spooled: AtomicU64,
    /// Records in the queue now.
    pub queued: AtomicU64,
    /// Records that could be neither queued, written nor spooled (the spool's disk failed): logged each time.
    pub lost: AtomicU64,
}

/// The request path's handle: [`LogSink::record`] never waits.
#[derive(Clone)]
pub struct LogSink {
    queue: mpsc::Sender<LogRecord>,
    spool: Arc<Spool>,
    stats: Arc<LogStats>,
}

impl LogSink {
    /// A sink and the queue's receiving end for the writer; the queue holds at most `capacity` records.
    pub fn new(capacity: usize, spool: Arc<Spool>) -> (LogSink, mpsc::Receiver<LogRecord>, Arc<LogStats>) {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(LogStats::default());
        (LogSink { queue, spool, stats: stats.clone() }, rx, stats)
    }

    /// Hands `record` to the writer; when its queue is full (or the writer is gone) appends it to the spool.
    pub fn record(&self, record: LogRecord) {
        self.stats.accepted.fetch_add(1, Relaxed);
        match self.queue.try_send(record) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record)) => {
                self.spool_one(&record);
            }
        }
    }

    fn spool_one(&self, record: &LogRecord) {
        match self.spool.append(std::slice::from_ref(record)) {
            Ok(()) => {
                self.stats.spooled.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.stats.lost.fetch_add(1, Relaxed);
                tracing::error!(request_id = %record.request_id, error = %e, "request log record lost: the spool cannot be written");
            }
        }
    }

    pub fn stats(&self) -> &Arc<LogStats> {
        &self.stats
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }
}
