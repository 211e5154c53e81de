//! PLACEHOLDER API SURFACE — being implemented.
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use eventum_core::*;

use crate::{LogConfig, OpenError};

pub struct LogStore {
    limits: Limits,
}

impl LogStore {
    /// Opens (creating if needed) the store in `dir`, recovering from a crash if needed.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Arc<Self>, OpenError> {
        let _ = (dir, config);
        todo!()
    }

    /// Stops the writer and indexer after flushing the index; later calls fail with
    /// `unavailable`.
    pub fn shutdown(&self) {}
}

#[async_trait]
impl EventStore for LogStore {
    fn limits(&self) -> &Limits {
        &self.limits
    }
    async fn append(&self, _: &StreamName, _: ExpectedVersion, _: Vec<NewEvent>) -> Result<AppendResult, AppendError> {
        todo!()
    }
    async fn read_stream(&self, _: &StreamName, _: Option<u64>, _: ReadDirection, _: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        todo!()
    }
    async fn read_all(&self, _: Option<u64>, _: ReadDirection, _: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        todo!()
    }
    async fn read_category(&self, _: &str, _: u64, _: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        todo!()
    }
    async fn delete_stream(&self, _: &StreamName, _: ExpectedVersion) -> Result<AppendResult, AppendError> {
        todo!()
    }
    async fn set_stream_metadata(&self, _: &StreamName, _: StreamMetadata) -> Result<AppendResult, AppendError> {
        todo!()
    }
    async fn stream_state(&self, _: &StreamName) -> Result<StreamState, ReadError> {
        todo!()
    }
    fn subscribe(&self, _: SubscriptionTarget, _: SubscriptionFrom) -> Subscription {
        todo!()
    }
    fn head_position(&self) -> Option<u64> {
        todo!()
    }
}
