//! The `Sink` trait every broker adapter implements: publish a batch, return once the
//! broker acknowledged all of it — or, for pipelining, hand a batch over and get its
//! acknowledgements as a future.

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::error::SinkError;
use crate::message::Message;

/// A broker adapter. The relay hands it at most `batch_events_max` messages at a time,
/// in global order, and waits: a sink may pipeline the batch's messages but must return
/// `Ok` only once the broker acknowledged every one of them. On `Err` the relay re-sends
/// the whole batch later, so a sink should let the broker drop what it already has
/// (by [`Message::id`]) where the broker can.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// A short name for logs (`nats`, `redis`, `rabbitmq`, `memory`).
    fn name(&self) -> &str;

    /// Publishes `batch`; `Ok` means durably acknowledged by the broker.
    async fn publish(&self, batch: &[Message]) -> Result<(), SinkError>;

    /// Hands `batch` to the broker connection, in order, and returns once it is queued
    /// there, with a future of its acknowledgements. The relay keeps a few batches in
    /// flight this way, so a sink that implements it must put a later call's messages
    /// after an earlier call's (one ordered connection or producer). The default
    /// publishes the whole batch first: no overlap, always correct.
    async fn send(&self, batch: &[Message]) -> Result<Acks, SinkError> {
        self.publish(batch).await?;
        Ok(Box::pin(std::future::ready(Ok(()))))
    }
}

/// A batch's pending acknowledgements: `Ok` once the broker acknowledged all of it.
pub type Acks = BoxFuture<'static, Result<(), SinkError>>;
