use sea_orm::entity::prelude::*;

/// The request log rolled up per UTC day and dimensions (`''` where a request had none), maintained in the same
/// transaction as the log rows. Money is nano-dollars; `unpriced_requests` counts requests whose cost is unknown.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_daily")]
pub struct Model {
    /// Days since 1970-01-01 (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_hash: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub team_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub end_user: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub model_group: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    /// `ok` or `error`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub status_class: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_nanos: i64,
    pub unpriced_requests: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
