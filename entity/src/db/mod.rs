//! The store's SeaORM entities (feature `db`; the WASM dashboard builds without it). The schema is
//! `migration/`'s; these mirror it column for column. Money is integer nano-dollars, times Unix seconds.

pub mod app_user;
pub mod end_user;
pub mod invitation;
pub mod log_cursor;
pub mod membership;
pub mod request_log;
pub mod session;
pub mod spend;
pub mod team;
pub mod usage_daily;
pub mod virtual_key;
