//! `GET /v1/models` response: one entry per model group a caller may use.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The public model group name (`model_name` in config), never the upstream model or deployment.
    pub id: String,
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

impl ModelList {
    pub fn new(data: Vec<ModelCard>) -> Self {
        Self { object: "list".into(), data }
    }
}
