//! The leaf of the crate: the domain types every other module shares. What a caller asked for (the request view),
//! what a call used (token usage), and why an upstream call failed (failure classes).
//!
//! Contract: no I/O, no clocks, no actix or HTTP types, and no imports from any other module of this crate;
//! providers, pipeline, routing, pricing and actors stand on it, it stands on nothing. Checked by
//! `scripts/check_layering.py` (run by `scripts/test.sh`).

pub mod chat;
pub mod embed;
pub mod failure;
pub mod request;
pub mod tokens;
pub mod usage;

pub use failure::{ErrorClass, PerClass, UpstreamError, UpstreamFailure};
pub use request::{ChatRequest, CompletionRequest, EmbeddingsRequest, Inbound, MessagesRequest, RequestError};
pub use usage::Usage;
