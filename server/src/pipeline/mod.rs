//! The request path: auth -> parse -> route -> call -> stream/relay -> settle. Each stage is a module; the
//! handlers in `http/` only wire them together around one [`RequestCtx`].
//!
//! Architecture invariant: nothing here awaits an actor or touches a database; it reads the routing snapshot
//! and atomics, and reports to actors with `try_send`.

pub mod auth;
pub mod body;
pub mod budget;
pub mod call;
pub mod hedge;
pub mod limit;
pub mod peek;
pub mod prime;
pub mod probe;
pub mod prompt;
pub mod relay;
pub mod route;
pub mod settle;
pub mod translate;

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    sync::Arc,
    time::Instant,
};

pub use crate::trace_context::TraceContext;
use crate::{limits::Ticket, logs::request::RequestLog};

/// Per-request context created once by the handler and passed through the stages.
#[derive(Debug)]
pub struct RequestCtx {
    /// Also sent back as `x-tollgate-request-id` and upstream as `x-request-id`.
    pub request_id: Arc<str>,
    pub started: Instant,
    /// Upstream calls made so far (`x-tollgate-attempts`). A `Cell`: the request's stages run on one thread.
    attempts: Cell<u32>,
    /// The model group serving the request when it is a fallback (`x-tollgate-fallback`).
    fallback: RefCell<Option<Arc<str>>>,
    /// A hedged call was sent (`x-tollgate-hedged`).
    hedged: Cell<bool>,
    /// Set by `hedge` only while it drops the call that lost a race: that call's settlement, dropped then, reads
    /// it (every settlement of the request holds a clone) and books the call as cancelled by the hedge.
    race_lost: Rc<Cell<bool>>,
    /// A health check, not a caller's request: its calls say so in their log lines and failure reports.
    pub health_check: bool,
    /// The request's W3C trace context (`traceparent`, and `tracestate` with it), forwarded on every upstream call
    /// so a provider's or a self-hosted server's traces join the caller's (through tollgate's span when spans are
    /// exported: `trace_context`).
    pub trace: Option<TraceContext>,
    /// The request-level log record every call's settlement adds to (none for health checks).
    log: Option<Arc<RequestLog>>,
    /// The request's rate-limit admission: each call's settlement counts its tokens there, and its parallel slots
    /// are given back when the last holder (this context, a streaming body's settlement) drops it.
    ticket: RefCell<Option<Arc<Ticket>>>,
}

impl RequestCtx {
    pub fn new(request_id: Arc<str>) -> Self {
        Self {
            request_id,
            started: Instant::now(),
            attempts: Cell::new(0),
            fallback: RefCell::new(None),
            hedged: Cell::new(false),
            race_lost: Rc::default(),
            health_check: false,
            trace: None,
            log: None,
            ticket: RefCell::new(None),
        }
    }

    /// This request's record in the request log.
    pub fn with_log(mut self, log: Arc<RequestLog>) -> Self {
        self.log = Some(log);
        self
    }

    pub fn log(&self) -> Option<&Arc<RequestLog>> {
        self.log.as_ref()
    }

    /// The context of a health check's call.
    pub fn health_check(request_id: Arc<str>) -> Self {
        Self { health_check: true, ..Self::new(request_id) }
    }

    /// Counts one more upstream call and returns the count so far.
    pub fn attempt(&self) -> u32 {
        let n = self.attempts.get() + 1;
        self.attempts.set(n);
        n
    }

    /// Upstream calls made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts.get()
    }

    pub fn set_hedged(&self) {
        self.hedged.set(true);
    }

    pub fn hedged(&self) -> bool {
        self.hedged.get()
    }

    /// The flag a call's settlement reads when it is dropped (see the field).
    pub fn race_lost(&self) -> Rc<Cell<bool>> {
        self.race_lost.clone()
    }

    /// Drops `loser`, a call that lost a hedged race, so that its settlement knows.
    pub fn drop_race_loser<T>(&self, loser: T) {
        self.race_lost.set(true);
        drop(loser);
        self.race_lost.set(false);
    }

    /// The request moved on to the fallback group `group`.
    pub fn set_fallback(&self, group: &str) {
        *self.fallback.borrow_mut() = Some(Arc::from(group));
    }

    /// The fallback group serving the request, if it is not the one asked for.
    pub fn fallback(&self) -> Option<Arc<str>> {
        self.fallback.borrow().clone()
    }

    pub fn set_ticket(&self, ticket: Option<Arc<Ticket>>) {
        *self.ticket.borrow_mut() = ticket;
    }

    pub fn ticket(&self) -> Option<Arc<Ticket>> {
        self.ticket.borrow().clone()
    }

    /// Time spent in tollgate so far, in milliseconds.
    pub fn overhead_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }
}
