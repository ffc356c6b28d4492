//! Callbacks (`success_callback`, `failure_callback`, `callbacks`): more consumers of the request log's journal,
//! beside the store. Each keeps its own [`SinkCursor`] in the journal directory and, on the log writer's turns,
//! reads the segments from it, sends the records it wants (by status) in batches of `batch_size` (a partial batch
//! waits up to `flush_interval`), and moves its cursor after each batch the receiver took. The log writer deletes a
//! segment only once the store and every callback have passed it ([`removable`]).
//!
//! Delivery: exactly once per record while nothing crashes and every POST gets its answer; at least once across a
//! crash (a batch delivered just before it is sent again), so receivers dedupe by the payload's `id` (the request
//! id). A receiver that answers 5xx or 429, or cannot be reached within [`POST_DEADLINE`], gets the same batch
//! again after a backoff ([`backoff`], doubling up to [`BACKOFF_CAP`]); meanwhile its records wait on disk, never
//! in memory. Any other 4xx rejects the batch: it is logged once with its size and first and last id, counted as
//! dropped, and skipped. A callback that is down never holds up the store or the request path: it is tried at most
//! once per turn, after the store's part of it, and not at all while its backoff runs.

pub mod cursor;
pub mod otlp;
pub mod payload;

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use self::cursor::{cursor_path, SinkCursor};
use super::journal::{Journal, Segment};
use crate::config::{CallbackConfig, CallbackSink};

/// The longest a POST may take, connecting included, before it counts as a failure to retry.
pub const POST_DEADLINE: Duration = Duration::from_secs(10);
/// The first retry's wait; each further failure doubles it, up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A callback's share of a turn: past it, the callback stops at the next batch boundary and goes on next turn, so a
/// callback catching up on a backlog does not hold up the store's writes for long.
pub const TURN_BUDGET: Duration = Duration::from_millis(250);
/// How much of a rejecting receiver's answer is logged.
const REJECTION_BODY: usize = 512;

/// The wait before the next try after `failures` failures in a row (none: no wait).
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Segment `number` may be deleted: the store (`store_next`: its first segment not yet fully written) and every
/// callback (`callbacks`: each one's cursor segment) have passed it.
pub fn removable(number: u64, store_next: u64, mut callbacks: impl Iterator<Item = u64>) -> bool {
    store_next > number && callbacks.all(|next| next > number)
}

/// One callback's counters, exported by `GET /metrics`.
#[derive(Debug, Default)]
pub struct CallbackStats {
    pub name: String,
    /// Records the receiver took.
    pub delivered: AtomicU64,
    /// Records in batches a receiver rejected (4xx other than 429).
    pub dropped: AtomicU64,
    /// Sends that failed and will be retried.
    pub failures: AtomicU64,
    /// Records passed since start (delivered, dropped, not wanted, unreadable).
    passed: AtomicU64,
    /// Records in the journal beyond the cursor when the process started.
    behind_at_start: AtomicU64,
}

impl CallbackStats {
    pub fn new(name: &str) -> CallbackStats {
        CallbackStats { name: name.to_owned(), ..CallbackStats::default() }
    }

    /// Records journaled that the callback has not passed, given how many were journaled since start.
    pub fn lag(&self, journaled_since_start: u64) -> u64 {
        (self.behind_at_start.load(Relaxed) + journaled_since_start).saturating_sub(self.passed.load(Relaxed))
    }
}

/// What a receiver made of a batch.
#[derive(Debug, PartialEq)]
enum Delivery {
    Delivered,
    /// Dropped: the receiver will never take it (4xx other than 429).
    Rejected {
        status: u16,
        body: String,
    },
    /// Try again later (5xx, 429, unreachable, no answer in time, a file that cannot be written).
    Retry(String),
}

fn classify(status: u16, body: String) -> Delivery {
    match status {
        200..=299 => Delivery::Delivered,
        429 | 500..=599 => Delivery::Retry(format!("HTTP {status}")),
        400..=499 => Delivery::Rejected { status, body },
        other => Delivery::Retry(format!("unexpected HTTP {other}")),
    }
}

/// One callback as the log writer drives it.
pub struct Consumer {
    config: CallbackConfig,
    stats: Arc<CallbackStats>,
    cursor_path: PathBuf,
    cursor: SinkCursor,
    /// Failures in a row, and when the next try may be.
    failures: u32,
    next_try: Instant,
    down_since: Option<Instant>,
    last_send: Instant,
    /// The `jsonl_file` sink's file, opened on first use.
    file: Option<File>,
}

impl Consumer {
    /// Loads the callback's cursor from the journal directory. `counts`: records per segment now in the journal
    /// (for the lag gauge).
    pub fn open(config: CallbackConfig, stats: Arc<CallbackStats>, journal: &Journal, counts: &[(u64, u64)]) -> Self {
        let cursor_path = cursor_path(journal.dir(), &config.name);
        let cursor = match SinkCursor::load(&cursor_path) {
            Ok(Some(cursor)) if cursor.journal_id == journal.id() => cursor,
            Ok(_) => SinkCursor::start(journal.id()),
            Err(e) => {
                tracing::error!(callback = %config.name, error = %e, "callback cursor unreadable; delivering the journal from its start");
                SinkCursor::start(journal.id())
            }
        };
        let behind: u64 = counts
            .iter()
            .map(|&(number, n)| match number.cmp(&cursor.segment) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Equal => n.saturating_sub(cursor.records),
                std::cmp::Ordering::Greater => n,
            })
            .sum();
        stats.behind_at_start.store(behind, Relaxed);
        let now = Instant::now();
        Consumer {
            config,
            stats,
            cursor_path,
            cursor,
            failures: 0,
            next_try: now,
            down_since: None,
            last_send: now,
            file: None,
        }
    }

    /// The segment the callback is in: every lower one is passed.
    pub fn next_segment(&self) -> u64 {
        self.cursor.segment
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The record goes to this callback: its status is one the callback takes, and for `otel`, it has a span.
    fn wants(&self, record: &super::LogRecord) -> bool {
        self.config.wants(record.status)
            && (record.trace.is_some() || !matches!(self.config.sink, CallbackSink::Otlp(_)))
    }

    /// Not waiting out a backoff.
    pub fn due(&self) -> bool {
        Instant::now() >= self.next_try
    }

    /// Delivers what `segments` hold beyond the cursor, batch by batch, until a send fails. `force`: send a partial
    /// batch now (shutdown) instead of when `flush_interval` has passed since the last send.
    pub async fn run(&mut self, journal: &Journal, segments: &[Segment], client: Option<&awc::Client>, force: bool) {
        let started = Instant::now();
        if started < self.next_try {
            return;
        }
        if self.cursor.journal_id != journal.id() {
            self.cursor = SinkCursor::start(journal.id());
        }
        let flush_due = force || self.last_send.elapsed() >= self.config.flush_interval;
        let mut batch = Vec::new();
        let mut pos = self.cursor.clone();
        // Records (and unreadable lines) between the stored cursor and `pos`.
        let mut moved = 0u64;
        let mut dirty = false;
        let from = self.cursor.segment;
        for segment in segments.iter().filter(|s| s.number >= from) {
            let taken = match journal.read(segment) {
                Ok(taken) => taken,
                Err(e) => return self.failed(format!("journal: {e}")),
            };
            let skip = if segment.number == pos.segment { pos.records } else { 0 };
            pos.segment = segment.number;
            pos.records = skip;
            for record in taken.records.iter().skip(skip as usize) {
                pos.records += 1;
                moved += 1;
                if self.wants(record) {
                    batch.push(record.clone());
                }
                if batch.len() >= self.config.batch_size {
                    if !self.send(&batch, client).await {
                        return;
                    }
                    self.commit(&pos, &mut moved);
                    self.save();
                    dirty = false;
                    batch.clear();
                    if started.elapsed() >= TURN_BUDGET {
                        return;
                    }
                }
            }
            moved += taken.unreadable as u64;
            pos = SinkCursor { journal_id: pos.journal_id, segment: segment.number + 1, records: 0 };
            if batch.is_empty() {
                self.commit(&pos, &mut moved);
                dirty = true;
                if started.elapsed() >= TURN_BUDGET {
                    break;
                }
            }
        }
        if !batch.is_empty() && flush_due {
            if !self.send(&batch, client).await {
                return;
            }
            self.commit(&pos, &mut moved);
            dirty = true;
        }
        if dirty {
            self.save();
        }
    }

    fn commit(&mut self, pos: &SinkCursor, moved: &mut u64) {
        self.stats.passed.fetch_add(std::mem::take(moved), Relaxed);
        self.cursor = pos.clone();
    }

    fn save(&self) {
        if let Err(e) = self.cursor.store(&self.cursor_path) {
            tracing::error!(callback = %self.config.name, error = %e, path = %self.cursor_path.display(), "callback cursor not saved; a restart may deliver its last batches again");
        }
    }

    /// Sends one batch; `false` when it must be tried again later.
    async fn send(&mut self, batch: &[super::LogRecord], client: Option<&awc::Client>) -> bool {
        self.last_send = Instant::now();
        let delivery = match &self.config.sink {
            CallbackSink::Webhook { url, headers } => match (client, json_array(batch)) {
                (Some(client), Ok(body)) => post(client, url.expose(), headers, "application/json", body).await,
                (None, _) => Delivery::Retry("no HTTP client".into()),
                (_, Err(e)) => Delivery::Retry(format!("encoding the batch: {e}")),
            },
            CallbackSink::JsonlFile { path } => append(&mut self.file, path, batch),
            CallbackSink::Otlp(otlp) => match (client, otlp::encode(batch, otlp)) {
                (Some(client), Some(body)) => {
                    post(client, otlp.url.expose(), &otlp.headers, otlp::content_type(otlp.encoding), body).await
                }
                (None, _) => Delivery::Retry("no HTTP client".into()),
                (_, None) => Delivery::Delivered,
            },
        };
        let n = batch.len() as u64;
        match delivery {
            Delivery::Delivered => {
                self.stats.delivered.fetch_add(n, Relaxed);
                self.recovered();
                true
            }
            Delivery::Rejected { status, body } => {
                self.stats.dropped.fetch_add(n, Relaxed);
                tracing::error!(
                    callback = %self.config.name,
                    status,
                    records = n,
                    first_id = batch.first().map_or("", |r| r.request_id.as_str()),
                    last_id = batch.last().map_or("", |r| r.request_id.as_str()),
                    answer = %body,
                    "callback receiver rejected a batch; its records are dropped for this callback"
                );
                self.recovered();
                true
            }
            Delivery::Retry(error) => {
                self.failed(error);
                false
            }
        }
    }

    fn failed(&mut self, error: String) {
        self.failures = self.failures.saturating_add(1);
        self.stats.failures.fetch_add(1, Relaxed);
        let wait = backoff(self.failures);
        self.next_try = Instant::now() + wait;
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            tracing::warn!(
                callback = %self.config.name,
                %error,
                "callback delivery failing; its records wait in the request log's journal and are retried with backoff"
            );
        }
    }

    fn recovered(&mut self) {
        self.failures = 0;
        self.next_try = Instant::now();
        if let Some(since) = self.down_since.take() {
            tracing::info!(
                callback = %self.config.name,
                down_secs = since.elapsed().as_secs(),
                retries = self.stats.failures.load(Relaxed),
                "callback delivering again; its backlog follows"
            );
        }
    }
}

/// The webhook's body: the batch's payloads as one JSON array.
fn json_array(batch: &[super::LogRecord]) -> serde_json::Result<Vec<u8>> {
    let body: Vec<serde_json::Value> = batch.iter().map(payload::payload).collect();
    serde_json::to_vec(&body)
}

/// POSTs `body` within [`POST_DEADLINE`].
async fn post(
    client: &awc::Client,
    url: &str,
    headers: &[(String, crate::secret::Secret)],
    content_type: &str,
    body: Vec<u8>,
) -> Delivery {
    let mut request =
        client.post(url).timeout(POST_DEADLINE).insert_header((awc::http::header::CONTENT_TYPE, content_type));
    for (name, value) in headers {
        request = request.insert_header((name.as_str(), value.expose()));
    }
    let exchange = async {
        let mut response = request.send_body(body).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let answer = response.body().limit(64 * 1024).await.map(|b| b.to_vec()).unwrap_or_default();
        let answer: String = String::from_utf8_lossy(&answer).chars().take(REJECTION_BODY).collect();
        Ok::<_, String>((status, answer))
    };
    match actix_rt::time::timeout(POST_DEADLINE, exchange).await {
        Ok(Ok((status, answer))) => classify(status, answer),
        Ok(Err(e)) => Delivery::Retry(e),
        Err(_) => Delivery::Retry(format!("no answer within {}s", POST_DEADLINE.as_secs())),
    }
}

/// Appends one JSON line per record to the `jsonl_file` sink, synced before the cursor moves.
fn append(file: &mut Option<File>, path: &std::path::Path, batch: &[super::LogRecord]) -> Delivery {
    let mut lines = Vec::with_capacity(batch.len() * 512);
    for record in batch {
        if let Err(e) = serde_json::to_writer(&mut lines, &payload::payload(record)) {
            return Delivery::Retry(format!("encoding a record: {e}"));
        }
        lines.push(b'\n');
    }
    if file.is_none() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => *file = Some(f),
            Err(e) => return Delivery::Retry(format!("{}: {e}", path.display())),
        }
    }
    let Some(f) = file.as_mut() else { return Delivery::Retry("file not open".into()) };
    match f.write_all(&lines).and_then(|()| f.sync_data()) {
        Ok(()) => Delivery::Delivered,
        Err(e) => {
            // Reopened on the next try (the disk may have been replaced or remounted).
            *file = None;
            Delivery::Retry(format!("{}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogRecord;

    macro_rules! backoff_table {
        ($($failures:expr => $ms:expr),* $(,)?) => {
            $( assert_eq!(backoff($failures), Duration::from_millis($ms), "after {} failures", $failures); )*
        };
    }

    #[test]
    fn callback_backoff_doubles_from_half_a_second_up_to_thirty() {
        backoff_table! {
            0 => 0,
            1 => 500,
            2 => 1_000,
            3 => 2_000,
            4 => 4_000,
            5 => 8_000,
            6 => 16_000,
            7 => 30_000,
            8 => 30_000,
            40 => 30_000,
            u32::MAX => 30_000,
        }
    }

    #[test]
    fn callback_segment_is_removable_only_when_the_store_and_every_callback_passed_it() {
        // (segment, store's next, callbacks' next segments, removable)
        let cases: &[(u64, u64, &[u64], bool)] = &[
            (5, 6, &[], true),
            (5, 5, &[], false),
            (5, 6, &[6, 9], true),
            (5, 6, &[6, 5], false),
            (5, 9, &[0], false),
            (5, 4, &[9, 9], false),
            (1, 2, &[2, 2, 2], true),
        ];
        for &(segment, store, callbacks, want) in cases {
            assert_eq!(removable(segment, store, callbacks.iter().copied()), want, "{segment} {store} {callbacks:?}");
        }
    }

    #[test]
    fn callback_statuses_decide_retry_drop_or_done() {
        assert_eq!(classify(200, String::new()), Delivery::Delivered);
        assert_eq!(classify(204, String::new()), Delivery::Delivered);
        assert!(matches!(classify(500, String::new()), Delivery::Retry(_)));
        assert!(matches!(classify(503, String::new()), Delivery::Retry(_)));
        assert!(matches!(classify(429, String::new()), Delivery::Retry(_)));
        assert!(matches!(classify(400, "bad".into()), Delivery::Rejected { status: 400, .. }));
        assert!(matches!(classify(404, String::new()), Delivery::Rejected { status: 404, .. }));
    }

    fn record(i: u64, status: u16) -> LogRecord {
        LogRecord { request_id: format!("r{i}"), status, model_group: "m".into(), ..LogRecord::default() }
    }

    #[actix_rt::test]
    async fn callback_file_sink_resumes_at_its_cursor_and_filters_by_status() {
        let dir = std::env::temp_dir().join(format!("tollgate-cb-{}", uuid::Uuid::new_v4().simple()));
        let journal = Journal::open(dir.join("journal")).unwrap_or_else(|e| unreachable!("{e}"));
        let out = dir.join("failures.jsonl");
        let config = CallbackConfig {
            name: "jsonl_file".into(),
            sink: CallbackSink::JsonlFile { path: out.clone() },
            success: false,
            failure: true,
            batch_size: 2,
            flush_interval: Duration::from_secs(3600),
        };
        for i in 0..5 {
            assert!(journal.append(record(i, if i % 2 == 0 { 500 } else { 200 })).is_ok());
        }
        assert!(journal.rotate().is_ok());
        let stats = Arc::new(CallbackStats::new("jsonl_file"));
        let mut consumer = Consumer::open(config.clone(), stats.clone(), &journal, &[(1, 5)]);
        assert_eq!(stats.lag(0), 5);
        let segments = journal.segments().unwrap_or_default();
        consumer.run(&journal, &segments, None, false).await;
        // r0 and r2 make a full batch; r4 waits for the flush interval.
        let lines = || std::fs::read_to_string(&out).unwrap_or_default().lines().count();
        assert_eq!(lines(), 2);
        assert_eq!((consumer.next_segment(), consumer.cursor.records), (1, 3));
        // A new process resumes at the stored cursor: only r4 is left, sent now (shutdown's flush).
        let stats = Arc::new(CallbackStats::new("jsonl_file"));
        let mut again = Consumer::open(config, stats.clone(), &journal, &[(1, 5)]);
        assert_eq!(stats.lag(0), 2);
        again.run(&journal, &segments, None, true).await;
        let ids: Vec<String> = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_default()["id"].as_str().unwrap_or("").to_owned()
            })
            .collect();
        assert_eq!(ids, ["r0", "r2", "r4"]);
        assert_eq!(again.next_segment(), 2, "segment 1 passed");
        assert!(removable(1, 2, [again.next_segment()].into_iter()));
        assert_eq!(stats.lag(0), 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
