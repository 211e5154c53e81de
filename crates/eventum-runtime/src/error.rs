//! The errors of dispatching a command and of registering handlers. Domain refusals are
//! kept apart from technical failures, and a version conflict has its own variant.

use eventum_core::{AppendError, ErrorCode, ReadError, SendError, StorageError};

/// Why a dispatch did not carry out its command. Nothing was appended in any case.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DispatchError {
    /// The domain refused the command (from `decide`); retrying will not help.
    #[error("rejected ({code}): {message}")]
    Rejected { code: String, message: String },
    /// The command's own fields are invalid (from `Command::validate`, or a payload that
    /// does not decode, or an id that is not a valid stream name).
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("no handler for command type {0:?}")]
    UnknownCommand(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Concurrent writers kept changing the aggregate: every one of `attempts` attempts
    /// met a newer version.
    #[error("stream {stream}: version conflict persisted over {attempts} attempts")]
    Conflict { stream: String, attempts: u32 },
    #[error("stream {stream} is deleted")]
    StreamDeleted { stream: String },
    /// More commands are in flight than `commands_in_flight_max`.
    #[error("overloaded: {in_flight_max} commands are in flight")]
    Overloaded { in_flight_max: usize },
    /// An event already in the aggregate's stream does not decode into its event type.
    #[error("stream {stream} version {version}: {message}")]
    Undecodable {
        stream: String,
        version: u64,
        message: String,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl DispatchError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DispatchError::Rejected { .. } => ErrorCode::DomainRejected,
            DispatchError::Invalid(_) => ErrorCode::InvalidInput,
            DispatchError::UnknownCommand(_) => ErrorCode::NotFound,
            DispatchError::Unauthorized(_) => ErrorCode::Unauthorized,
            DispatchError::Forbidden(_) => ErrorCode::Forbidden,
            DispatchError::Conflict { .. } => ErrorCode::WrongExpectedVersion,
            DispatchError::StreamDeleted { .. } => ErrorCode::StreamDeleted,
            DispatchError::Overloaded { .. } => ErrorCode::Unavailable,
            DispatchError::Undecodable { .. } => ErrorCode::Corrupt,
            DispatchError::Storage(e) => e.code(),
        }
    }

    /// Whether the same command may succeed if sent again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DispatchError::Conflict { .. }
                | DispatchError::Overloaded { .. }
                | DispatchError::Storage(_)
        )
    }

    pub(crate) fn from_read(e: ReadError) -> Self {
        match e {
            ReadError::StreamDeleted { stream } => DispatchError::StreamDeleted { stream },
            ReadError::InvalidInput(e) => DispatchError::Invalid(e.to_string()),
            ReadError::Storage(e) => DispatchError::Storage(e),
            // The repository treats a missing stream as an empty aggregate before this.
            ReadError::StreamNotFound { stream } => DispatchError::Storage(StorageError::new(
                eventum_core::StorageErrorKind::Io,
                format!("stream {stream} vanished while loading"),
            )),
        }
    }

    pub(crate) fn from_append(e: AppendError) -> Self {
        match e {
            AppendError::WrongExpectedVersion { stream, .. } => DispatchError::Conflict {
                stream,
                attempts: 1,
            },
            AppendError::StreamDeleted { stream } => DispatchError::StreamDeleted { stream },
            AppendError::InvalidInput(e) => DispatchError::Invalid(e.to_string()),
            AppendError::Storage(e) => DispatchError::Storage(e),
        }
    }
}

impl From<DispatchError> for SendError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Rejected { code, message } => SendError::Rejected { code, message },
            DispatchError::Forbidden(m) | DispatchError::Unauthorized(m) => SendError::Rejected {
                code: "forbidden".into(),
                message: m,
            },
            DispatchError::Invalid(m) => SendError::Invalid(m),
            DispatchError::UnknownCommand(t) => SendError::UnknownCommand(t),
            other => SendError::Failed(other.to_string()),
        }
    }
}

/// Why a handler could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("command type {0:?} already has a handler")]
    DuplicateCommandType(&'static str),
    #[error("a command type lists no names in Command::TYPES")]
    NoCommandTypes,
}
