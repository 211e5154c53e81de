//! The errors of the bridge: one enum per operation (configure, publish, relay, consume),
//! each with its stable [`ErrorCode`].

use eventum_core::{AppendError, ErrorCode, ReadError, StorageError};

/// A relay or inbound configuration that cannot run. Nothing was started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("bridge name {0:?} must be 1..=64 bytes of [a-z0-9_-]")]
    BadName(String),
    #[error("{0} must not be zero or empty")]
    Zero(&'static str),
    #[error("retry delays: min {min_ms} ms is above max {max_ms} ms")]
    RetryDelays { min_ms: u64, max_ms: u64 },
    #[error("unknown topic mapping {0:?}: use `category` or `type`")]
    UnknownTopicMapping(String),
    #[error("unknown header set {0:?}: use `full` or `compact`")]
    UnknownHeaderSet(String),
    #[error("bad broker URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
}

impl ConfigError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidInput
    }
}

/// Why a sink did not acknowledge a whole batch. The relay retries every kind: none of
/// the batch counts as delivered, and re-sending is safe because messages carry their
/// event id for deduplication.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The broker could not be reached, or did not answer in time.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker answered and refused (a negative acknowledgement, a protocol error).
    #[error("broker refused the batch: {0}")]
    Refused(String),
}

impl SinkError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SinkError::Unavailable(_) => ErrorCode::Unavailable,
            SinkError::Refused(_) => ErrorCode::StorageFailed,
        }
    }
}

/// Why a relay stopped before it was asked to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading the checkpoint: {0}")]
    CheckpointRead(#[from] ReadError),
    #[error("writing the checkpoint: {0}")]
    CheckpointWrite(#[from] AppendError),
    #[error("checkpoint stream {stream} holds an unreadable record: {reason}")]
    CheckpointCorrupt { stream: String, reason: String },
    #[error("the store subscription failed: {0}")]
    Subscription(#[from] StorageError),
    #[error("the store subscription ended (the store closed)")]
    SubscriptionEnded,
    #[error("gave up after {attempts} failed publish attempts: {last}")]
    RetriesExhausted { attempts: u32, last: SinkError },
    #[error("the relay task panicked")]
    Panicked,
}

impl RelayError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RelayError::Config(e) => e.code(),
            RelayError::CheckpointRead(e) => e.code(),
            RelayError::CheckpointWrite(e) => e.code(),
            RelayError::CheckpointCorrupt { .. } => ErrorCode::Corrupt,
            RelayError::Subscription(e) => e.code(),
            RelayError::SubscriptionEnded => ErrorCode::Unavailable,
            RelayError::RetriesExhausted { last, .. } => last.code(),
            RelayError::Panicked => ErrorCode::StorageFailed,
        }
    }
}
