//! tollgate: a self-hosted AI gateway. One OpenAI-compatible endpoint in front of many LLM providers.
//!
//! The binary (`main.rs`) parses the command line and calls into this library; integration tests link the same
//! code. See ARCHITECTURE.md for the map.

// Only what the binary and the integration tests use is public; everything else is crate-private so that dead
// code shows up as a warning.
pub(crate) mod access;
pub(crate) mod actors;
pub(crate) mod alerts;
pub mod app;
pub(crate) mod budgets;
pub mod cli;
pub(crate) mod clock;
pub mod config;
pub(crate) mod error;
pub(crate) mod framing;
/// Property-checking entry points for the fuzz targets in `fuzz/`; only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub(crate) mod hex;
pub(crate) mod http;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod llm;
pub(crate) mod logs;
pub(crate) mod pipeline;
pub(crate) mod pricing;
pub(crate) mod providers;
pub(crate) mod redis_pool;
pub(crate) mod routing;
pub mod secret;
pub(crate) mod shared_state;
pub(crate) mod store;
pub mod telemetry;
pub(crate) mod trace_context;
pub mod upstream;
