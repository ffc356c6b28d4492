use sea_orm::entity::prelude::*;

/// One request, success or failure, as the log writer stores it. Times are Unix milliseconds; money is
/// nano-dollars, `None` when it could not be counted (`accounting` says why).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "request_log")]
pub struct Model {
    /// Insertion order (readers page by `started_at_ms`, then `id`).
    #[sea_orm(primary_key)]
    pub id: i64,
    pub request_id: String,
    pub started_at_ms: i64,
    pub first_byte_at_ms: Option<i64>,
    pub ended_at_ms: i64,
    pub key_hash: Option<String>,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub end_user: Option<String>,
    pub model_group: String,
    pub deployment: Option<String>,
    pub provider: Option<String>,
    pub api_base: Option<String>,
    pub route: String,
    pub streamed: bool,
    pub status: i32,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_nanos: Option<i64>,
    pub accounting: String,
    pub attempts: i32,
    pub fallback: Option<String>,
    pub tags: Json,
    pub client_ip: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
