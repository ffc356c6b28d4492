//! LogWriter: moves the request log's journal into the store and to the callbacks. Every [`INTERVAL`] a turn closes
//! the journal's active file as a segment, then:
//!
//! 1. the store consumer applies every segment, oldest first, in batches of [`BATCH`] records, each batch in one
//!    transaction within [`WRITE_DEADLINE`] that also moves the writer's cursor (`store::logs`): a batch is applied
//!    exactly once. When the store fails, the next turns retry from the cursor (at most every [`RETRY_DOWN`]);
//! 2. each callback consumer (`logs::callback`) delivers the segments from its own cursor, unless its backoff runs;
//! 3. a segment that the store and every callback have passed is deleted.
//!
//! So a record is never dropped or written twice, a consumer that is down only makes segments wait on disk (memory
//! never grows with an outage), and a callback that is down never holds up the store's writes. [`Flush`] does a turn
//! now, sending callbacks' partial batches too (sent at shutdown).
//!
//! One turn at a time (`ctx.wait`); the request path never waits for it: it only appends to the journal.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use actix::{Actor, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, Message, WrapFuture};

use crate::{
    logs::{
        callback::{self, Consumer},
        journal::{Journal, Segment},
        LogStats,
    },
    store::{
        logs::{Cursor, LogBatch},
        Store,
    },
    upstream::Upstream,
};

pub const INTERVAL: Duration = Duration::from_millis(200);
/// Records per store transaction: a turn's segment (200 ms of traffic, 4,000 records at 20,000 requests a second)
/// is usually one batch, moved whole, not split.
pub const BATCH: usize = 8_000;
/// The longest a batch write may take before the turn gives up (its segment stays for the next turn).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// While the store is down, a turn tries it at most this often.
pub const RETRY_DOWN: Duration = Duration::from_secs(1);

/// Write everything journaled so far now, then answer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

pub struct LogWriter {
    store: Store,
    /// `false` with `disable_spend_logs`: batches move the cursor but store no rows.
    rows: bool,
    journal: Arc<Journal>,
    stats: Arc<LogStats>,
    /// When the last store write failed (`None`: the store answers).
    down_since: Option<Instant>,
    last_try: Instant,
    /// The first segment the store has not fully written (0 until a turn has run).
    store_next: u64,
    /// The callbacks; lent to each turn's future and given back when it ends.
    callbacks: Vec<Consumer>,
    /// Builds the webhooks' HTTP client on the actor's thread (awc's client is `!Send`).
    upstream: Option<Upstream>,
    client: Option<awc::Client>,
    /// A turn is queued or running. Why: actix's interval calls its closure once per elapsed tick, so after a slow
    /// turn it calls it several times in a row; each call would queue a turn (run one after the other by
    /// `ctx.wait`), and a turn made while the callbacks are lent to another would see none of them and delete
    /// segments they still need.
    in_turn: bool,
    /// How many callbacks there are (while a turn has them, `callbacks` is empty).
    callback_count: usize,
}

/// What a turn did.
#[derive(Default)]
struct Turn {
    /// The store's part, when it was due.
    store: Option<StoreTurn>,
    callbacks: Vec<Consumer>,
}

#[derive(Debug, Default)]
struct StoreTurn {
    written: u64,
    unreadable: u64,
    error: Option<String>,
    /// The first segment not fully written after this turn.
    next: u64,
}

impl LogWriter {
    pub fn new(store: Store, journal: Arc<Journal>, stats: Arc<LogStats>, rows: bool) -> Self {
        Self {
            store,
            rows,
            journal,
            stats,
            down_since: None,
            last_try: Instant::now(),
            store_next: 0,
            callbacks: Vec::new(),
            upstream: None,
            client: None,
            in_turn: false,
            callback_count: 0,
        }
    }

    /// Adds the callbacks (`logs::callback`), whose webhooks connect as upstream calls do (`upstream`: trusted
    /// certificates, proxy, connect timeout).
    pub fn with_callbacks(mut self, callbacks: Vec<Consumer>, upstream: Upstream) -> Self {
        self.callback_count = callbacks.len();
        self.callbacks = callbacks;
        self.upstream = Some(upstream);
        self
    }

    /// The store is not waiting out [`RETRY_DOWN`].
    fn store_due(&self) -> bool {
        self.down_since.is_none() || self.last_try.elapsed() >= RETRY_DOWN
    }

    fn turn(&mut self, force: bool) -> impl std::future::Future<Output = Turn> + 'static {
        let store_due = self.store_due();
        if store_due {
            self.last_try = Instant::now();
        }
        self.in_turn = true;
        let (store, journal, rows, store_next) = (self.store.clone(), self.journal.clone(), self.rows, self.store_next);
        let mut callbacks = std::mem::take(&mut self.callbacks);
        // Also checked before deleting anything: every callback is in this turn.
        let expected = self.callback_count;
        let client = self.client.clone();
        async move {
            let segments = match journal.rotate().and_then(|()| journal.segments()) {
                Ok(segments) => segments,
                Err(e) => {
                    let error = Some(format!("journal: {e}"));
                    return Turn {
                        store: Some(StoreTurn { error, next: store_next, ..StoreTurn::default() }),
                        callbacks,
                    };
                }
            };
            let store_turn =
                if store_due { Some(write_segments(&store, &journal, &segments, rows).await) } else { None };
            let store_next = store_turn.as_ref().map_or(store_next, |t| t.next);
            for consumer in &mut callbacks {
                consumer.run(&journal, &segments, client.as_ref(), force).await;
            }
            for segment in segments.iter().filter(|_| callbacks.len() == expected) {
                if !callback::removable(segment.number, store_next, callbacks.iter().map(Consumer::next_segment)) {
                    break;
                }
                if let Err(e) = journal.remove(segment) {
                    tracing::error!(error = %e, segment = segment.number, "request log journal segment not deleted");
                    break;
                }
            }
            Turn { store: store_turn, callbacks }
        }
    }

    fn settle(&mut self, turn: Turn) {
        self.in_turn = false;
        self.callbacks = turn.callbacks;
        let Some(turn) = turn.store else { return };
        self.store_next = turn.next;
        self.stats.written.fetch_add(turn.written, Relaxed);
        if turn.unreadable > 0 {
            self.stats.unreadable.fetch_add(turn.unreadable, Relaxed);
            tracing::error!(lines = turn.unreadable, "request log journal had unreadable lines (torn by a crash)");
        }
        match (turn.error, self.down_since) {
            (Some(error), None) => {
                tracing::error!(%error, "request log store unavailable; records wait in the journal until it answers");
                self.down_since = Some(Instant::now());
            }
            (Some(_), Some(_)) => {}
            (None, Some(since)) => {
                tracing::info!(
                    down_secs = since.elapsed().as_secs(),
                    "request log store reachable again; journal replayed"
                );
                self.down_since = None;
            }
            (None, None) => {}
        }
    }
}

/// `f` within [`WRITE_DEADLINE`], its failure as a turn's error.
async fn bounded<T>(f: impl std::future::Future<Output = Result<T, crate::store::StoreError>>) -> Result<T, String> {
    match actix_rt::time::timeout(WRITE_DEADLINE, f).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {}s", WRITE_DEADLINE.as_secs())),
    }
}

/// Applies `segments`, oldest first, from the store's cursor; stops at the first failure. Deletes nothing: the turn
/// does, once every consumer has passed a segment.
async fn write_segments(store: &Store, journal: &Journal, segments: &[Segment], rows: bool) -> StoreTurn {
    let Some(last) = segments.last() else { return StoreTurn::default() };
    let mut turn = StoreTurn { next: segments[0].number, ..StoreTurn::default() };
    let applied = match bounded(store.log_cursor(journal.id())).await {
        Ok(cursor) => cursor.unwrap_or_default(),
        Err(e) => return StoreTurn { error: Some(e), ..turn },
    };
    for segment in segments {
        turn.next = segment.number;
        // A segment the cursor has passed was applied by an earlier turn.
        if applied.segment <= segment.number {
            let mut taken = match journal.take(segment) {
                Ok(taken) => taken,
                Err(e) => return StoreTurn { error: Some(format!("journal: {e}")), ..turn },
            };
            let skip = if applied.segment == segment.number { applied.records as usize } else { 0 };
            let mut done = skip.min(taken.records.len());
            // The records are moved into batches, never copied: a segment of up to BATCH records is one batch.
            let mut records = std::mem::take(&mut taken.records);
            records.drain(..done);
            while !records.is_empty() {
                let rest = records.split_off(BATCH.min(records.len()));
                done += records.len();
                let written = records.len() as u64;
                let cursor = Cursor { segment: segment.number, records: done as u64 };
                let batch = LogBatch { journal_id: journal.id().to_owned(), cursor, records, rows };
                if let Err(e) = bounded(store.write_log_batch(batch)).await {
                    return StoreTurn { error: Some(e), ..turn };
                }
                turn.written += written;
                records = rest;
            }
            turn.unreadable += taken.unreadable as u64;
        }
    }
    turn.next = last.number + 1;
    turn
}

impl Actor for LogWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        self.client = self.upstream.as_ref().map(Upstream::awc);
        ctx.run_interval(INTERVAL, |act, ctx| {
            // One turn at a time; nothing to do while every consumer waits out its retry delay (the active file
            // keeps growing meanwhile).
            if act.in_turn || (!act.store_due() && !act.callbacks.iter().any(Consumer::due)) {
                return;
            }
            let turn = act.turn(false);
            ctx.wait(turn.into_actor(act).map(|turn, act, _| act.settle(turn)));
        });
    }
}

impl Handler<Flush> for LogWriter {
    /// Atomic: no interval turn runs beside this one (two turns would read, and count, the same segment).
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(self.turn(true).into_actor(self).map(|turn, act, _| act.settle(turn))))
    }
}

#[cfg(test)]
mod tests {
    use actix::Actor;

    use super::*;
    use crate::logs::{LogRecord, LogSink};

    fn record(i: usize) -> LogRecord {
        LogRecord {
            request_id: format!("req-{i}"),
            model_group: "m".into(),
            route: "/v1/chat/completions".into(),
            prompt_tokens: i as u64,
            accounting: "exact".into(),
            ..LogRecord::default()
        }
    }

    #[actix_rt::test]
    async fn every_record_from_every_thread_reaches_the_store_once() {
        let base = std::env::temp_dir().join(format!("tollgate-logs-{}", uuid::Uuid::new_v4().simple()));
        let store = Store::open(&format!("sqlite://{}.db?mode=rwc", base.display())).await;
        let store = store.unwrap_or_else(|e| unreachable!("{e}"));
        let journal = Arc::new(Journal::open(base.with_extension("journal")).unwrap_or_else(|e| unreachable!("{e}")));
        let sink = LogSink::new(journal.clone());
        let writer = LogWriter::new(store.clone(), journal.clone(), sink.stats().clone(), true).start();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || (0..500).for_each(|i| sink.record(record(t * 500 + i))))
            })
            .collect();
        threads.into_iter().for_each(|t| {
            let _ = t.join();
        });
        let _ = writer.send(Flush).await;
        assert_eq!(store.count_logs().await.ok(), Some(2000));
        assert_eq!((sink.stats().accepted.load(Relaxed), sink.stats().written.load(Relaxed)), (2000, 2000));
        assert_eq!(journal.size(), 0, "every segment deleted once stored");
        assert_eq!(store.log_cursor(journal.id()).await.ok().flatten().map(|c| c.records), Some(2000));
        for suffix in [".db", ".db-wal", ".db-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", base.display()));
        }
        let _ = std::fs::remove_dir_all(base.with_extension("journal"));
    }

    #[actix_rt::test]
    async fn a_replay_after_a_crash_resumes_at_the_cursor_and_writes_no_row_twice() {
        let base = std::env::temp_dir().join(format!("tollgate-logs-{}", uuid::Uuid::new_v4().simple()));
        let store = Store::open(&format!("sqlite://{}.db?mode=rwc", base.display())).await;
        let store = store.unwrap_or_else(|e| unreachable!("{e}"));
        let journal = Journal::open(base.with_extension("journal")).unwrap_or_else(|e| unreachable!("{e}"));
        (0..3).for_each(|i| assert!(journal.append(record(i)).is_ok()));
        assert!(journal.rotate().is_ok());
        let segment = journal.segments().unwrap_or_default().remove(0);
        let taken = journal.read(&segment).unwrap_or_default();
        // An earlier turn committed the first two records and died before deleting the segment.
        let cursor = Cursor { segment: segment.number, records: 2 };
        let first =
            LogBatch { journal_id: journal.id().to_owned(), cursor, records: taken.records[..2].to_vec(), rows: true };
        assert!(store.write_log_batch(first).await.is_ok());
        let segments = journal.segments().unwrap_or_default();
        let turn = write_segments(&store, &journal, &segments, true).await;
        assert_eq!((turn.written, turn.error, turn.next), (1, None, segment.number + 1));
        assert_eq!(store.count_logs().await.ok(), Some(3), "the third record once, the first two not again");
        for suffix in [".db", ".db-wal", ".db-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", base.display()));
        }
        let _ = std::fs::remove_dir_all(base.with_extension("journal"));
    }
}
