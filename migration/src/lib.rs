//! Schema migrations of tollgate's store, for SQLite (the embedded default) and Postgres alike. The server runs
//! them at start-up and with `tollgate migrate`; each is append-only once released.

pub use sea_orm_migration::prelude::*;

mod m20261130_000001_keys_teams_users;
mod m20261130_000002_sessions_invitations;
mod m20261130_000010_request_log;
mod m20261130_080000_end_user_limits;
mod m20261201_000020_request_log_rowid;
mod m20261201_000030_usage_daily;
mod m20261202_000030_user_limits;
mod m20261203_000040_request_log_no_request_index;
mod m20261204_000050_request_log_partial_indexes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261130_000001_keys_teams_users::Migration),
            Box::new(m20261130_000002_sessions_invitations::Migration),
            Box::new(m20261130_000010_request_log::Migration),
            Box::new(m20261130_080000_end_user_limits::Migration),
            Box::new(m20261201_000020_request_log_rowid::Migration),
            Box::new(m20261201_000030_usage_daily::Migration),
            Box::new(m20261202_000030_user_limits::Migration),
            Box::new(m20261203_000040_request_log_no_request_index::Migration),
            Box::new(m20261204_000050_request_log_partial_indexes::Migration),
        ]
    }
}
