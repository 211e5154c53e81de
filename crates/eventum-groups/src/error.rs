//! The errors of each group operation. Domain outcomes (unknown group, duplicate name,
//! bad settings, unknown token) are kept apart from technical failures, which wrap the
//! store's [`StorageError`]; each maps to a stable [`ErrorCode`].

use eventum_core::{AppendError, ErrorCode, ReadError, StorageError, StorageErrorKind};

/// A store failure met while reading or writing group state (definitions, checkpoints,
/// dead letters). Domain errors of the store are unexpected here (the service writes its
/// own system streams with `any` expectations) and are reported as technical failures.
pub(crate) fn storage_from_append(e: AppendError) -> StorageError {
    match e {
        AppendError::Storage(s) => s,
        other => StorageError::new(StorageErrorKind::Io, other.to_string()),
    }
}

pub(crate) fn storage_from_read(e: ReadError) -> StorageError {
    match e {
        ReadError::Storage(s) => s,
        other => StorageError::new(StorageErrorKind::Io, other.to_string()),
    }
}

/// Why the service could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A stored group record does not decode.
    #[error("group record {stream}@{version} is corrupt: {reason}")]
    CorruptRecord {
        stream: String,
        version: u64,
        reason: String,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl OpenError {
    pub fn code(&self) -> ErrorCode {
        match self {
            OpenError::CorruptRecord { .. } => ErrorCode::Corrupt,
            OpenError::Storage(e) => e.code(),
        }
    }
}

/// Why `create` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("invalid group name: {0}")]
    InvalidName(String),
    #[error("invalid group settings: {0}")]
    InvalidSettings(String),
    #[error("group {0} already exists")]
    AlreadyExists(String),
    #[error("there are already {max} groups, the limit")]
    TooManyGroups { max: usize },
    #[error("the group service is shut down")]
    ShutDown,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl CreateError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CreateError::InvalidName(_)
            | CreateError::InvalidSettings(_)
            | CreateError::TooManyGroups { .. } => ErrorCode::InvalidInput,
            CreateError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            CreateError::ShutDown => ErrorCode::Unavailable,
            CreateError::Storage(e) => e.code(),
        }
    }
}

/// Why `delete` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("group {0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl DeleteError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DeleteError::NotFound(_) => ErrorCode::NotFound,
            DeleteError::Storage(e) => e.code(),
        }
    }
}

/// Why `info` answered nothing.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error("group {0} does not exist")]
    NotFound(String),
}

impl InfoError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::NotFound
    }
}

/// Why `receive` handed out nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("group {0} does not exist")]
    NotFound(String),
    #[error("invalid receive: {0}")]
    InvalidInput(String),
    /// Every consumer slot is taken by a consumer that polled recently; retry later.
    #[error("group {group} already has {max} active consumers")]
    TooManyConsumers { group: String, max: usize },
    /// Parking an event (to the dead-letter stream) failed; nothing was lost, the event
    /// stays pending and parking is retried.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ReceiveError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ReceiveError::NotFound(_) => ErrorCode::NotFound,
            ReceiveError::InvalidInput(_) => ErrorCode::InvalidInput,
            ReceiveError::TooManyConsumers { .. } => ErrorCode::Unavailable,
            ReceiveError::Storage(e) => e.code(),
        }
    }
}

/// Why `ack` acknowledged nothing. Tokens that are unknown (expired, already acked, from
/// before a restart) are not an error: the report lists them.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("group {0} does not exist")]
    NotFound(String),
    #[error("invalid ack: {0}")]
    InvalidInput(String),
    /// Resolving a replayed dead letter failed; it stays parked.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AckError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AckError::NotFound(_) => ErrorCode::NotFound,
            AckError::InvalidInput(_) => ErrorCode::InvalidInput,
            AckError::Storage(e) => e.code(),
        }
    }
}

/// Why `nack` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum NackError {
    #[error("group {0} does not exist")]
    NotFound(String),
    /// The token is not in flight: expired and redelivered, already settled, or from
    /// before a restart.
    #[error("delivery token {0} is not in flight")]
    UnknownToken(u64),
    #[error("invalid nack: {0}")]
    InvalidInput(String),
    /// Writing the dead letter failed; the event stays pending and parking is retried.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl NackError {
    pub fn code(&self) -> ErrorCode {
        match self {
            NackError::NotFound(_) | NackError::UnknownToken(_) => ErrorCode::NotFound,
            NackError::InvalidInput(_) => ErrorCode::InvalidInput,
            NackError::Storage(e) => e.code(),
        }
    }
}

/// Why `parked` listed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ParkedError {
    #[error("group {0} does not exist")]
    NotFound(String),
    #[error("invalid listing: {0}")]
    InvalidInput(String),
}

impl ParkedError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ParkedError::NotFound(_) => ErrorCode::NotFound,
            ParkedError::InvalidInput(_) => ErrorCode::InvalidInput,
        }
    }
}

/// Why `replay` re-delivered nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("group {0} does not exist")]
    NotFound(String),
    #[error("group {group} has no parked event {id}")]
    UnknownParkedId { group: String, id: u64 },
}

impl ReplayError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            CreateError::AlreadyExists("g".into()).code(),
            ErrorCode::AlreadyExists
        );
        assert_eq!(
            CreateError::InvalidSettings("x".into()).code(),
            ErrorCode::InvalidInput
        );
        assert_eq!(NackError::UnknownToken(1).code(), ErrorCode::NotFound);
        let disk = StorageError::new(StorageErrorKind::DiskFull, "full");
        assert_eq!(AckError::Storage(disk).code(), ErrorCode::DiskFull);
    }
}
