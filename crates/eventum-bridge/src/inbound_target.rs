//! Where inbound messages go, shared by every broker consumer: an [`InboundTarget`]
//! takes one fetched batch and returns once each message is durably handled or dropped
//! as a duplicate; only then does the consumer acknowledge the batch to its broker. The
//! handler target runs a user function in one read-model transaction with the inbox;
//! the command target (in `inbound_commands`) sends each message to a command bus.

use std::sync::Arc;

use async_trait::async_trait;
use eventum_projections::{ReadModelStore, StoreTx};

use crate::inbound::{HandlerError, InboundMessage};

/// What one delivered batch amounted to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Messages whose handler (or command) ran and committed.
    pub handled: u64,
    /// Messages dropped because the inbox had their id.
    pub duplicates: u64,
    /// Messages refused for good (a rejected or undecodable command): recorded in the
    /// inbox and acknowledged, so that they are not redelivered forever.
    pub rejected: u64,
}

/// The receiving end of an inbound consumer.
#[async_trait]
pub trait InboundTarget: Send + Sync + 'static {
    /// Handles `batch`, in broker order. `Ok` means every message is durably handled,
    /// dropped as a duplicate or rejected for good, so the consumer may acknowledge the
    /// whole batch. `Err` means the consumer must not acknowledge any of it: the batch
    /// comes again, and the inbox drops whatever part of it had already committed.
    async fn deliver(&self, batch: Vec<InboundMessage>) -> Result<Delivered, HandlerError>;
}

/// A handler run inside the read-model transaction that records the inbox: any
/// `Fn(&mut StoreTx, &InboundMessage) -> Result<(), HandlerError>` that is `Send + Sync`.
pub trait InboundHandler:
    Fn(&mut StoreTx<'_>, &InboundMessage) -> Result<(), HandlerError> + Send + Sync + 'static
{
}

impl<H> InboundHandler for H where
    H: Fn(&mut StoreTx<'_>, &InboundMessage) -> Result<(), HandlerError> + Send + Sync + 'static
{
}

/// Runs a handler through the inbox: each batch is one read-model transaction that
/// records every message id under `consumer` and runs the handler for the new ones, so
/// the handler's writes and the inbox commit together.
pub struct HandlerTarget {
    read_models: ReadModelStore,
    consumer: String,
    handler: Arc<dyn InboundHandler>,
}

impl HandlerTarget {
    /// `consumer` names the inbox (`[a-z0-9_-]`); keep the read-model store's
    /// `inbox_ids_max` above the most messages a consumer has unacknowledged at once.
    pub fn new(read_models: ReadModelStore, consumer: &str, handler: impl InboundHandler) -> Self {
        Self {
            read_models,
            consumer: consumer.to_owned(),
            handler: Arc::new(handler),
        }
    }
}

#[async_trait]
impl InboundTarget for HandlerTarget {
    async fn deliver(&self, batch: Vec<InboundMessage>) -> Result<Delivered, HandlerError> {
        let consumer = self.consumer.clone();
        let handler = self.handler.clone();
        self.read_models
            .transaction_async(move |tx| -> Result<Delivered, HandlerError> {
                let mut outcome = Delivered::default();
                for message in &batch {
                    if tx.inbox_check_and_record(&consumer, message.id)? {
                        handler(tx, message)?;
                        outcome.handled += 1;
                    } else {
                        outcome.duplicates += 1;
                    }
                }
                Ok(outcome)
            })
            .await
    }
}

/// Checks an inbox or consumer name: 1..=64 bytes of `[a-z0-9_-]`.
pub(crate) fn check_consumer_name(name: &str) -> Result<(), crate::error::ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(crate::error::ConfigError::BadName(name.to_owned()))
    }
}

/// How a consumer that keeps its batch in hand (Kafka, Redis Streams: the broker does
/// not redeliver by itself) retries a failed delivery.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    pub(crate) delay_ms: u64,
    pub(crate) attempts_max: Option<u32>,
}

/// Delivers `batch` to `target` until it succeeds; `Ok(None)` when a stop was asked for
/// first, an error when `retry.attempts_max` attempts failed.
pub(crate) async fn deliver_with_retry(
    target: &dyn InboundTarget,
    batch: &[InboundMessage],
    retry: Retry,
    consumer: &str,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    progress: &tokio::sync::watch::Sender<crate::inbound::InboundProgress>,
) -> Result<Option<Delivered>, crate::inbound::InboundError> {
    let mut attempt: u32 = 0;
    loop {
        let error = match target.deliver(batch.to_vec()).await {
            Ok(delivered) => return Ok(Some(delivered)),
            Err(e) => e,
        };
        attempt = attempt.saturating_add(1);
        tracing::warn!(consumer, attempt, error = %error, "batch failed; retrying it");
        progress.send_modify(|p| p.failures_total += 1);
        if retry.attempts_max.is_some_and(|max| attempt >= max) {
            return Err(crate::inbound::InboundError::RetriesExhausted {
                attempts: attempt,
                last: error.to_string(),
            });
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(None),
            _ = tokio::time::sleep(std::time::Duration::from_millis(retry.delay_ms)) => {}
        }
    }
}

/// The dedupe id of a message that carries no `ce_id`: derived from where the broker
/// keeps it (topic, partition and offset; stream key and entry id), which a redelivery
/// repeats.
pub(crate) fn id_from_location(location: &str) -> uuid::Uuid {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6576_656e_7475_6d2d_6272_6964_6765_0002);
    uuid::Uuid::new_v5(&NAMESPACE, location.as_bytes())
}
