use sea_orm::entity::prelude::*;

/// An end user: the request's `user` field (LiteLLM's "customer").
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "end_user")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub alias: Option<String>,
    pub max_budget_nanos: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub blocked: bool,
    pub created_at: i64,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
