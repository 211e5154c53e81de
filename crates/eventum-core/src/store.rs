//! The store contract every backend implements (embedded log, PostgreSQL), and the types
//! its operations take and return.

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::{AppendError, ReadError, StorageError};
use crate::event::{NewEvent, RecordedEvent};
use crate::limits::Limits;
use crate::stream::StreamName;
use crate::version::{ActualVersion, ExpectedVersion};

/// What a successful append reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    /// The version of the last event written: the exact expected version for the next
    /// append.
    pub next_expected_version: u64,
    /// The global position of the last event written.
    pub position: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadDirection {
    #[default]
    Forward,
    Backward,
}

/// A stream's retention settings; reads hide events outside them.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamMetadata {
    /// Keep only the newest `max_count` events visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
    /// Hide events recorded more than `max_age_s` seconds ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_s: Option<u64>,
}

impl StreamMetadata {
    /// Whether an event at `version`, recorded at `recorded_at_us`, is visible in a stream
    /// whose last version is `last_version`, at time `now_us`.
    pub fn is_visible(
        &self,
        version: u64,
        last_version: u64,
        recorded_at_us: i64,
        now_us: i64,
    ) -> bool {
        if let Some(max_count) = self.max_count
            && last_version.saturating_sub(version) >= max_count
        {
            return false;
        }
        if let Some(max_age_s) = self.max_age_s {
            let age_us = now_us.saturating_sub(recorded_at_us);
            if age_us > (max_age_s as i64).saturating_mul(1_000_000) {
                return false;
            }
        }
        true
    }
}

/// What a stream is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamState {
    pub version: ActualVersion,
    pub deleted: bool,
    pub metadata: StreamMetadata,
}

/// What a subscription follows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionTarget {
    Stream(StreamName),
    Category(String),
    All,
}

impl SubscriptionTarget {
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        match self {
            SubscriptionTarget::Stream(s) => event.stream == s.as_str(),
            SubscriptionTarget::Category(c) => event.category() == c,
            SubscriptionTarget::All => true,
        }
    }
}

/// Where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionFrom {
    /// Deliver events whose global position is at least this.
    Position(u64),
    /// Deliver only events committed after the subscription starts.
    End,
}

/// A subscription: matching events in global order, catch-up then live, with no gap and no
/// duplicate. It ends only with an error or when the store closes.
pub type Subscription = BoxStream<'static, Result<RecordedEvent, StorageError>>;

/// The event store contract. Every backend passes the same contract suite
/// (`eventum-testkit`). Writes are acknowledged only once durable.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The input limits this store enforces.
    fn limits(&self) -> &Limits;

    /// Appends `events` atomically to `stream` if it is at `expected`. Repeating an
    /// identical append (same ids, same expectation) after a lost acknowledgement returns
    /// the original result and writes nothing.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError>;

    /// Reads a stream from version `from` (default: first forward, last backward).
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError>;

    /// Reads `$all` from position `from` (default: first forward, last backward).
    async fn read_all(
        &self,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError>;

    /// Reads a category's events forward from global position `from`, in global order.
    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError>;

    /// Soft-deletes a stream: its events stay in `$all`, reading it says it is deleted, and
    /// further appends to it are refused.
    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
    ) -> Result<AppendResult, AppendError>;

    /// Sets a stream's retention metadata (recorded as an event in `$${stream}`).
    async fn set_stream_metadata(
        &self,
        stream: &StreamName,
        metadata: StreamMetadata,
    ) -> Result<AppendResult, AppendError>;

    /// A stream's current version, deletion flag and metadata.
    async fn stream_state(&self, stream: &StreamName) -> Result<StreamState, ReadError>;

    /// Subscribes to a stream, a category or `$all`.
    fn subscribe(&self, target: SubscriptionTarget, from: SubscriptionFrom) -> Subscription;

    /// The position of the newest durable event, if any.
    fn head_position(&self) -> Option<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_visibility() {
        let m = StreamMetadata {
            max_count: Some(2),
            max_age_s: None,
        };
        assert!(!m.is_visible(7, 9, 0, 0));
        assert!(m.is_visible(8, 9, 0, 0));
        assert!(m.is_visible(9, 9, 0, 0));
        let m = StreamMetadata {
            max_count: None,
            max_age_s: Some(10),
        };
        assert!(m.is_visible(0, 0, 0, 10_000_000));
        assert!(!m.is_visible(0, 0, 0, 10_000_001));
        assert!(StreamMetadata::default().is_visible(0, 1_000, 0, i64::MAX));
    }
}
