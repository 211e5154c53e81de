//! The store's own errors ([`OpenError`]) and the mapping of PostgreSQL and pool failures
//! onto `eventum_core`'s [`StorageError`] kinds.

use eventum_core::{ErrorCode, StorageError, StorageErrorKind};
use tokio_postgres::error::SqlState;

/// Why [`crate::PgStore::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid PostgreSQL configuration: {0}")]
    InvalidConfig(String),
    #[error(
        "schema {schema} is at migration version {found}, newer than this build knows ({known}); \
         upgrade eventum before opening it"
    )]
    SchemaTooNew {
        schema: String,
        found: i32,
        known: i32,
    },
    #[error("PostgreSQL at {url}: {source}")]
    Storage {
        url: String,
        #[source]
        source: StorageError,
    },
}

impl OpenError {
    pub fn code(&self) -> ErrorCode {
        match self {
            OpenError::InvalidConfig(_) => ErrorCode::InvalidInput,
            OpenError::SchemaTooNew { .. } => ErrorCode::Corrupt,
            OpenError::Storage { source, .. } => source.code(),
        }
    }
}

/// Maps a driver error: lost or refused connections and server shutdowns are
/// `Unavailable`, a full disk is `DiskFull`, data errors are `Corrupt`, the rest `Io`.
pub fn storage(e: tokio_postgres::Error) -> StorageError {
    let kind = match e.code() {
        None => StorageErrorKind::Unavailable,
        Some(code) => kind_of(code),
    };
    StorageError::new(kind, format!("postgres: {}", describe(&e)))
}

/// The driver error with its causes ("db error" alone says nothing: the server's message,
/// e.g. `ERROR: duplicate key value …`, is its source).
pub fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn kind_of(code: &SqlState) -> StorageErrorKind {
    let class = &code.code()[..2];
    if *code == SqlState::DISK_FULL {
        StorageErrorKind::DiskFull
    } else if matches!(class, "08" | "53" | "57" | "58") {
        // Connection exceptions, insufficient resources, operator intervention (shutdown,
        // cancel) and system errors: the server cannot serve now.
        StorageErrorKind::Unavailable
    } else if matches!(class, "22" | "XX") {
        StorageErrorKind::Corrupt
    } else {
        StorageErrorKind::Io
    }
}

/// A pool failure (no connection within the wait bound, server unreachable).
pub fn pool(e: deadpool_postgres::PoolError) -> StorageError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => storage(e),
        other => StorageError::new(
            StorageErrorKind::Unavailable,
            format!("postgres pool: {other}"),
        ),
    }
}

/// A stored value that does not decode (a negative version, bad JSON metadata).
pub(crate) fn corrupt(what: impl Into<String>) -> StorageError {
    StorageError::new(StorageErrorKind::Corrupt, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_states_map_to_kinds() {
        assert_eq!(kind_of(&SqlState::DISK_FULL), StorageErrorKind::DiskFull);
        assert_eq!(
            kind_of(&SqlState::ADMIN_SHUTDOWN),
            StorageErrorKind::Unavailable
        );
        assert_eq!(
            kind_of(&SqlState::CONNECTION_FAILURE),
            StorageErrorKind::Unavailable
        );
        assert_eq!(
            kind_of(&SqlState::TOO_MANY_CONNECTIONS),
            StorageErrorKind::Unavailable
        );
        assert_eq!(
            kind_of(&SqlState::DATA_CORRUPTED),
            StorageErrorKind::Corrupt
        );
        assert_eq!(kind_of(&SqlState::UNIQUE_VIOLATION), StorageErrorKind::Io);
    }
}
