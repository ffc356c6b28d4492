//! API types shared by the tollgate server and (later) the WASM dashboard.
//!
//! Plain serde types only: this crate must stay wasm-safe. The store's SeaORM entities are behind the `db` feature
//! (`db`), which only the server turns on; nothing outside it may depend on server-only crates.

#[cfg(feature = "db")]
pub mod db;
pub mod error;
pub mod health;
pub mod models;

pub use error::{ErrorBody, ErrorDetail};
pub use health::{Readiness, ReadinessStatus};
pub use models::{ModelCard, ModelList};
