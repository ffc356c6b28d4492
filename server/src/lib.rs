//! tollgate: a self-hosted AI gateway. One OpenAI-compatible endpoint in front of many LLM providers.
//!
//! The binary (`main.rs`) parses the command line and calls into this library; integration tests link the same
//! code. See ARCHITECTURE.md for the map.

pub mod actors;
pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod lifecycle;
pub mod pipeline;
pub mod pricing;
pub mod providers;
pub mod routing;
pub mod secret;
pub mod telemetry;
pub mod upstream;
