use sea_orm::entity::prelude::*;

/// A virtual key. Only its SHA-256 (hex) is stored; `key_name` is the display form `sk-...abcd`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "virtual_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub key_name: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// JSON array of model group names; empty means every model (the team's, when in a team).
    pub models: Json,
    pub max_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub soft_budget_nanos: Option<i64>,
    /// JSON map model → `{"max_budget": usd, "budget_duration": "1d"}` (LiteLLM's `model_max_budget`).
    pub model_max_budget: Json,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    /// JSON maps model → limit.
    pub model_rpm_limit: Json,
    pub model_tpm_limit: Json,
    pub expires_at: Option<i64>,
    pub blocked: bool,
    pub metadata: Json,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
