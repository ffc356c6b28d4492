//! Sign-in sessions and invitations. Both are addressed by the SHA-256 (hex) of a random token the caller holds:
//! the database never holds a value that would let its reader sign in or claim an invitation.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Session {
    Table,
    TokenHash,
    /// `None`: a session opened with the master key.
    UserId,
    ExpiresAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Invitation {
    Table,
    IdHash,
    UserId,
    ExpiresAt,
    AcceptedAt,
    CreatedBy,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Session::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Session::TokenHash).text().not_null().primary_key())
                    .col(ColumnDef::new(Session::UserId).text())
                    .col(ColumnDef::new(Session::ExpiresAt).big_integer().not_null())
                    .col(ColumnDef::new(Session::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_session_user")
                    .table(Session::Table)
                    .col(Session::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Invitation::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Invitation::IdHash).text().not_null().primary_key())
                    .col(ColumnDef::new(Invitation::UserId).text().not_null())
                    .col(ColumnDef::new(Invitation::ExpiresAt).big_integer().not_null())
                    .col(ColumnDef::new(Invitation::AcceptedAt).big_integer())
                    .col(ColumnDef::new(Invitation::CreatedBy).text())
                    .col(ColumnDef::new(Invitation::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Invitation::Table).if_exists().to_owned()).await?;
        manager.drop_table(Table::drop().table(Session::Table).if_exists().to_owned()).await
    }
}
