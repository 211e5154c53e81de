//! Inbound from RabbitMQ: a queue consumed with a bounded prefetch into a handler
//! through the read-model inbox. RabbitMQ does not deduplicate, so this is where a
//! re-sent message (same `message_id` = event id) is dropped: each batch of deliveries
//! runs in one read-model transaction that records the ids and runs the handler for new
//! ones; the deliveries are acknowledged after the commit, and requeued when the batch
//! rolls back.

use std::sync::Arc;
use std::time::Duration;

use eventum_core::EventId;
use eventum_projections::ReadModelStore;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ConfigError;
use crate::inbound::{InboundError, InboundHandle, InboundMessage, InboundProgress};
use crate::inbound_target::{HandlerTarget, InboundHandler, InboundTarget, check_consumer_name};
use crate::message::header;

/// Settings of an [`AmqpInbound`] consumer.
#[derive(Clone, Debug)]
pub struct AmqpInboundConfig {
    /// The queue to consume (declared and bound by the caller).
    pub queue: String,
    /// The inbox's consumer name. `[a-z0-9_-]`.
    pub consumer: String,
    /// Unacknowledged deliveries RabbitMQ may push at once (`basic.qos`). Default 256.
    /// Keep the read-model store's `inbox_ids_max` above it.
    pub prefetch_max: u16,
    /// Most deliveries per transaction. Default 256.
    pub batch_messages_max: usize,
    /// How long a batch waits for more deliveries once it has one. Default 20 ms.
    pub batch_linger_ms: u64,
    /// Delay after a rolled-back batch. Default 500 ms.
    pub retry_delay_ms: u64,
}

impl AmqpInboundConfig {
    pub fn new(queue: &str, consumer: &str) -> Self {
        Self {
            queue: queue.into(),
            consumer: consumer.into(),
            prefetch_max: 256,
            batch_messages_max: 256,
            batch_linger_ms: 20,
            retry_delay_ms: 500,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_consumer_name(&self.consumer)?;
        for (field, zero) in [
            ("queue", self.queue.is_empty()),
            ("prefetch_max", self.prefetch_max == 0),
            ("batch_messages_max", self.batch_messages_max == 0),
        ] {
            if zero {
                return Err(ConfigError::Zero(field));
            }
        }
        Ok(())
    }
}

/// Starts RabbitMQ inbound consumers.
pub struct AmqpInbound;

impl AmqpInbound {
    /// Connects to `url`, starts consuming `config.queue` and runs `handler` inside the
    /// read-model transaction that records the inbox.
    pub async fn spawn(
        url: &str,
        read_models: ReadModelStore,
        config: AmqpInboundConfig,
        handler: impl InboundHandler,
    ) -> Result<InboundHandle, InboundError> {
        let target = HandlerTarget::new(read_models, &config.consumer, handler);
        Self::spawn_into(url, config, Arc::new(target)).await
    }

    /// Connects to `url` and starts consuming `config.queue` into `target` (a handler,
    /// or a command bus).
    pub async fn spawn_into(
        url: &str,
        config: AmqpInboundConfig,
        target: Arc<dyn InboundTarget>,
    ) -> Result<InboundHandle, InboundError> {
        config.validate()?;
        let broker = |e: lapin::Error| InboundError::Broker(format!("RabbitMQ: {e}"));
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(broker)?;
        let channel = connection.create_channel().await.map_err(broker)?;
        channel
            .basic_qos(config.prefetch_max, BasicQosOptions::default())
            .await
            .map_err(broker)?;
        let consumer = channel
            .basic_consume(
                config.queue.as_str().into(),
                config.consumer.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (progress_tx, progress_rx) = watch::channel(InboundProgress::default());
        let task = tokio::spawn(async move {
            let result = consume(consumer, config, target, stop_rx, progress_tx).await;
            // The connection lives until the consumer ends; unacknowledged deliveries
            // go back to the queue when it closes.
            let _ = connection
                .close(200, "eventum inbound stopped".into())
                .await;
            result
        });
        Ok(InboundHandle::new(stop_tx, progress_rx, task))
    }
}

fn header_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn to_inbound(delivery: &Delivery) -> Option<InboundMessage> {
    let headers: Vec<(String, String)> = delivery
        .properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .filter_map(|(k, v)| header_text(v).map(|v| (k.as_str().to_owned(), v)))
                .collect()
        })
        .unwrap_or_default();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let id: EventId = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_owned())
        .or_else(|| find(header::CE_ID))
        .and_then(|v| uuid::Uuid::parse_str(&v).ok())?;
    Some(InboundMessage {
        id,
        subject: delivery.routing_key.as_str().to_owned(),
        event_type: find(header::CE_TYPE),
        key: find(header::CE_SUBJECT),
        headers,
        body: bytes::Bytes::from(delivery.data.clone()),
    })
}

async fn consume(
    mut consumer: lapin::Consumer,
    config: AmqpInboundConfig,
    target: Arc<dyn InboundTarget>,
    mut stop: watch::Receiver<bool>,
    progress: watch::Sender<InboundProgress>,
) -> Result<(), InboundError> {
    let linger = Duration::from_millis(config.batch_linger_ms);
    loop {
        let first = tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            d = consumer.next() => d,
        };
        let first = match first {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(InboundError::Broker(format!("RabbitMQ: {e}"))),
            None => {
                return Err(InboundError::Broker(
                    "RabbitMQ consumer was cancelled".into(),
                ));
            }
        };
        let mut deliveries = vec![first];
        let deadline = Instant::now() + linger;
        while deliveries.len() < config.batch_messages_max {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(d))) => deliveries.push(d),
                Ok(Some(Err(e))) => return Err(InboundError::Broker(format!("RabbitMQ: {e}"))),
                Ok(None) | Err(_) => break,
            }
        }
        let inbound: Vec<InboundMessage> = deliveries.iter().filter_map(to_inbound).collect();
        let unidentified = (deliveries.len() - inbound.len()) as u64;
        let outcome = target.deliver(inbound).await;
        let last = deliveries.last().expect("a batch has a first delivery");
        match outcome {
            Ok(delivered) => {
                // One ack covers the batch: deliveries on a channel are tagged in order.
                let ack = BasicAckOptions { multiple: true };
                if let Err(e) = last.ack(ack).await {
                    tracing::warn!(consumer = %config.consumer, error = %e, "ack failed; redeliveries will be dropped by the inbox");
                }
                progress.send_modify(|p| p.add(delivered, unidentified));
            }
            Err(e) => {
                tracing::warn!(consumer = %config.consumer, error = %e, "batch rolled back; requeued");
                progress.send_modify(|p| p.failures_total += 1);
                let nack = BasicNackOptions {
                    multiple: true,
                    requeue: true,
                };
                let _ = last.nack(nack).await;
                tokio::time::sleep(Duration::from_millis(config.retry_delay_ms)).await;
            }
        }
    }
}
