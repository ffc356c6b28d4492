//! LogRetention: keeps the request log within `general_settings.maximum_spend_logs_retention_period`. At start-up
//! and then every `maximum_spend_logs_retention_interval` it deletes the rows that started before `now - period`,
//! [`crate::store::reports::PURGE_ROWS_PER_STATEMENT`] rows per statement, each statement its own short
//! transaction with a [`PAUSE`] between them, so the log writer's batches (and SQLite's single writer) never wait
//! long behind it. The daily rollups (`usage_daily`) are kept: reports still cover purged days.
//!
//! Owns no state but its settings; runs one purge at a time (`ctx.wait`). Nothing on the request path talks to it.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};

use crate::store::{reports::PURGE_ROWS_PER_STATEMENT, Store};

/// Between two delete statements of one purge.
pub const PAUSE: Duration = Duration::from_millis(20);

pub struct LogRetention {
    store: Store,
    /// Rows older than this go.
    period: Duration,
    /// Time between two purges.
    interval: Duration,
    /// Whether the last purge failed (logged once per outage).
    failing: bool,
}

impl LogRetention {
    pub fn new(store: Store, period: Duration, interval: Duration) -> Self {
        Self { store, period, interval, failing: false }
    }

    fn purge(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let cutoff_ms =
            crate::clock::unix_ms().saturating_sub(i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX));
        let work = async move { purge_before(&store, cutoff_ms).await };
        ctx.wait(work.into_actor(self).map(|result, act, _| match result {
            Ok(0) => act.failing = false,
            Ok(rows) => {
                act.failing = false;
                tracing::info!(rows, older_than_secs = act.period.as_secs(), "request log retention: old rows deleted");
            }
            Err(error) => {
                if !act.failing {
                    tracing::error!(%error, "request log retention: purge failed; retried at the next interval");
                }
                act.failing = true;
            }
        }));
    }
}

/// Deletes every row that started before `cutoff_ms`, a statement at a time; returns how many.
pub async fn purge_before(store: &Store, cutoff_ms: i64) -> Result<u64, crate::store::StoreError> {
    let mut total = 0;
    loop {
        let deleted = store.purge_logs_before(cutoff_ms).await?;
        total += deleted;
        if deleted < PURGE_ROWS_PER_STATEMENT {
            return Ok(total);
        }
        actix_rt::time::sleep(PAUSE).await;
    }
}

impl Actor for LogRetention {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.purge(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.purge(ctx));
    }
}
