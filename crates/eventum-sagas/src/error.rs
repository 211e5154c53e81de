//! The errors of the saga crate: one enum per operation (starting a runner, running it,
//! querying instances), each mapped to an [`ErrorCode`]. Domain outcomes of commands
//! (rejections) are not errors here: they are fed back to the saga as triggers.

use eventum_core::{AppendError, ErrorCode, InvalidInput, ReadError, StorageError};

/// Why a saga or reactor runner could not start. Nothing was processed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The saga's name does not make valid system stream names.
    #[error("saga name: {0}")]
    InvalidName(#[from] InvalidInput),
    /// A configuration value is out of range.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading the checkpoint or the deadline stream failed.
    #[error("reading saga state: {0}")]
    Read(#[from] ReadError),
    /// Writing the checkpoint stream's retention failed.
    #[error("writing saga state: {0}")]
    Append(#[from] AppendError),
    /// A record in one of the saga's system streams does not decode.
    #[error("corrupt saga record: {0}")]
    Corrupt(String),
}

impl StartError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StartError::InvalidName(e) => e.code(),
            StartError::Config(_) => ErrorCode::InvalidInput,
            StartError::Read(e) => e.code(),
            StartError::Append(e) => e.code(),
            StartError::Corrupt(_) => ErrorCode::Corrupt,
        }
    }
}

/// Why a running saga or reactor stopped. Its checkpoint is not past the event it was
/// handling, so a restart retries that event (every step is idempotent).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The subscription ended with a storage failure.
    #[error("subscription failed: {0}")]
    Subscription(StorageError),
    /// The subscription ended (the store closed).
    #[error("the store closed the subscription")]
    SubscriptionEnded,
    /// Recording a step, a deadline or the checkpoint failed.
    #[error("append failed: {0}")]
    Append(#[from] AppendError),
    /// Loading an instance or the deadline stream failed.
    #[error("read failed: {0}")]
    Read(#[from] ReadError),
    /// Another runner kept changing the same instance: the bounded conflict retries ran out.
    #[error("instance {key}: {retries} conflicting writes in a row")]
    Conflict { key: String, retries: u32 },
    /// A command kept failing technically after the bounded retries (reactors only; a saga
    /// hands the failure to its logic instead).
    #[error("command {command_id} ({command_type}) failed after retries: {message}")]
    SendFailed {
        command_id: uuid::Uuid,
        command_type: String,
        message: String,
    },
    /// A saga record does not decode.
    #[error("corrupt saga record: {0}")]
    Corrupt(String),
    /// The runner task panicked or was aborted.
    #[error("runner task ended abnormally: {0}")]
    Aborted(String),
}

impl From<crate::load::LoadError> for RunError {
    fn from(e: crate::load::LoadError) -> Self {
        match e {
            crate::load::LoadError::Read(e) => RunError::Read(e),
            crate::load::LoadError::Corrupt(m) => RunError::Corrupt(m),
        }
    }
}

impl RunError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RunError::Subscription(e) => e.code(),
            RunError::SubscriptionEnded | RunError::Aborted(_) => ErrorCode::Unavailable,
            RunError::Append(e) => e.code(),
            RunError::Read(e) => e.code(),
            RunError::Conflict { .. } => ErrorCode::WrongExpectedVersion,
            RunError::SendFailed { .. } => ErrorCode::StorageFailed,
            RunError::Corrupt(_) => ErrorCode::Corrupt,
        }
    }
}

/// Why a status query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The key or saga name does not make a valid stream name, or a page limit is out of
    /// range.
    #[error("invalid query: {0}")]
    InvalidInput(#[from] InvalidInput),
    #[error("read failed: {0}")]
    Read(#[from] ReadError),
    #[error("corrupt saga record: {0}")]
    Corrupt(String),
}

impl From<crate::load::LoadError> for QueryError {
    fn from(e: crate::load::LoadError) -> Self {
        match e {
            crate::load::LoadError::Read(e) => QueryError::Read(e),
            crate::load::LoadError::Corrupt(m) => QueryError::Corrupt(m),
        }
    }
}

impl QueryError {
    pub fn code(&self) -> ErrorCode {
        match self {
            QueryError::InvalidInput(e) => e.code(),
            QueryError::Read(e) => e.code(),
            QueryError::Corrupt(_) => ErrorCode::Corrupt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_domain_and_technical_apart() {
        assert_eq!(
            StartError::Config("x".into()).code(),
            ErrorCode::InvalidInput
        );
        assert_eq!(RunError::Corrupt("x".into()).code(), ErrorCode::Corrupt);
        assert_eq!(
            RunError::Conflict {
                key: "k".into(),
                retries: 3
            }
            .code(),
            ErrorCode::WrongExpectedVersion
        );
        assert_eq!(
            QueryError::InvalidInput(InvalidInput::EmptyStreamName).code(),
            ErrorCode::InvalidInput
        );
    }
}
