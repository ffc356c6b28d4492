//! Rate limits on users (LiteLLM's internal users): `rpm_limit`, `tpm_limit`, `max_parallel_requests`, shared by
//! every key the user owns.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AppUser {
    Table,
    RpmLimit,
    TpmLimit,
    MaxParallelRequests,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [AppUser::RpmLimit, AppUser::TpmLimit, AppUser::MaxParallelRequests] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AppUser::Table)
                        .add_column(ColumnDef::new(column).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [AppUser::RpmLimit, AppUser::TpmLimit, AppUser::MaxParallelRequests] {
            manager.alter_table(Table::alter().table(AppUser::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
