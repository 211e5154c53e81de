//! The errors of each store operation. Domain outcomes (a version conflict, a deleted
//! stream, bad input) are kept apart from technical failures ([`StorageError`]), and every
//! error has a stable machine-readable [`ErrorCode`] that interfaces map to their own status
//! codes in one table.

use std::fmt;

use uuid::Uuid;

use crate::version::{ActualVersion, ExpectedVersion};

/// Stable error codes, shared by every interface (HTTP body `error`, CLI exit messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    WrongExpectedVersion,
    StreamNotFound,
    StreamDeleted,
    InvalidInput,
    EventTooLarge,
    BatchTooLarge,
    MalformedRequest,
    NotFound,
    DiskFull,
    StorageFailed,
    Corrupt,
    Unavailable,
    /// A command was refused by the domain (an aggregate's `decide`, a saga rule).
    DomainRejected,
    /// Something with that name or key exists already (a consumer group, a read model).
    AlreadyExists,
    /// No valid credentials were presented.
    Unauthorized,
    /// The credentials do not allow this operation.
    Forbidden,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::WrongExpectedVersion,
        ErrorCode::StreamNotFound,
        ErrorCode::StreamDeleted,
        ErrorCode::InvalidInput,
        ErrorCode::EventTooLarge,
        ErrorCode::BatchTooLarge,
        ErrorCode::MalformedRequest,
        ErrorCode::NotFound,
        ErrorCode::DiskFull,
        ErrorCode::StorageFailed,
        ErrorCode::Corrupt,
        ErrorCode::Unavailable,
        ErrorCode::DomainRejected,
        ErrorCode::AlreadyExists,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::WrongExpectedVersion => "wrong_expected_version",
            ErrorCode::StreamNotFound => "stream_not_found",
            ErrorCode::StreamDeleted => "stream_deleted",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::EventTooLarge => "event_too_large",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::DiskFull => "disk_full",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DomainRejected => "domain_rejected",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Input that breaks a rule or a configured limit. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("stream name is empty")]
    EmptyStreamName,
    #[error("stream name is {len_bytes} bytes long; the limit is {max_bytes}")]
    StreamNameTooLong { len_bytes: usize, max_bytes: usize },
    #[error("stream name contains a control character")]
    StreamNameControlCharacter,
    #[error("stream name {0:?} starts with '$', which is reserved for system streams")]
    ReservedStreamName(String),
    #[error("event type is empty")]
    EmptyEventType,
    #[error("event type is {len_bytes} bytes long; the limit is {max_bytes}")]
    EventTypeTooLong { len_bytes: usize, max_bytes: usize },
    #[error("event type contains a control character")]
    EventTypeControlCharacter,
    #[error("event data is not JSON: {0}")]
    DataNotJson(String),
    #[error("event metadata must be a JSON object")]
    MetadataNotObject,
    #[error("metadata field {field} must be a UUID string")]
    NotAUuid { field: &'static str },
    #[error("an append needs at least one event")]
    EmptyBatch,
    #[error("event {index} is {size_bytes} bytes; the limit is {max_bytes}")]
    EventTooLarge {
        index: usize,
        size_bytes: usize,
        max_bytes: usize,
    },
    #[error("the append has {events} events; the limit is {max_events}")]
    BatchTooManyEvents { events: usize, max_events: usize },
    #[error("the append is {size_bytes} bytes; the limit is {max_bytes}")]
    BatchTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("event id {0} appears twice in one append")]
    DuplicateEventId(Uuid),
    #[error("read limit {limit} is out of range 1..={max}")]
    ReadLimitOutOfRange { limit: usize, max: usize },
    #[error("stream metadata: {0}")]
    BadStreamMetadata(String),
}

impl InvalidInput {
    pub fn code(&self) -> ErrorCode {
        match self {
            InvalidInput::EventTooLarge { .. } => ErrorCode::EventTooLarge,
            InvalidInput::BatchTooManyEvents { .. } | InvalidInput::BatchTooLarge { .. } => {
                ErrorCode::BatchTooLarge
            }
            _ => ErrorCode::InvalidInput,
        }
    }
}

/// What kind of technical failure a [`StorageError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageErrorKind {
    /// The device has no space left; nothing of the failed request was acknowledged.
    DiskFull,
    /// An I/O call failed.
    Io,
    /// Stored bytes fail their checksum or do not decode.
    Corrupt,
    /// A durable write (fsync) failed earlier; the writer refuses appends until restart,
    /// because the state of the page cache is unknown.
    WriterFailed,
    /// The store is shutting down or overloaded.
    Unavailable,
}

/// A technical failure, kept apart from domain outcomes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self.kind {
            StorageErrorKind::DiskFull => ErrorCode::DiskFull,
            StorageErrorKind::Io | StorageErrorKind::WriterFailed => ErrorCode::StorageFailed,
            StorageErrorKind::Corrupt => ErrorCode::Corrupt,
            StorageErrorKind::Unavailable => ErrorCode::Unavailable,
        }
    }
}

/// Why an append (or a delete, or a metadata change) wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The stream is not at the expected version.
    #[error("stream {stream}: expected version {expected}, actual {actual}")]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        actual: ActualVersion,
    },
    #[error("stream {stream} is deleted")]
    StreamDeleted { stream: String },
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AppendError {
    /// `Ok` when a stream at `actual` satisfies `expected`; otherwise the conflict every
    /// backend reports.
    pub fn check_expected(
        stream: &str,
        expected: ExpectedVersion,
        actual: ActualVersion,
    ) -> Result<(), AppendError> {
        if expected.is_satisfied_by(actual) {
            return Ok(());
        }
        Err(AppendError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected,
            actual,
        })
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            AppendError::WrongExpectedVersion { .. } => ErrorCode::WrongExpectedVersion,
            AppendError::StreamDeleted { .. } => ErrorCode::StreamDeleted,
            AppendError::InvalidInput(e) => e.code(),
            AppendError::Storage(e) => e.code(),
        }
    }
}

/// Why a read returned no events.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("stream {stream} does not exist")]
    StreamNotFound { stream: String },
    #[error("stream {stream} is deleted")]
    StreamDeleted { stream: String },
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ReadError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ReadError::StreamNotFound { .. } => ErrorCode::StreamNotFound,
            ReadError::StreamDeleted { .. } => ErrorCode::StreamDeleted,
            ReadError::InvalidInput(e) => e.code(),
            ReadError::Storage(e) => e.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
