//! Connecting: the driver configuration from a URL (with the connect timeout and the
//! application name) and the bounded connection pool whose connections use one schema.
//! Shared by the store and by the PostgreSQL read side (`eventum-postgres-projections`).

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::schema_is_valid;
use crate::error::{OpenError, storage};
use crate::migrate::{self, MigrationSet};

/// Where to connect and the pool's bounds.
#[derive(Clone, Debug)]
pub struct PoolSettings<'a> {
    pub url: &'a str,
    /// Every pooled connection runs with `search_path` set to this schema.
    pub schema: &'a str,
    pub pool_size_max: usize,
    pub pool_wait_ms_max: u64,
    pub connect_timeout_ms: u64,
}

/// The connection settings from `url` plus the connect timeout.
pub fn base_config(
    url: &str,
    connect_timeout_ms: u64,
) -> Result<tokio_postgres::Config, OpenError> {
    let mut base = tokio_postgres::Config::from_str(url)
        .map_err(|e| OpenError::InvalidConfig(format!("url {url:?}: {e}")))?;
    base.connect_timeout(Duration::from_millis(connect_timeout_ms));
    base.application_name("eventum");
    Ok(base)
}

/// Refuses a schema name that is not a plain lowercase identifier (it is spliced into SQL).
pub fn check_schema(schema: &str) -> Result<(), OpenError> {
    if schema_is_valid(schema) {
        Ok(())
    } else {
        Err(OpenError::InvalidConfig(format!(
            "schema {schema:?}: use lowercase letters, digits and _ (at most 48 bytes)"
        )))
    }
}

/// A pool of at most `pool_size_max` connections to `url` using `schema`; no connection is
/// made until the first is asked for.
pub fn pool(settings: &PoolSettings<'_>) -> Result<Pool, OpenError> {
    check_schema(settings.schema)?;
    if settings.pool_size_max == 0 {
        return Err(OpenError::InvalidConfig(
            "pool_size_max must be at least 1".into(),
        ));
    }
    let mut pooled = base_config(settings.url, settings.connect_timeout_ms)?;
    pooled.options(format!("-c search_path={}", settings.schema));
    let manager = Manager::from_config(
        pooled,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_size_max)
        .wait_timeout(Some(Duration::from_millis(settings.pool_wait_ms_max)))
        .create_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| OpenError::InvalidConfig(e.to_string()))
}

/// Applies the missing migrations of `set` to the schema on a connection of its own, then
/// builds the pool: what opening the store or the read side does first.
pub async fn migrate_and_pool(
    settings: &PoolSettings<'_>,
    set: &MigrationSet,
) -> Result<Pool, OpenError> {
    check_schema(settings.schema)?;
    if settings.pool_size_max == 0 {
        return Err(OpenError::InvalidConfig(
            "pool_size_max must be at least 1".into(),
        ));
    }
    let base = base_config(settings.url, settings.connect_timeout_ms)?;
    let (mut client, connection) = base.connect(NoTls).await.map_err(|e| OpenError::Storage {
        url: settings.url.to_owned(),
        source: storage(e),
    })?;
    let driver = tokio::spawn(connection);
    let migrated = migrate::apply(&mut client, settings.schema, settings.url, set).await;
    drop(client);
    let _ = driver.await;
    migrated?;
    pool(settings)
}
