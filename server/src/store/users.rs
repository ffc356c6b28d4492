//! Users, their sign-in sessions and invitations in the store. Sessions and invitations are found by the hash of
//! the token their holder has, never by the token.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait};
use tollgate_entity::db::{app_user, invitation, membership, session, virtual_key};

use super::{Store, StoreError};

pub use app_user::Model as UserRow;
pub use invitation::Model as InvitationRow;
pub use session::Model as SessionRow;

impl Store {
    pub async fn insert_user(&self, row: UserRow) -> Result<UserRow, StoreError> {
        Ok(app_user::ActiveModel::from(row).reset_all().insert(&self.db).await?)
    }

    pub async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(app_user::Entity::find_by_id(user_id.to_owned()).one(&self.db).await?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(app_user::Entity::find().filter(app_user::Column::Email.eq(email)).one(&self.db).await?)
    }

    /// Users in creation order, one page (from 1) of `size`, optionally of one role; and how many match.
    pub async fn list_users(
        &self,
        role: Option<&str>,
        page: u64,
        size: u64,
    ) -> Result<(Vec<UserRow>, u64), StoreError> {
        let mut query = app_user::Entity::find();
        if let Some(role) = role {
            query = query.filter(app_user::Column::UserRole.eq(role));
        }
        let pages = query
            .order_by_asc(app_user::Column::CreatedAt)
            .order_by_asc(app_user::Column::UserId)
            .paginate(&self.db, size);
        let total = pages.num_items().await?;
        Ok((pages.fetch_page(page.saturating_sub(1)).await?, total))
    }

    /// Writes every column of `row`; `None` when the user does not exist.
    pub async fn update_user(&self, row: UserRow) -> Result<Option<UserRow>, StoreError> {
        if self.user_by_id(&row.user_id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(app_user::ActiveModel::from(row).reset_all().update(&self.db).await?))
    }

    /// Deletes users with their memberships, sessions and invitations (their keys stay, as LiteLLM's do, owned by
    /// nobody). Returns the users that existed.
    pub async fn delete_users(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin().await?;
        let found: Vec<String> = app_user::Entity::find()
            .filter(app_user::Column::UserId.is_in(ids.iter().map(String::as_str)))
            .all(&tx)
            .await?
            .into_iter()
            .map(|u| u.user_id)
            .collect();
        let in_found = || found.iter().map(String::as_str);
        membership::Entity::delete_many().filter(membership::Column::UserId.is_in(in_found())).exec(&tx).await?;
        session::Entity::delete_many().filter(session::Column::UserId.is_in(in_found())).exec(&tx).await?;
        invitation::Entity::delete_many().filter(invitation::Column::UserId.is_in(in_found())).exec(&tx).await?;
        app_user::Entity::delete_many().filter(app_user::Column::UserId.is_in(in_found())).exec(&tx).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Keys owned by a user.
    pub async fn user_keys(&self, user_id: &str) -> Result<Vec<super::keys::KeyRow>, StoreError> {
        Ok(virtual_key::Entity::find()
            .filter(virtual_key::Column::UserId.eq(user_id))
            .order_by_asc(virtual_key::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    pub async fn insert_session(&self, row: SessionRow) -> Result<(), StoreError> {
        session::ActiveModel::from(row).reset_all().insert(&self.db).await?;
        Ok(())
    }

    pub async fn session_by_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(session::Entity::find_by_id(token_hash.to_owned()).one(&self.db).await?)
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        session::Entity::delete_by_id(token_hash.to_owned()).exec(&self.db).await?;
        Ok(())
    }

    /// Ends every session of a user (a changed password or role must not leave old sessions signed in).
    pub async fn delete_user_sessions(&self, user_id: &str) -> Result<(), StoreError> {
        session::Entity::delete_many().filter(session::Column::UserId.eq(user_id)).exec(&self.db).await?;
        Ok(())
    }

    /// Removes sessions that expired before `now` (called at sign-in, so the table does not grow forever).
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<(), StoreError> {
        session::Entity::delete_many().filter(session::Column::ExpiresAt.lte(now)).exec(&self.db).await?;
        Ok(())
    }

    pub async fn insert_invitation(&self, row: InvitationRow) -> Result<(), StoreError> {
        invitation::ActiveModel::from(row).reset_all().insert(&self.db).await?;
        Ok(())
    }

    pub async fn invitation_by_hash(&self, id_hash: &str) -> Result<Option<InvitationRow>, StoreError> {
        Ok(invitation::Entity::find_by_id(id_hash.to_owned()).one(&self.db).await?)
    }

    /// Marks the invitation accepted and stores the user's new state, in one transaction; `false` when the
    /// invitation was accepted meanwhile (it can be claimed once).
    pub async fn claim_invitation(&self, id_hash: &str, now: i64, user: UserRow) -> Result<bool, StoreError> {
        let tx = self.db.begin().await?;
        let claimed = invitation::Entity::update_many()
            .col_expr(invitation::Column::AcceptedAt, sea_orm::sea_query::Expr::value(now))
            .filter(invitation::Column::IdHash.eq(id_hash))
            .filter(invitation::Column::AcceptedAt.is_null())
            .exec(&tx)
            .await?;
        if claimed.rows_affected != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        app_user::ActiveModel::from(user).reset_all().update(&tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}
