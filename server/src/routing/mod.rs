//! Routing: which deployment serves a request. `strategy.rs` holds the pure decisions (unit-tested tables),
//! `fallback.rs` what a failed call leads to (retry, another group, or stop), `circuit.rs` when failures take a
//! deployment out (cooldown), `rules.rs` the seed's rules (context windows, capabilities, cost threshold, weighted
//! round robin),
//! `table.rs` the immutable snapshot the request path reads, `stats.rs` the live per-deployment atomics.
//!
//! Contract: no I/O and no waiting here; the router actor builds and publishes tables, the request path only reads.

pub mod circuit;
pub mod fallback;
pub mod rules;
pub mod stats;
pub mod strategy;
pub mod table;

pub use table::{Deployment, RoutingTable};
