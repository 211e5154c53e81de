//! Inbound into the command bus: each broker message becomes a command sent through a
//! [`CommandSender`]. The command id is derived from the message id (a UUID v5 under the
//! inbox's consumer name), so a redelivered or re-published message is the same command
//! again, which the bus and the repository recognise as an idempotent repeat. The inbox
//! in front of it drops a repeat without a round trip to the bus.
//!
//! Why both: the command's events land in the event store and the inbox in the read-model
//! store, which cannot commit together. The order is: skip ids the inbox holds, send the
//! others, then record them. A crash between a send and its record means one more send of
//! the same command id, which appends nothing.

use std::sync::Arc;

use async_trait::async_trait;
use eventum_core::{Causation, CommandEnvelope, CommandSender, SendError};
use eventum_projections::ReadModelStore;
use uuid::Uuid;

use crate::error::ConfigError;
use crate::inbound::{HandlerError, InboundMessage};
use crate::inbound_target::{Delivered, InboundTarget, check_consumer_name};
use crate::message::header;

/// The namespace of command ids derived from message ids.
pub const COMMAND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6576_656e_7475_6d2d_6272_6964_6765_0001);

/// The command id of message `message_id` taken in by inbox `consumer`: the same message
/// always gives the same command, and two consumers of one message give two commands.
pub fn command_id(consumer: &str, message_id: Uuid) -> Uuid {
    let mut name = Vec::with_capacity(consumer.len() + 17);
    name.extend_from_slice(consumer.as_bytes());
    name.push(0);
    name.extend_from_slice(message_id.as_bytes());
    Uuid::new_v5(&COMMAND_ID_NAMESPACE, &name)
}

/// Turns a message into a command type and payload; `Err` refuses the message for good.
pub type CommandMapper =
    dyn Fn(&InboundMessage) -> Result<(String, serde_json::Value), String> + Send + Sync;

/// The default mapping: the command type is the `ce_type` header, the payload is the
/// body as JSON.
pub fn command_from_cloudevent(
    message: &InboundMessage,
) -> Result<(String, serde_json::Value), String> {
    let command_type = message
        .event_type
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("message {} has no {} header", message.id, header::CE_TYPE))?;
    let payload = serde_json::from_slice(&message.body)
        .map_err(|e| format!("message {}: body is not JSON: {e}", message.id))?;
    Ok((command_type, payload))
}

/// The envelope of `message`: id derived from the message id; correlation from the
/// message's `correlation_id` header (else the message starts a conversation); caused by
/// the message.
pub fn envelope_of(
    consumer: &str,
    message: &InboundMessage,
    command_type: String,
    payload: serde_json::Value,
) -> CommandEnvelope {
    let correlation_id = message
        .header(header::CORRELATION_ID)
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or(message.id);
    CommandEnvelope::new(command_type, payload)
        .with_id(command_id(consumer, message.id))
        .caused_by(Causation {
            correlation_id,
            causation_id: message.id,
        })
}

/// Sends each message as a command, in broker order, through the inbox `consumer`.
pub struct CommandTarget {
    sender: Arc<dyn CommandSender>,
    read_models: ReadModelStore,
    consumer: String,
    mapper: Arc<CommandMapper>,
}

impl CommandTarget {
    /// Commands from CloudEvents messages ([`command_from_cloudevent`]).
    pub fn new(
        sender: Arc<dyn CommandSender>,
        read_models: ReadModelStore,
        consumer: &str,
    ) -> Result<Self, ConfigError> {
        Self::with_mapper(sender, read_models, consumer, command_from_cloudevent)
    }

    /// Commands from `mapper`.
    pub fn with_mapper<M>(
        sender: Arc<dyn CommandSender>,
        read_models: ReadModelStore,
        consumer: &str,
        mapper: M,
    ) -> Result<Self, ConfigError>
    where
        M: Fn(&InboundMessage) -> Result<(String, serde_json::Value), String>
            + Send
            + Sync
            + 'static,
    {
        check_consumer_name(consumer)?;
        Ok(Self {
            sender,
            read_models,
            consumer: consumer.to_owned(),
            mapper: Arc::new(mapper),
        })
    }

    /// Ids of `batch` the inbox already holds.
    async fn seen(&self, batch: &[InboundMessage]) -> Result<Vec<bool>, HandlerError> {
        let consumer = self.consumer.clone();
        let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
        self.read_models
            .transaction_async(move |tx| -> Result<Vec<bool>, HandlerError> {
                ids.iter()
                    .map(|id| Ok(tx.inbox_contains(&consumer, *id)?))
                    .collect()
            })
            .await
    }

    async fn record(&self, ids: Vec<Uuid>) -> Result<(), HandlerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer.clone();
        self.read_models
            .transaction_async(move |tx| -> Result<(), HandlerError> {
                for id in ids {
                    tx.inbox_check_and_record(&consumer, id)?;
                }
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl InboundTarget for CommandTarget {
    async fn deliver(&self, batch: Vec<InboundMessage>) -> Result<Delivered, HandlerError> {
        let seen = self.seen(&batch).await?;
        let mut outcome = Delivered::default();
        let mut done = Vec::with_capacity(batch.len());
        let mut failure = None;
        for (message, seen) in batch.iter().zip(seen) {
            if seen || done.contains(&message.id) {
                outcome.duplicates += 1;
                continue;
            }
            let (command_type, payload) = match (self.mapper)(message) {
                Ok(c) => c,
                Err(reason) => {
                    tracing::warn!(consumer = %self.consumer, message = %message.id, %reason, "message is not a command; dropped");
                    outcome.rejected += 1;
                    done.push(message.id);
                    continue;
                }
            };
            let envelope = envelope_of(&self.consumer, message, command_type, payload);
            match self.sender.send(envelope).await {
                // A duplicate outcome is the first run's, returned again: the command ran.
                Ok(accepted) if accepted.duplicate => outcome.duplicates += 1,
                Ok(_) => outcome.handled += 1,
                Err(SendError::Failed(reason)) => {
                    // Retrying may help: stop here; the batch comes again from this message.
                    failure = Some(format!(
                        "command of message {} failed: {reason}",
                        message.id
                    ));
                    break;
                }
                Err(refused) => {
                    tracing::warn!(consumer = %self.consumer, message = %message.id, error = %refused, "command refused; message dropped");
                    outcome.rejected += 1;
                }
            }
            done.push(message.id);
        }
        // Recorded even when a later message failed, so that the redelivered batch skips
        // what already ran without asking the bus.
        self.record(done).await?;
        match failure {
            Some(reason) => Err(HandlerError::Failed(reason)),
            None => Ok(outcome),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(id: Uuid, body: &'static [u8], ce_type: Option<&str>) -> InboundMessage {
        InboundMessage {
            id,
            subject: "shop-commands".into(),
            event_type: ce_type.map(str::to_owned),
            key: None,
            headers: Vec::new(),
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn command_ids_are_deterministic_per_consumer() {
        let id = Uuid::now_v7();
        assert_eq!(command_id("a", id), command_id("a", id));
        assert_ne!(command_id("a", id), command_id("b", id));
        assert_ne!(command_id("a", id), command_id("a", Uuid::now_v7()));
    }

    #[test]
    fn envelope_carries_the_derived_id_and_causation() {
        let id = Uuid::now_v7();
        let correlation = Uuid::now_v7();
        let mut m = message(id, br#"{"sku":"x"}"#, Some("PlaceOrder"));
        let (t, p) = command_from_cloudevent(&m).unwrap();
        let e = envelope_of("in", &m, t, p);
        assert_eq!(e.command_id, command_id("in", id));
        assert_eq!(e.command_type, "PlaceOrder");
        assert_eq!(e.payload["sku"], "x");
        assert_eq!((e.correlation_id, e.causation_id), (id, id));
        m.headers
            .push((header::CORRELATION_ID.into(), correlation.to_string()));
        let (t, p) = command_from_cloudevent(&m).unwrap();
        let e = envelope_of("in", &m, t, p);
        assert_eq!((e.correlation_id, e.causation_id), (correlation, id));
    }

    #[test]
    fn messages_without_type_or_json_are_refused() {
        let id = Uuid::now_v7();
        assert!(command_from_cloudevent(&message(id, b"{}", None)).is_err());
        assert!(command_from_cloudevent(&message(id, b"not json", Some("X"))).is_err());
    }
}
