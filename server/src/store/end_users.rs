//! End users (LiteLLM's customers): the request's `user` field, with limits.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use tollgate_entity::db::end_user::{ActiveModel, Column, Entity, Model};

use super::{Store, StoreError};

pub use tollgate_entity::db::end_user::Model as EndUserRow;

impl Store {
    pub async fn insert_end_user(&self, row: Model) -> Result<Model, StoreError> {
        Ok(ActiveModel::from(row).reset_all().insert(&self.db).await?)
    }

    pub async fn end_user(&self, id: &str) -> Result<Option<Model>, StoreError> {
        Ok(Entity::find_by_id(id.to_owned()).one(&self.db).await?)
    }

    /// Writes every column of `row`; `None` when no such end user exists.
    pub async fn update_end_user(&self, row: Model) -> Result<Option<Model>, StoreError> {
        if self.end_user(&row.user_id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(ActiveModel::from(row).reset_all().update(&self.db).await?))
    }

    /// Deletes these end users; returns the ids that existed.
    pub async fn delete_end_users(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let found: Vec<String> = Entity::find()
            .filter(Column::UserId.is_in(ids.iter().map(String::as_str)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| u.user_id)
            .collect();
        Entity::delete_many().filter(Column::UserId.is_in(found.iter().map(String::as_str))).exec(&self.db).await?;
        Ok(found)
    }

    /// One page (from 1) of `size` end users, oldest first, and how many there are.
    pub async fn list_end_users(&self, page: u64, size: u64) -> Result<(Vec<Model>, u64), StoreError> {
        let pages =
            Entity::find().order_by_asc(Column::CreatedAt).order_by_asc(Column::UserId).paginate(&self.db, size);
        let total = pages.num_items().await?;
        Ok((pages.fetch_page(page.saturating_sub(1)).await?, total))
    }
}
