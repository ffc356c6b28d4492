use sea_orm::entity::prelude::*;

/// How far the log writer of one journal has applied it: every record before `records` of segment `segment` (and
/// every earlier segment) is in the store. Written in the same transaction as the rows, so a replay skips them.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "log_cursor")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub journal_id: String,
    pub segment: i64,
    pub records: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
