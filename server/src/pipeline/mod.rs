//! The request path: auth -> parse -> route -> call -> stream/relay -> settle. Each stage is a module; the
//! handlers in `http/` only wire them together around one [`RequestCtx`].
//!
//! Architecture invariant: nothing here awaits an actor or touches a database; it reads the routing snapshot
//! and atomics, and reports to actors with `try_send`.

pub mod auth;
pub mod body;
pub mod call;
pub mod relay;
pub mod request;
pub mod settle;
pub mod sse;
pub mod usage;

use std::{sync::Arc, time::Instant};

/// Per-request context created once by the handler and passed through the stages.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// Also sent back as `x-tollgate-request-id` and upstream as `x-request-id`.
    pub request_id: Arc<str>,
    pub started: Instant,
}

impl RequestCtx {
    pub fn new(request_id: Arc<str>) -> Self {
        Self { request_id, started: Instant::now() }
    }

    /// Time spent in tollgate so far, in milliseconds.
    pub fn overhead_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }
}
