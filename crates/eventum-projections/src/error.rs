//! The errors of each read-side operation: opening the store ([`OpenError`]), queries
//! ([`QueryError`]), general transactions ([`TxError`]), a projection's `apply`
//! ([`ProjectionError`]) and running, catching up or rebuilding a projection
//! ([`RunError`]). Bad input ([`InvalidRequest`]) and domain refusals are kept apart from
//! technical failures (`eventum_core::StorageError`); each maps to an `ErrorCode`.

use std::path::PathBuf;

use eventum_core::{ErrorCode, ReadError, StorageError, StorageErrorKind};

/// Input that breaks a rule or a configured bound. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("{what} name is empty")]
    EmptyName { what: &'static str },
    #[error("{what} name is {len_bytes} bytes long; the limit is {max_bytes}")]
    NameTooLong {
        what: &'static str,
        len_bytes: usize,
        max_bytes: usize,
    },
    #[error("{what} name {name:?} may contain only ASCII letters, digits, '_', '-' and '.'")]
    BadNameCharacter { what: &'static str, name: String },
    #[error("consumer name {0:?} starts with '$', which is reserved for projections")]
    ReservedConsumerName(String),
    #[error("document key is empty")]
    EmptyKey,
    #[error("document key is {len_bytes} bytes long; the limit is {max_bytes}")]
    KeyTooLong { len_bytes: usize, max_bytes: usize },
    #[error("document {key:?} is {size_bytes} bytes; the limit is {max_bytes}")]
    DocTooLarge {
        key: String,
        size_bytes: usize,
        max_bytes: usize,
    },
    #[error("query limit {limit} is out of range 1..={max}")]
    LimitOutOfRange { limit: usize, max: usize },
    #[error("read model {model} has no lookup {lookup:?}")]
    UnknownLookup { model: String, lookup: String },
    #[error("lookup {lookup:?} value is {len_bytes} bytes long; the limit is {max_bytes}")]
    LookupValueTooLong {
        lookup: String,
        len_bytes: usize,
        max_bytes: usize,
    },
    #[error("document {key:?} has {count} values for lookup {lookup:?}; the limit is {max}")]
    TooManyLookupValues {
        key: String,
        lookup: String,
        count: usize,
        max: usize,
    },
    #[error("lookup {lookup:?}: pointer {pointer:?} must be empty or start with '/'")]
    BadLookupPointer { lookup: String, pointer: String },
    #[error("lookup {0:?} is declared twice")]
    DuplicateLookup(String),
}

impl InvalidRequest {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidInput
    }
}

/// Why the read-model store did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process (or another handle in this one) has the database open.
    #[error("read-model store {path} is in use by another process")]
    Locked { path: PathBuf },
    #[error("read-model store {path}: {message}")]
    Io { path: PathBuf, message: String },
}

impl OpenError {
    pub fn code(&self) -> ErrorCode {
        match self {
            OpenError::Locked { .. } => ErrorCode::Unavailable,
            OpenError::Io { .. } => ErrorCode::StorageFailed,
        }
    }
}

/// Why a query (`get`, `list`, `find`) answered nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("read model {model} does not exist")]
    ModelNotFound { model: String },
    #[error(transparent)]
    InvalidInput(#[from] InvalidRequest),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl QueryError {
    pub fn code(&self) -> ErrorCode {
        match self {
            QueryError::ModelNotFound { .. } => ErrorCode::NotFound,
            QueryError::InvalidInput(e) => e.code(),
            QueryError::Storage(e) => e.code(),
        }
    }
}

/// Why a general transaction ([`crate::ReadModelStore::transaction`]) wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("read model {model} does not exist; define it first")]
    ModelNotFound { model: String },
    /// Documents of a projection's read model are written only by that projection.
    #[error("read model {model} belongs to a projection and is written only by it")]
    ModelOwnedByProjection { model: String },
    #[error("read model {model} exists with other lookups")]
    ModelMismatch { model: String },
    #[error(transparent)]
    InvalidInput(#[from] InvalidRequest),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl TxError {
    pub fn code(&self) -> ErrorCode {
        match self {
            TxError::ModelNotFound { .. } => ErrorCode::NotFound,
            TxError::ModelOwnedByProjection { .. } => ErrorCode::Forbidden,
            TxError::ModelMismatch { .. } => ErrorCode::AlreadyExists,
            TxError::InvalidInput(e) => e.code(),
            TxError::Storage(e) => e.code(),
        }
    }
}

/// What a projection's `apply` returns when it cannot apply an event. The batch holding
/// the event is not committed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// The projection refuses the event (e.g. its data does not have the expected shape).
    #[error("projection refused the event: {reason}")]
    Rejected { reason: String },
    /// A document write broke a bound.
    #[error(transparent)]
    InvalidInput(#[from] InvalidRequest),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ProjectionError {
    pub fn rejected(reason: impl Into<String>) -> Self {
        ProjectionError::Rejected {
            reason: reason.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ProjectionError::Rejected { .. } => ErrorCode::DomainRejected,
            ProjectionError::InvalidInput(e) => e.code(),
            ProjectionError::Storage(e) => e.code(),
        }
    }
}

impl From<TxError> for ProjectionError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::InvalidInput(e) => ProjectionError::InvalidInput(e),
            TxError::Storage(e) => ProjectionError::Storage(e),
            other => {
                ProjectionError::Storage(StorageError::new(StorageErrorKind::Io, other.to_string()))
            }
        }
    }
}

/// Why a projection stopped, or did not start, catch up or rebuild. After `Apply` the
/// projection's checkpoint stays at the end of its last committed batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The projection declares an invalid name or lookups.
    #[error("projection {model}: {source}")]
    InvalidProjection {
        model: String,
        source: InvalidRequest,
    },
    /// A read model of that name exists and is not this projection's (user-defined).
    #[error("read model {model} exists and does not belong to a projection")]
    NameTaken { model: String },
    /// Another runner (async, inline or rebuild) in this process drives this projection.
    #[error("projection {model} is already running in this process")]
    Busy { model: String },
    /// `apply` failed on the event at `position`; nothing of its batch was committed.
    /// A document bound (size, lookup values) is checked when the batch's documents are
    /// written, after the last `apply`: then `position` is the batch's last event.
    #[error("projection {model} failed at position {position} (event {event_id}): {source}")]
    Apply {
        model: String,
        position: u64,
        event_id: uuid::Uuid,
        source: ProjectionError,
    },
    #[error("projection {model}: reading events: {source}")]
    Read { model: String, source: ReadError },
    /// The event store closed (shut down) while the projection followed it.
    #[error("projection {model}: the event store closed")]
    EventStoreClosed { model: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl RunError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RunError::InvalidProjection { source, .. } => source.code(),
            RunError::Busy { .. } | RunError::NameTaken { .. } => ErrorCode::AlreadyExists,
            RunError::Apply { source, .. } => source.code(),
            RunError::Read { source, .. } => source.code(),
            RunError::EventStoreClosed { .. } => ErrorCode::Unavailable,
            RunError::Storage(e) => e.code(),
        }
    }
}

/// A technical failure of the embedded database.
pub(crate) fn db_error(e: impl Into<redb::Error>) -> StorageError {
    let e: redb::Error = e.into();
    StorageError::new(StorageErrorKind::Io, format!("read-model store: {e}"))
}

/// A stored value that does not decode.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::new(
        StorageErrorKind::Corrupt,
        format!("read-model store: {what}"),
    )
}
