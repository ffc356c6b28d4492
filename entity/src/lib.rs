//! API types shared by the tollgate server and (later) the WASM dashboard.
//!
//! Plain serde types only: this crate must stay wasm-safe. SeaORM entities arrive behind a `db` feature with the
//! storage work; nothing here may depend on server-only crates.

pub mod error;
pub mod health;
pub mod models;

pub use error::{ErrorBody, ErrorDetail};
pub use health::{Readiness, ReadinessStatus};
pub use models::{ModelCard, ModelList};
