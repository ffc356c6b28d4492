//! LogWriter: takes request log records from the sink's bounded queue and writes them to the store in batches,
//! by size or time. A batch the store does not take within [`WRITE_DEADLINE`] goes to the spool; spooled records
//! are replayed when the store answers again. [`Flush`] writes everything queued (shutdown).
//!
//! One write at a time (`ctx.wait`): while the store is slow, records wait in the queue, and past its capacity the
//! sink spools them itself, so memory stays bounded whatever the load and nothing is dropped.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, WrapFuture};
use tokio::sync::mpsc;

use crate::{
    logs::{spool::Spool, LogRecord, LogStats},
    store::Store,
};

/// The longest a batch write may take before its records are spooled instead.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// Write everything queued now, and replay the spool, then answer (the server's shutdown sends this before it
/// stops).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

pub struct LogWriter {
    store: Store,
    queue: mpsc::Receiver<LogRecord>,
    spool: Arc<Spool>,
    stats: Arc<LogStats>,
    /// Records per write.
    batch_size: usize,
    /// How often the queue is drained (a batch waits at most this long).
    interval: Duration,
    /// The last write failed: the next failure is not logged again until one succeeds.
    store_down: bool,
}

impl LogWriter {
    pub fn new(store: Store, queue: mpsc::Receiver<LogRecord>, spool: Arc<Spool>, stats: Arc<LogStats>) -> Self {
        Self { store, queue, spool, stats, batch_size: 500, interval: Duration::from_millis(100), store_down: false }
    }

    pub fn with_batching(mut self, batch_size: usize, interval: Duration) -> Self {
        self.batch_size = batch_size.max(1);
        self.interval = interval;
        self
    }

    /// Up to `limit` queued records.
    fn drain(&mut self, limit: usize) -> Vec<LogRecord> {
        let mut batch = Vec::with_capacity(limit.min(1024));
        while batch.len() < limit {
            match self.queue.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        self.stats.queued.fetch_sub(batch.len() as u64, Relaxed);
        batch
    }

    /// Writes `batch` (or spools it) and then, if the store took it, replays the spool. Runs to completion before
    /// the actor handles anything else.
    fn write(&mut self, batch: Vec<LogRecord>, ctx: &mut Context<Self>) {
        let (store, spool) = (self.store.clone(), self.spool.clone());
        let work = async move {
            let wrote = if batch.is_empty() { Ok(0) } else { write_within(&store, &batch).await };
            let result = match wrote {
                Ok(_) => Ok((batch.len(), replay(&store, &spool).await)),
                Err(e) => Err((e, spool.append(&batch).map(|()| batch.len()), batch.len())),
            };
            result
        };
        ctx.wait(work.into_actor(self).map(|result, act, _| act.settle(result)));
    }

    fn settle(&mut self, result: Result<(usize, Replayed), (String, std::io::Result<usize>, usize)>) {
        match result {
            Ok((written, replayed)) => {
                self.stats.written.fetch_add((written + replayed.written) as u64, Relaxed);
                if self.store_down && written + replayed.written > 0 {
                    tracing::info!("request log store reachable again; spooled records replayed");
                }
                if let Some(e) = replayed.error {
                    tracing::warn!(error = %e, "request log spool replay failed; it is retried");
                } else {
                    self.store_down = false;
                }
                if replayed.unreadable > 0 {
                    tracing::error!(
                        lines = replayed.unreadable,
                        "request log spool had unreadable lines (torn by a crash)"
                    );
                }
            }
            Err((error, spooled, count)) => {
                if !self.store_down {
                    tracing::error!(%error, "request log store unavailable; records go to the spool until it answers");
                }
                self.store_down = true;
                match spooled {
                    Ok(n) => {
                        self.stats.spooled.fetch_add(n as u64, Relaxed);
                    }
                    Err(e) => {
                        self.stats.lost.fetch_add(count as u64, Relaxed);
                        tracing::error!(records = count, error = %e, "request log records lost: neither the store nor the spool took them");
                    }
                }
            }
        }
    }
}

async fn write_within(store: &Store, batch: &[LogRecord]) -> Result<u64, String> {
    match actix_rt::time::timeout(WRITE_DEADLINE, store.insert_logs(batch)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", WRITE_DEADLINE.as_secs())),
    }
}

#[derive(Debug, Default)]
struct Replayed {
    written: usize,
    unreadable: usize,
    error: Option<String>,
}

/// Moves spooled records into the store; on failure they stay spooled for the next turn.
async fn replay(store: &Store, spool: &Spool) -> Replayed {
    let taken = match spool.take() {
        Ok(Some(taken)) => taken,
        Ok(None) => return Replayed::default(),
        Err(e) => return Replayed { error: Some(e.to_string()), ..Replayed::default() },
    };
    match write_within(store, &taken.records).await {
        Ok(_) => match spool.done() {
            Ok(()) => Replayed { written: taken.records.len(), unreadable: taken.unreadable, error: None },
            Err(e) => Replayed { error: Some(e.to_string()), ..Replayed::default() },
        },
        Err(e) => Replayed { error: Some(e), ..Replayed::default() },
    }
}

impl Actor for LogWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        ctx.run_interval(self.interval, |act, ctx| {
            let batch = act.drain(act.batch_size);
            if !batch.is_empty() || act.spool.size() > 0 {
                act.write(batch, ctx);
            }
        });
    }
}

impl Handler<Flush> for LogWriter {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Flush, _ctx: &mut Self::Context) -> Self::Result {
        let batch = self.drain(usize::MAX);
        let (store, spool) = (self.store.clone(), self.spool.clone());
        let work = async move {
            match write_within(&store, &batch).await {
                Ok(_) => Ok((batch.len(), replay(&store, &spool).await)),
                Err(e) => Err((e, spool.append(&batch).map(|()| batch.len()), batch.len())),
            }
        };
        Box::pin(work.into_actor(self).map(|result, act, _| act.settle(result)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use actix::Actor;

    use super::*;
    use crate::logs::LogSink;

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

    async fn store() -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("tollgate-logs-{}", uuid::Uuid::new_v4().simple()));
        let store = Store::open(&format!("sqlite://{}.db?mode=rwc", path.display())).await;
        (store.unwrap_or_else(|e| unreachable!("{e}")), path)
    }

    fn cleanup(path: &std::path::Path) {
        for suffix in [".db", ".db-wal", ".db-shm", ".spool"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[actix_rt::test]
    async fn every_record_reaches_the_store_even_past_the_queue_capacity() {
        let (store, path) = store().await;
        let spool = Arc::new(Spool::new(format!("{}.spool", path.display())));
        // A queue of 10 and 1,000 records sent before the writer runs: 990 go to the spool.
        let (sink, rx, stats) = LogSink::new(10, spool.clone());
        for i in 0..1000 {
            sink.record(record(i));
        }
        assert_eq!((stats.queued.load(Relaxed), stats.spooled.load(Relaxed)), (10, 990));
        let writer = LogWriter::new(store.clone(), rx, spool, stats.clone())
            .with_batching(100, Duration::from_millis(20))
            .start();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while store.count_logs().await.unwrap_or(0) < 1000 && std::time::Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(store.count_logs().await.ok(), Some(1000), "every record, spooled or queued, is stored");
        // More records, then a flush: in the store at once; replays of rows already there change nothing.
        for i in 1000..1100 {
            sink.record(record(i));
        }
        let _ = writer.send(Flush).await;
        assert_eq!(store.count_logs().await.ok(), Some(1100));
        assert_eq!(stats.lost.load(Relaxed), 0);
        assert_eq!(store.insert_logs(&[record(5)]).await.ok(), Some(0), "a replayed row is a no-op");
        cleanup(&path);
    }
}
