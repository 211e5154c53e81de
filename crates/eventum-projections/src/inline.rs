//! The inline mode: [`InlineProjections`] wraps an event store so that an append is
//! acknowledged only after the inline projections cover it.
//!
//! What "inline" guarantees: when `append` returns `Ok`, every inline projection's active
//! generation has committed (durably, with its checkpoint) every event up to the appended
//! position, so a query issued after the acknowledgement sees the write. The append itself
//! becomes durable first; a crash between the durable append and the projection commit is
//! caught up on the next `open` from the projection's checkpoint, before `open` returns.
//! If a projection fails after the append, `append` returns a storage error although the
//! events are stored: retrying the append is answered by the store's idempotence and
//! retries the projection. Concurrent appends coalesce: a projection is brought up to the
//! head under its lock, so the next waiter usually finds itself covered.

use std::sync::Arc;

use async_trait::async_trait;
use eventum_core::{
    AppendError, AppendResult, EventStore, ExpectedVersion, Limits, NewEvent, ReadDirection,
    ReadError, RecordedEvent, StorageError, StorageErrorKind, StreamMetadata, StreamName,
    StreamState, Subscription, SubscriptionFrom, SubscriptionTarget,
};
use tokio::sync::Mutex;

use crate::config::RunnerConfig;
use crate::driver::{Driver, Status};
use crate::error::RunError;
use crate::model::Projection;
use crate::store::ReadModelStore;

/// An event store whose appends update the inline projections before they return.
pub struct InlineProjections<S: EventStore> {
    inner: Arc<S>,
    read_models: ReadModelStore,
    drivers: Vec<Mutex<Driver>>,
}

impl<S: EventStore> InlineProjections<S> {
    /// Registers the projections and catches each up from its checkpoint (rebuilding one
    /// whose version changed; its old generation serves queries meanwhile).
    pub async fn open(
        inner: Arc<S>,
        read_models: ReadModelStore,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Result<Self, RunError> {
        let mut drivers = Vec::with_capacity(projections.len());
        for projection in projections {
            let events: Arc<dyn EventStore> = inner.clone();
            let mut driver = Driver::open(
                read_models.clone(),
                events,
                projection,
                config.clone(),
                false,
            )
            .await?;
            driver.catch_up(None).await?;
            drivers.push(Mutex::new(driver));
        }
        Ok(Self {
            inner,
            read_models,
            drivers,
        })
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    pub fn read_models(&self) -> &ReadModelStore {
        &self.read_models
    }

    /// The status of each inline projection.
    pub async fn status(&self) -> Vec<Status> {
        let mut out = Vec::with_capacity(self.drivers.len());
        for d in &self.drivers {
            out.push(d.lock().await.status.borrow().clone());
        }
        out
    }

    /// Brings every inline projection up to at least `position`.
    pub async fn project_to(&self, position: u64) -> Result<(), RunError> {
        for d in &self.drivers {
            let mut driver = d.lock().await;
            if driver.cursor.position_next > position {
                continue;
            }
            driver.catch_up(None).await?;
        }
        Ok(())
    }

    async fn projected(&self, result: AppendResult) -> Result<AppendResult, AppendError> {
        self.project_to(result.position).await.map_err(|e| {
            AppendError::Storage(StorageError::new(
                StorageErrorKind::Io,
                format!(
                    "the append is stored (position {}), but an inline projection failed: {e}; \
                     retrying the append is safe",
                    result.position
                ),
            ))
        })?;
        Ok(result)
    }
}

#[async_trait]
impl<S: EventStore> EventStore for InlineProjections<S> {
    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        let result = self.inner.append(stream, expected, events).await?;
        self.projected(result).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.read_stream(stream, from, direction, limit).await
    }

    async fn read_all(
        &self,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.read_all(from, direction, limit).await
    }

    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.read_category(category, from, limit).await
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
    ) -> Result<AppendResult, AppendError> {
        let result = self.inner.delete_stream(stream, expected).await?;
        self.projected(result).await
    }

    async fn set_stream_metadata(
        &self,
        stream: &StreamName,
        metadata: StreamMetadata,
    ) -> Result<AppendResult, AppendError> {
        let result = self.inner.set_stream_metadata(stream, metadata).await?;
        self.projected(result).await
    }

    async fn stream_state(&self, stream: &StreamName) -> Result<StreamState, ReadError> {
        self.inner.stream_state(stream).await
    }

    fn subscribe(&self, target: SubscriptionTarget, from: SubscriptionFrom) -> Subscription {
        self.inner.subscribe(target, from)
    }

    fn head_position(&self) -> Option<u64> {
        self.inner.head_position()
    }
}
