//! Teams and their memberships in the store. Deleting a team deletes its keys and memberships in the same
//! transaction (explicitly: SQLite enforces foreign keys only on the connection that turned them on).

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use tollgate_entity::db::{membership, team, virtual_key};

use super::{Store, StoreError};

pub use membership::Model as MembershipRow;
pub use team::Model as TeamRow;

impl Store {
    pub async fn insert_team(&self, row: TeamRow) -> Result<TeamRow, StoreError> {
        Ok(team::ActiveModel::from(row).reset_all().insert(&self.db).await?)
    }

    pub async fn team_by_id(&self, team_id: &str) -> Result<Option<TeamRow>, StoreError> {
        Ok(team::Entity::find_by_id(team_id.to_owned()).one(&self.db).await?)
    }

    /// Teams in creation order; only `ids` when given.
    pub async fn list_teams(&self, ids: Option<&[String]>) -> Result<Vec<TeamRow>, StoreError> {
        let mut query = team::Entity::find();
        if let Some(ids) = ids {
            query = query.filter(team::Column::TeamId.is_in(ids.iter().map(String::as_str)));
        }
        Ok(query.order_by_asc(team::Column::CreatedAt).order_by_asc(team::Column::TeamId).all(&self.db).await?)
    }

    /// Writes every column of `row`; `None` when the team does not exist.
    pub async fn update_team(&self, row: TeamRow) -> Result<Option<TeamRow>, StoreError> {
        if self.team_by_id(&row.team_id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(team::ActiveModel::from(row).reset_all().update(&self.db).await?))
    }

    /// Deletes the teams with these ids, their memberships and their keys; returns the teams that existed and
    /// the hashes of the keys deleted with them.
    pub async fn delete_teams(&self, ids: &[String]) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let tx = self.db.begin().await?;
        let found: Vec<String> = team::Entity::find()
            .filter(team::Column::TeamId.is_in(ids.iter().map(String::as_str)))
            .all(&tx)
            .await?
            .into_iter()
            .map(|t| t.team_id)
            .collect();
        let in_found = || found.iter().map(String::as_str);
        let keys: Vec<String> = virtual_key::Entity::find()
            .filter(virtual_key::Column::TeamId.is_in(in_found()))
            .all(&tx)
            .await?
            .into_iter()
            .map(|k| k.token_hash)
            .collect();
        virtual_key::Entity::delete_many().filter(virtual_key::Column::TeamId.is_in(in_found())).exec(&tx).await?;
        membership::Entity::delete_many().filter(membership::Column::TeamId.is_in(in_found())).exec(&tx).await?;
        team::Entity::delete_many().filter(team::Column::TeamId.is_in(in_found())).exec(&tx).await?;
        tx.commit().await?;
        Ok((found, keys))
    }

    /// The members of a team, oldest first.
    pub async fn team_members(&self, team_id: &str) -> Result<Vec<MembershipRow>, StoreError> {
        Ok(membership::Entity::find()
            .filter(membership::Column::TeamId.eq(team_id))
            .order_by_asc(membership::Column::CreatedAt)
            .order_by_asc(membership::Column::UserId)
            .all(&self.db)
            .await?)
    }

    /// One membership, if the user is in the team.
    pub async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<MembershipRow>, StoreError> {
        Ok(membership::Entity::find_by_id((team_id.to_owned(), user_id.to_owned())).one(&self.db).await?)
    }

    /// The teams a user belongs to.
    pub async fn memberships_of(&self, user_id: &str) -> Result<Vec<MembershipRow>, StoreError> {
        Ok(membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id))
            .order_by_asc(membership::Column::TeamId)
            .all(&self.db)
            .await?)
    }

    /// Adds or replaces a membership (same team and user).
    pub async fn put_membership(&self, row: MembershipRow) -> Result<(), StoreError> {
        let tx = self.db.begin().await?;
        membership::Entity::delete_by_id((row.team_id.clone(), row.user_id.clone())).exec(&tx).await?;
        membership::ActiveModel::from(row).reset_all().insert(&tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a membership; `false` when there was none.
    pub async fn delete_membership(&self, team_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let done = membership::Entity::delete_by_id((team_id.to_owned(), user_id.to_owned())).exec(&self.db).await?;
        Ok(done.rows_affected > 0)
    }
}
