//! Virtual keys in the store, addressed by their SHA-256 (hex), never by value.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait};
use tollgate_entity::db::virtual_key::{self, ActiveModel, Column, Entity, Model};

use super::{Store, StoreError};

/// Which keys `/key/list` shows.
#[derive(Debug, Default, Clone)]
pub struct KeyFilter {
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub key_alias: Option<String>,
    /// Only keys of these teams (a member's view); `None`: any key.
    pub team_ids: Option<Vec<String>>,
}

impl Store {
    pub async fn insert_key(&self, key: Model) -> Result<Model, StoreError> {
        Ok(ActiveModel::from(key).reset_all().insert(&self.db).await?)
    }

    pub async fn key_by_hash(&self, hash_hex: &str) -> Result<Option<Model>, StoreError> {
        Ok(Entity::find_by_id(hash_hex.to_owned()).one(&self.db).await?)
    }

    /// Keys matching `filter`, oldest first, one page (from 1) of `size`; and how many match in all.
    pub async fn list_keys(&self, filter: &KeyFilter, page: u64, size: u64) -> Result<(Vec<Model>, u64), StoreError> {
        let mut query = Entity::find();
        if let Some(user) = &filter.user_id {
            query = query.filter(Column::UserId.eq(user.as_str()));
        }
        if let Some(team) = &filter.team_id {
            query = query.filter(Column::TeamId.eq(team.as_str()));
        }
        if let Some(teams) = &filter.team_ids {
            query = query.filter(Column::TeamId.is_in(teams.iter().map(String::as_str)));
        }
        if let Some(alias) = &filter.key_alias {
            query = query.filter(Column::KeyAlias.eq(alias.as_str()));
        }
        let pages = query.order_by_asc(Column::CreatedAt).order_by_asc(Column::TokenHash).paginate(&self.db, size);
        let total = pages.num_items().await?;
        let keys = pages.fetch_page(page.saturating_sub(1)).await?;
        Ok((keys, total))
    }

    /// Writes every column of `key` (found by its hash); `None` when no such key exists.
    pub async fn update_key(&self, key: Model) -> Result<Option<Model>, StoreError> {
        if self.key_by_hash(&key.token_hash).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(ActiveModel::from(key).reset_all().update(&self.db).await?))
    }

    /// Deletes the keys with these hashes; returns those that existed.
    pub async fn delete_keys(&self, hashes: &[String]) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin().await?;
        let found: Vec<String> = Entity::find()
            .filter(Column::TokenHash.is_in(hashes.iter().map(String::as_str)))
            .all(&tx)
            .await?
            .into_iter()
            .map(|k| k.token_hash)
            .collect();
        Entity::delete_many().filter(Column::TokenHash.is_in(found.iter().map(String::as_str))).exec(&tx).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Hashes of the keys whose `created_by` is `creator`.
    pub async fn key_hashes_created_by(&self, creator: &str) -> Result<Vec<String>, StoreError> {
        let keys = Entity::find().filter(Column::CreatedBy.eq(creator)).all(&self.db).await?;
        Ok(keys.into_iter().map(|k| k.token_hash).collect())
    }

    /// Hashes of the keys with this alias.
    pub async fn key_hashes_by_alias(&self, alias: &str) -> Result<Vec<String>, StoreError> {
        let keys = Entity::find().filter(Column::KeyAlias.eq(alias)).all(&self.db).await?;
        Ok(keys.into_iter().map(|k| k.token_hash).collect())
    }

    /// Replaces the key `old_hash` by `new` (same settings, new value) in one transaction; `None` when `old_hash`
    /// does not exist.
    pub async fn replace_key(&self, old_hash: &str, new: Model) -> Result<Option<Model>, StoreError> {
        let tx = self.db.begin().await?;
        let deleted = Entity::delete_by_id(old_hash.to_owned()).exec(&tx).await?;
        if deleted.rows_affected == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let inserted = ActiveModel::from(new).reset_all().insert(&tx).await?;
        // The key's spend moves with it: a regenerated key must not start its budget again.
        super::spend::rename_key(&tx, old_hash, &inserted.token_hash).await?;
        tx.commit().await?;
        Ok(Some(inserted))
    }
}

pub use virtual_key::Model as KeyRow;
