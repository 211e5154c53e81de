//! `eventum serve --store`: which backend serves — the embedded log in `--data` (the
//! default) or PostgreSQL when `--store postgres://…` is given.

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use eventum_core::EventStore;
use eventum_log::{LogConfig, LogStore, OpenError};
use eventum_postgres::{PgConfig, PgStore};

/// The opened store, kept concrete so that shutdown reaches the backend.
pub enum OpenedStore {
    Log(Arc<LogStore>),
    Postgres(Arc<PgStore>),
}

/// Whether `store` names a PostgreSQL server.
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

impl OpenedStore {
    /// Opens PostgreSQL when `store` is a `postgres://` URL, else the log in `data`.
    pub async fn open(
        store: Option<&str>,
        pg_schema: &str,
        data: &Path,
        log_config: LogConfig,
    ) -> anyhow::Result<Self> {
        match store {
            Some(url) if is_postgres_url(url) => {
                let mut config = PgConfig::new(url).with_schema(pg_schema);
                config.limits = log_config.limits;
                let store = PgStore::open(config).await.map_err(|e| {
                    anyhow!("cannot open the PostgreSQL store (schema {pg_schema}): {e}")
                })?;
                Ok(Self::Postgres(store))
            }
            Some(other) => Err(anyhow!(
                "--store {other:?}: expected a postgres:// URL (omit --store for the embedded log)"
            )),
            None => {
                let dir = data.to_path_buf();
                // Opening may replay the log after a crash: blocking work, off the async workers.
                let store = tokio::task::spawn_blocking(move || LogStore::open(&dir, log_config))
                    .await?
                    .map_err(|e| match e {
                        OpenError::Locked { .. } => {
                            anyhow!("{e}; is another `eventum serve` using it?")
                        }
                        e => anyhow::Error::new(e)
                            .context(format!("cannot open data directory {}", data.display())),
                    })?;
                Ok(Self::Log(store))
            }
        }
    }

    pub fn as_dyn(&self) -> Arc<dyn EventStore> {
        match self {
            Self::Log(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    /// Where the events live, for the listening line.
    pub fn describe(&self, data: &Path) -> String {
        match self {
            Self::Log(_) => format!("data: {}", data.display()),
            Self::Postgres(s) => format!(
                "store: postgres schema {}, data: {}",
                s.config().schema,
                data.display()
            ),
        }
    }

    pub fn shutdown(&self) {
        match self {
            Self::Log(s) => s.shutdown(),
            Self::Postgres(s) => s.shutdown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_postgres_urls() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://u@h/db"));
        assert!(!is_postgres_url("./data"));
    }
}
