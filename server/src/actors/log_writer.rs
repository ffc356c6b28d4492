//! LogWriter: moves the request log's journal into the store. Every [`INTERVAL`] it closes the journal's active
//! file as a segment and applies every segment, oldest first, in batches of [`BATCH`] records, each batch in one
//! transaction within [`WRITE_DEADLINE`] that also moves the writer's cursor (`store::logs`): a batch is applied
//! exactly once, and a segment the cursor has passed is deleted. When the store fails, the segments stay on disk
//! and the next turns retry from the cursor (at most every [`RETRY_DOWN`]), so a record is never dropped or
//! written twice, and memory never grows with the outage. [`Flush`] does a turn now (sent at shutdown).
//!
//! One turn at a time (`ctx.wait`); the request path never waits for it: it only appends to the journal.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use actix::{Actor, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, Message, WrapFuture};

use crate::{
    logs::{journal::Journal, LogStats},
    store::{
        logs::{Cursor, LogBatch},
        Store,
    },
};

pub const INTERVAL: Duration = Duration::from_millis(200);
pub const BATCH: usize = 2000;
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
    /// When the last turn failed (`None`: the store answers).
    down_since: Option<Instant>,
    last_try: Instant,
}

/// What a turn did.
#[derive(Debug, Default)]
struct Turn {
    written: u64,
    unreadable: u64,
    error: Option<String>,
}

impl LogWriter {
    pub fn new(store: Store, journal: Arc<Journal>, stats: Arc<LogStats>, rows: bool) -> Self {
        Self { store, rows, journal, stats, down_since: None, last_try: Instant::now() }
    }

    fn turn(&mut self) -> impl std::future::Future<Output = Turn> + 'static {
        self.last_try = Instant::now();
        let (store, journal, rows) = (self.store.clone(), self.journal.clone(), self.rows);
        async move { write_segments(&store, &journal, rows).await }
    }

    fn settle(&mut self, turn: Turn) {
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

/// Closes the active file and applies every segment, oldest first, from the store's cursor; stops at the first
/// failure.
async fn write_segments(store: &Store, journal: &Journal, rows: bool) -> Turn {
    let mut turn = Turn::default();
    let segments = match journal.rotate().and_then(|()| journal.segments()) {
        Ok(segments) => segments,
        Err(e) => return Turn { error: Some(format!("journal: {e}")), ..turn },
    };
    if segments.is_empty() {
        return turn;
    }
    let applied = match bounded(store.log_cursor(journal.id())).await {
        Ok(cursor) => cursor.unwrap_or_default(),
        Err(e) => return Turn { error: Some(e), ..turn },
    };
    for segment in segments {
        // A segment the cursor has passed was applied by an earlier turn that could not delete it.
        if applied.segment <= segment.number {
            let taken = match journal.read(&segment) {
                Ok(taken) => taken,
                Err(e) => return Turn { error: Some(format!("journal: {e}")), ..turn },
            };
            let skip = if applied.segment == segment.number { applied.records as usize } else { 0 };
            let mut done = skip.min(taken.records.len());
            for batch in taken.records[done..].chunks(BATCH) {
                done += batch.len();
                let cursor = Cursor { segment: segment.number, records: done as u64 };
                let batch = LogBatch { journal_id: journal.id(), cursor, records: batch, rows };
                if let Err(e) = bounded(store.write_log_batch(&batch)).await {
                    return Turn { error: Some(e), ..turn };
                }
                turn.written += batch.records.len() as u64;
            }
            turn.unreadable += taken.unreadable as u64;
        }
        if let Err(e) = journal.remove(&segment) {
            return Turn { error: Some(format!("journal: {e}")), ..turn };
        }
    }
    turn
}

impl Actor for LogWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        ctx.run_interval(INTERVAL, |act, ctx| {
            if act.down_since.is_some() && act.last_try.elapsed() < RETRY_DOWN {
                return;
            }
            let turn = act.turn();
            ctx.wait(turn.into_actor(act).map(|turn, act, _| act.settle(turn)));
        });
    }
}

impl Handler<Flush> for LogWriter {
    /// Atomic: no interval turn runs beside this one (two turns would read, and count, the same segment).
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(self.turn().into_actor(self).map(|turn, act, _| act.settle(turn))))
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
        (0..3).for_each(|i| assert!(journal.append(&record(i)).is_ok()));
        assert!(journal.rotate().is_ok());
        let segment = journal.segments().unwrap_or_default().remove(0);
        let taken = journal.read(&segment).unwrap_or_default();
        // An earlier turn committed the first two records and died before deleting the segment.
        let cursor = Cursor { segment: segment.number, records: 2 };
        let first = LogBatch { journal_id: journal.id(), cursor, records: &taken.records[..2], rows: true };
        assert!(store.write_log_batch(&first).await.is_ok());
        let turn = write_segments(&store, &journal, true).await;
        assert_eq!((turn.written, turn.error), (1, None));
        assert_eq!(store.count_logs().await.ok(), Some(3), "the third record once, the first two not again");
        assert_eq!(journal.size(), 0);
        for suffix in [".db", ".db-wal", ".db-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", base.display()));
        }
        let _ = std::fs::remove_dir_all(base.with_extension("journal"));
    }
}
