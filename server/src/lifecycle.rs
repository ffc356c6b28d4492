//! Process lifecycle shared by the request path and shutdown: the in-flight request count and the draining
//! flag that turns readiness to 503 after SIGTERM.

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Arc,
};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    in_flight: AtomicU64,
    idle: Notify,
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts a request (and its streamed body) as in flight until the guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Resolves once nothing is in flight.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Guard for one in-flight request; moves into the response body when the response streams.
#[derive(Debug)]
pub struct InFlight(Arc<Lifecycle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[actix_rt::test]
    async fn wait_idle_returns_when_last_guard_drops() {
        let life = Arc::new(Lifecycle::default());
        let a = life.enter();
        let b = life.enter();
        assert_eq!(life.in_flight(), 2);
        let waiter = {
            let life = life.clone();
            actix_rt::spawn(async move { life.wait_idle().await })
        };
        drop(a);
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(b);
        let done = actix_rt::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(done.is_ok());
    }
}
