//! The `Sink` trait every broker adapter implements: publish a batch, return once the
//! broker acknowledged all of it.

use async_trait::async_trait;

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
}
