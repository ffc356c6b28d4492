//! `GET /health/readiness` body. Kubernetes only reads the status code; humans read this.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessStatus {
    Healthy,
    /// SIGTERM received: finishing in-flight work, load balancers should stop sending traffic.
    Draining,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub status: ReadinessStatus,
    pub version: String,
    pub in_flight_requests: u64,
    pub model_groups: usize,
}
