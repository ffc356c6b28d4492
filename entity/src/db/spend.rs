use sea_orm::entity::prelude::*;

/// Spend of one entity (`key`, `team`, `user`, `end_user`, `key_model`) in one budget period, starting at
/// `period_start` (0 for an entity without a budget period: its lifetime).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "spend")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity_kind: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub period_start: i64,
    pub spend_nanos: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
