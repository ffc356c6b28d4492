use sea_orm::entity::prelude::*;

/// A person who signs in to manage keys (LiteLLM's "internal user").
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "app_user")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub email: Option<String>,
    /// LiteLLM's `user_role`: `proxy_admin`, `proxy_admin_viewer`, `internal_user`, `internal_user_viewer`.
    pub user_role: String,
    /// Argon2id PHC string; `None` until the invited user sets a password.
    pub password_hash: Option<String>,
    /// `invited` or `active`.
    pub status: String,
    pub max_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub metadata: Json,
    pub created_at: i64,
    pub updated_at: i64,
    /// Rate limits shared by every key the user owns (added by `m20261202_000030_user_limits`).
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
