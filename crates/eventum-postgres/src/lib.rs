//! Eventum's event store on PostgreSQL: the [`eventum_core::EventStore`] contract with
//! gap-free global positions in commit order, subscriptions fed by LISTEN/NOTIFY with a
//! polling fallback, and the schema as versioned migrations.
//!
//! ```no_run
//! # async fn demo() -> Result<(), eventum_postgres::OpenError> {
//! let store = eventum_postgres::PgStore::open(
//!     eventum_postgres::PgConfig::new("postgres://postgres@127.0.0.1:5432/test"),
//! )
//! .await?;
//! # Ok(()) }
//! ```

mod append;
pub mod baseline;
mod config;
pub mod connect;
mod error;
mod follow;
mod group;
mod group_commit;
mod group_sql;
pub mod migrate;
mod read;
mod store;

pub use config::PgConfig;
pub use error::{
    OpenError, describe as describe_error, pool as pool_error, storage as storage_error,
};
pub use store::{GroupCommitStats, PgStore};
