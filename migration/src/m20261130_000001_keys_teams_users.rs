//! Teams, users, memberships, virtual keys, end users, and spend per entity and period.
//!
//! Money is integer nano-dollars (`i64`): sums are exact on both databases and a budget check compares integers.
//! Times are Unix seconds (`i64`). Lists and free-form maps are JSON.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The variants are column names: `team.team_id` is LiteLLM's spelling, so the enum's name repeats in them.

#[derive(DeriveIden)]
#[expect(clippy::enum_variant_names, reason = "column names")]
enum Team {
    Table,
    TeamId,
    TeamAlias,
    Models,
    MaxBudgetNanos,
    BudgetDuration,
    BudgetResetAt,
    SoftBudgetNanos,
    RpmLimit,
    TpmLimit,
    MaxParallelRequests,
    Blocked,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AppUser {
    Table,
    UserId,
    Email,
    UserRole,
    PasswordHash,
    Status,
    MaxBudgetNanos,
    BudgetDuration,
    BudgetResetAt,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Membership {
    Table,
    TeamId,
    UserId,
    Role,
    MaxBudgetNanos,
    CreatedAt,
}

#[derive(DeriveIden)]
enum VirtualKey {
    Table,
    TokenHash,
    KeyName,
    KeyAlias,
    UserId,
    TeamId,
    Models,
    MaxBudgetNanos,
    BudgetDuration,
    BudgetResetAt,
    SoftBudgetNanos,
    ModelMaxBudget,
    RpmLimit,
    TpmLimit,
    MaxParallelRequests,
    ModelRpmLimit,
    ModelTpmLimit,
    ExpiresAt,
    Blocked,
    Metadata,
    CreatedBy,
    UpdatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum EndUser {
    Table,
    UserId,
    Alias,
    MaxBudgetNanos,
    BudgetDuration,
    BudgetResetAt,
    Blocked,
    CreatedAt,
}

#[derive(DeriveIden)]
#[expect(clippy::enum_variant_names, reason = "column names")]
enum Spend {
    Table,
    EntityKind,
    EntityId,
    PeriodStart,
    SpendNanos,
    UpdatedAt,
}

fn text(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).text().to_owned()
}

fn big(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).big_integer().to_owned()
}

fn flag(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().default(false).to_owned()
}

fn json(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).json().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Team::Table)
                    .if_not_exists()
                    .col(text(Team::TeamId).not_null().primary_key())
                    .col(text(Team::TeamAlias))
                    .col(json(Team::Models).not_null())
                    .col(big(Team::MaxBudgetNanos))
                    .col(text(Team::BudgetDuration))
                    .col(big(Team::BudgetResetAt))
                    .col(big(Team::SoftBudgetNanos))
                    .col(big(Team::RpmLimit))
                    .col(big(Team::TpmLimit))
                    .col(big(Team::MaxParallelRequests))
                    .col(flag(Team::Blocked))
                    .col(json(Team::Metadata).not_null())
                    .col(big(Team::CreatedAt).not_null())
                    .col(big(Team::UpdatedAt).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AppUser::Table)
                    .if_not_exists()
                    .col(text(AppUser::UserId).not_null().primary_key())
                    .col(text(AppUser::Email).unique_key())
                    .col(text(AppUser::UserRole).not_null())
                    .col(text(AppUser::PasswordHash))
                    .col(text(AppUser::Status).not_null())
                    .col(big(AppUser::MaxBudgetNanos))
                    .col(text(AppUser::BudgetDuration))
                    .col(big(AppUser::BudgetResetAt))
                    .col(json(AppUser::Metadata).not_null())
                    .col(big(AppUser::CreatedAt).not_null())
                    .col(big(AppUser::UpdatedAt).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Membership::Table)
                    .if_not_exists()
                    .col(text(Membership::TeamId).not_null())
                    .col(text(Membership::UserId).not_null())
                    .col(text(Membership::Role).not_null())
                    .col(big(Membership::MaxBudgetNanos))
                    .col(big(Membership::CreatedAt).not_null())
                    .primary_key(Index::create().col(Membership::TeamId).col(Membership::UserId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Membership::Table, Membership::TeamId)
                            .to(Team::Table, Team::TeamId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Membership::Table, Membership::UserId)
                            .to(AppUser::Table, AppUser::UserId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(VirtualKey::Table)
                    .if_not_exists()
                    .col(text(VirtualKey::TokenHash).not_null().primary_key())
                    .col(text(VirtualKey::KeyName).not_null())
                    .col(text(VirtualKey::KeyAlias))
                    .col(text(VirtualKey::UserId))
                    .col(text(VirtualKey::TeamId))
                    .col(json(VirtualKey::Models).not_null())
                    .col(big(VirtualKey::MaxBudgetNanos))
                    .col(text(VirtualKey::BudgetDuration))
                    .col(big(VirtualKey::BudgetResetAt))
                    .col(big(VirtualKey::SoftBudgetNanos))
                    .col(json(VirtualKey::ModelMaxBudget).not_null())
                    .col(big(VirtualKey::RpmLimit))
                    .col(big(VirtualKey::TpmLimit))
                    .col(big(VirtualKey::MaxParallelRequests))
                    .col(json(VirtualKey::ModelRpmLimit).not_null())
                    .col(json(VirtualKey::ModelTpmLimit).not_null())
                    .col(big(VirtualKey::ExpiresAt))
                    .col(flag(VirtualKey::Blocked))
                    .col(json(VirtualKey::Metadata).not_null())
                    .col(text(VirtualKey::CreatedBy))
                    .col(text(VirtualKey::UpdatedBy))
                    .col(big(VirtualKey::CreatedAt).not_null())
                    .col(big(VirtualKey::UpdatedAt).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(VirtualKey::Table, VirtualKey::TeamId)
                            .to(Team::Table, Team::TeamId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_virtual_key_team")
                    .table(VirtualKey::Table)
                    .col(VirtualKey::TeamId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_virtual_key_user")
                    .table(VirtualKey::Table)
                    .col(VirtualKey::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EndUser::Table)
                    .if_not_exists()
                    .col(text(EndUser::UserId).not_null().primary_key())
                    .col(text(EndUser::Alias))
                    .col(big(EndUser::MaxBudgetNanos))
                    .col(text(EndUser::BudgetDuration))
                    .col(big(EndUser::BudgetResetAt))
                    .col(flag(EndUser::Blocked))
                    .col(big(EndUser::CreatedAt).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Spend::Table)
                    .if_not_exists()
                    .col(text(Spend::EntityKind).not_null())
                    .col(text(Spend::EntityId).not_null())
                    .col(big(Spend::PeriodStart).not_null())
                    .col(big(Spend::SpendNanos).not_null().default(0))
                    .col(big(Spend::UpdatedAt).not_null())
                    .primary_key(Index::create().col(Spend::EntityKind).col(Spend::EntityId).col(Spend::PeriodStart))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Spend::Table.into_iden(),
            EndUser::Table.into_iden(),
            VirtualKey::Table.into_iden(),
            Membership::Table.into_iden(),
            AppUser::Table.into_iden(),
            Team::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
