//! The read side's errors: [`HandlerError`] (what a handler returns: transient, tried
//! again, or fatal, which stops the consumer), [`ConsumerError`] (why a consumer stopped)
//! and [`QueryError`].

use eventum_core::{ErrorCode, StorageError, StorageErrorKind};
use tokio_postgres::error::SqlState;

/// A handler's failure. The batch's transaction is rolled back either way; a transient
/// failure is tried again after a backoff, a fatal one stops the consumer (the handler
/// cannot succeed on these events without a change of code or data).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    pub transient: bool,
}

impl HandlerError {
    /// A failure that a later try may not have (a timeout, a lost connection).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
        }
    }

    /// A failure that stops the consumer.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }
}

/// Whether a driver error may pass when tried again: no SQLSTATE (the connection was lost
/// or refused), connection exceptions, serialization failures and deadlocks, lack of
/// resources, the server shutting down.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || matches!(&code.code()[..2], "08" | "53" | "57")
        }
    }
}

impl From<tokio_postgres::Error> for HandlerError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self {
            transient: is_transient(&e),
            message: format!("postgres: {}", eventum_postgres::describe_error(&e)),
        }
    }
}

impl From<StorageError> for HandlerError {
    fn from(e: StorageError) -> Self {
        Self {
            transient: e.kind == StorageErrorKind::Unavailable,
            message: e.message,
        }
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(e: serde_json::Error) -> Self {
        Self::fatal(format!("json: {e}"))
    }
}

impl From<InvalidInput> for HandlerError {
    fn from(e: InvalidInput) -> Self {
        Self::fatal(e.to_string())
    }
}

/// A name, key, document or query outside the configured bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("{what} name is empty")]
    EmptyName { what: &'static str },
    #[error("{what} name is {len_bytes} bytes; at most {max_bytes}")]
    NameTooLong {
        what: &'static str,
        len_bytes: usize,
        max_bytes: usize,
    },
    #[error("{what} name {name:?} has a control character")]
    BadName { what: &'static str, name: String },
    #[error("document key is empty")]
    EmptyKey,
    #[error("document key is {len_bytes} bytes; at most {max_bytes}")]
    KeyTooLong { len_bytes: usize, max_bytes: usize },
    #[error("document {key:?} is {size_bytes} bytes of JSON; at most {max_bytes}")]
    DocTooLarge {
        key: String,
        size_bytes: usize,
        max_bytes: usize,
    },
    #[error("limit {limit} is outside 1..={max}")]
    BadLimit { limit: usize, max: usize },
    #[error("JSON pointer {0:?} must be non-empty and start with '/'")]
    BadPointer(String),
}

/// Why a consumer stopped (also published as [`crate::ConsumerState::Failed`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerError {
    #[error("consumer {consumer}: {source}")]
    Invalid {
        consumer: String,
        #[source]
        source: InvalidInput,
    },
    #[error(
        "consumer {consumer}: the batch at positions {first}..={last} failed after {attempts} \
         attempt(s), nothing of it committed: {source}"
    )]
    Batch {
        consumer: String,
        first: u64,
        last: u64,
        attempts: u32,
        #[source]
        source: HandlerError,
    },
    #[error("consumer {consumer}: {source}")]
    Storage {
        consumer: String,
        #[source]
        source: StorageError,
    },
    #[error("consumer {consumer}: the event store ended the subscription (shut down)")]
    EventStoreClosed { consumer: String },
    #[error(
        "consumer {consumer}: its checkpoint moved back from {expected} to {found} (reset by \
         someone else); restart the consumer to follow it"
    )]
    CheckpointMovedBack {
        consumer: String,
        expected: u64,
        found: u64,
    },
}

impl ConsumerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ConsumerError::Invalid { .. } => ErrorCode::InvalidInput,
            ConsumerError::Storage { source, .. } => source.code(),
            ConsumerError::EventStoreClosed { .. } => ErrorCode::Unavailable,
            ConsumerError::Batch { .. } | ConsumerError::CheckpointMovedBack { .. } => {
                ErrorCode::StorageFailed
            }
        }
    }
}

/// Why a query failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl QueryError {
    pub fn code(&self) -> ErrorCode {
        match self {
            QueryError::Invalid(_) => ErrorCode::InvalidInput,
            QueryError::Storage(e) => e.code(),
        }
    }
}

/// Maps a driver error onto the store's [`StorageError`] kinds.
pub(crate) fn storage(e: tokio_postgres::Error) -> StorageError {
    eventum_postgres::storage_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_transient_or_fatal() {
        let lost = StorageError::new(StorageErrorKind::Unavailable, "gone");
        assert!(HandlerError::from(lost).transient);
        let corrupt = StorageError::new(StorageErrorKind::Corrupt, "bad");
        assert!(!HandlerError::from(corrupt).transient);
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert!(!HandlerError::from(json).transient);
    }
}
