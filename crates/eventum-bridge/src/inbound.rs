//! Inbound: a durable JetStream pull consumer feeding a handler through an inbox. Each
//! fetched batch runs in one read-model transaction: the inbox records every message id
//! (`ce_id`, else `Nats-Msg-Id`), the handler's writes land with them, and only after
//! the commit are the messages acknowledged. A redelivered or re-published message
//! whose id the inbox holds is acknowledged and dropped without calling the handler.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use bytes::Bytes;
use eventum_core::{ErrorCode, EventId};
use eventum_projections::{ReadModelStore, TxError};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ConfigError;
use crate::inbound_target::{
    Delivered, HandlerTarget, InboundHandler, InboundTarget, check_consumer_name,
};
use crate::message::header;

/// One broker message as the handler sees it.
#[derive(Clone, Debug)]
pub struct InboundMessage {
    /// The deduplication id: `ce_id`, else `Nats-Msg-Id`.
    pub id: EventId,
    pub subject: String,
    /// `ce_type`, when present.
    pub event_type: Option<String>,
    /// `ce_subject` (the source stream id), when present.
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl InboundMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a handler refused a message; the batch is rolled back and redelivered later.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error("{0}")]
    Failed(String),
}

/// Why an inbound consumer stopped.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The broker failed in a way the consumer does not recover from by itself.
    #[error("{0}")]
    Broker(String),
    /// A batch failed `attempts` times in a row (the consumer's retry bound).
    #[error("gave up on a batch after {attempts} failed attempts: {last}")]
    RetriesExhausted { attempts: u32, last: String },
    #[error("the inbound task panicked")]
    Panicked,
}

impl InboundError {
    pub fn code(&self) -> ErrorCode {
        match self {
            InboundError::Config(e) => e.code(),
            InboundError::Broker(_) => ErrorCode::Unavailable,
            InboundError::RetriesExhausted { .. } => ErrorCode::StorageFailed,
            InboundError::Panicked => ErrorCode::StorageFailed,
        }
    }
}

/// Settings of a [`NatsInbound`] consumer.
#[derive(Clone, Debug)]
pub struct NatsInboundConfig {
    /// The JetStream stream to consume.
    pub stream: String,
    /// Durable consumer name; also the inbox's consumer name. `[a-z0-9_-]`.
    pub consumer: String,
    /// One subject filter (nats-server 2.9 takes a single `filter_subject`).
    pub filter_subject: String,
    /// Most messages per fetch, hence per transaction. Default 256. Keep the read-model
    /// store's `inbox_ids_max` above the messages unacknowledged at once (this, or the
    /// consumer's `max_ack_pending`), so that no redelivery outlives its inbox entry.
    pub batch_messages_max: usize,
    /// How long one fetch waits for messages. Default 500 ms.
    pub fetch_wait_ms: u64,
    /// Redelivery delay of an unacknowledged message. Default 30,000 ms.
    pub ack_wait_ms: u64,
    /// Deliveries of one message before JetStream gives up on it. Default 20.
    pub deliveries_max: i64,
    /// Delay after a failed fetch or a failed batch before the next attempt. Default
    /// 500 ms.
    pub retry_delay_ms: u64,
}

impl NatsInboundConfig {
    pub fn new(stream: &str, consumer: &str, filter_subject: &str) -> Self {
        Self {
            stream: stream.into(),
            consumer: consumer.into(),
            filter_subject: filter_subject.into(),
            batch_messages_max: 256,
            fetch_wait_ms: 500,
            ack_wait_ms: 30_000,
            deliveries_max: 20,
            retry_delay_ms: 500,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_consumer_name(&self.consumer)?;
        for (field, zero) in [
            ("stream", self.stream.is_empty()),
            ("filter_subject", self.filter_subject.is_empty()),
            ("batch_messages_max", self.batch_messages_max == 0),
            ("fetch_wait_ms", self.fetch_wait_ms == 0),
            ("deliveries_max", self.deliveries_max <= 0),
        ] {
            if zero {
                return Err(ConfigError::Zero(field));
            }
        }
        Ok(())
    }
}

/// Counters of an inbound consumer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboundProgress {
    /// Messages whose handler ran and committed.
    pub handled_total: u64,
    /// Messages dropped because the inbox had their id.
    pub duplicates_total: u64,
    /// Messages without a usable id, acknowledged and dropped.
    pub unidentified_total: u64,
    /// Messages refused for good (a rejected command), acknowledged and dropped.
    pub rejected_total: u64,
    /// Failed fetches and rolled-back batches.
    pub failures_total: u64,
}

impl InboundProgress {
    /// Adds one acknowledged batch.
    pub(crate) fn add(&mut self, delivered: Delivered, unidentified: u64) {
        self.handled_total += delivered.handled;
        self.duplicates_total += delivered.duplicates;
        self.rejected_total += delivered.rejected;
        self.unidentified_total += unidentified;
    }

    /// Messages the consumer is done with: handled, duplicate, rejected or unidentified.
    pub fn seen_total(&self) -> u64 {
        self.handled_total + self.duplicates_total + self.rejected_total + self.unidentified_total
    }
}

/// Starts inbound consumers.
pub struct NatsInbound;

impl NatsInbound {
    /// Creates (or reuses) the durable pull consumer and starts consuming into
    /// `handler`, which runs inside the read-model transaction that records the inbox
    /// (under the consumer's name).
    pub async fn spawn(
        jetstream: jetstream::Context,
        read_models: ReadModelStore,
        config: NatsInboundConfig,
        handler: impl InboundHandler,
    ) -> Result<InboundHandle, InboundError> {
        let target = HandlerTarget::new(read_models, &config.consumer, handler);
        Self::spawn_into(jetstream, config, Arc::new(target)).await
    }

    /// Creates (or reuses) the durable pull consumer and starts consuming into `target`
    /// (a handler, or a command bus).
    pub async fn spawn_into(
        jetstream: jetstream::Context,
        config: NatsInboundConfig,
        target: Arc<dyn InboundTarget>,
    ) -> Result<InboundHandle, InboundError> {
        config.validate()?;
        let broker = |e: &dyn std::fmt::Display| InboundError::Broker(format!("JetStream: {e}"));
        let stream = jetstream
            .get_stream(&config.stream)
            .await
            .map_err(|e| broker(&e))?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                &config.consumer,
                pull::Config {
                    durable_name: Some(config.consumer.clone()),
                    filter_subject: config.filter_subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_millis(config.ack_wait_ms),
                    max_deliver: config.deliveries_max,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| broker(&e))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (progress_tx, progress_rx) = watch::channel(InboundProgress::default());
        let task = tokio::spawn(consume(consumer, config, target, stop_rx, progress_tx));
        Ok(InboundHandle {
            stop_tx,
            progress: progress_rx,
            task,
        })
    }
}

/// A running inbound consumer.
pub struct InboundHandle {
    stop_tx: watch::Sender<bool>,
    progress: watch::Receiver<InboundProgress>,
    task: JoinHandle<Result<(), InboundError>>,
}

impl InboundHandle {
    pub(crate) fn new(
        stop_tx: watch::Sender<bool>,
        progress: watch::Receiver<InboundProgress>,
        task: JoinHandle<Result<(), InboundError>>,
    ) -> Self {
        Self {
            stop_tx,
            progress,
            task,
        }
    }

    pub fn progress(&self) -> watch::Receiver<InboundProgress> {
        self.progress.clone()
    }

    /// Stops after the batch in hand; unacknowledged messages are redelivered later.
    pub async fn stop(self) -> Result<(), InboundError> {
        let _ = self.stop_tx.send(true);
        self.task.await.unwrap_or(Err(InboundError::Panicked))
    }
}

fn to_inbound(message: &async_nats::jetstream::Message) -> Option<InboundMessage> {
    let headers: Vec<(String, String)> = message
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .filter_map(|(name, values)| {
            values
                .first()
                .map(|v| (name.to_string(), v.as_str().to_owned()))
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let id = find(header::CE_ID)
        .or_else(|| find("Nats-Msg-Id"))
        .and_then(|v| uuid::Uuid::parse_str(&v).ok())?;
    Some(InboundMessage {
        id,
        subject: message.subject.to_string(),
        event_type: find(header::CE_TYPE),
        key: find(header::CE_SUBJECT),
        headers,
        body: message.payload.clone(),
    })
}

async fn consume(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    config: NatsInboundConfig,
    target: Arc<dyn InboundTarget>,
    mut stop: watch::Receiver<bool>,
    progress: watch::Sender<InboundProgress>,
) -> Result<(), InboundError> {
    let retry_delay = Duration::from_millis(config.retry_delay_ms);
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let fetched = tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            r = fetch(&consumer, &config) => r,
        };
        let messages = match fetched {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(consumer = %config.consumer, error = %e, "fetch failed; retrying");
                progress.send_modify(|p| p.failures_total += 1);
                tokio::time::sleep(retry_delay).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let inbound: Vec<InboundMessage> = messages.iter().filter_map(to_inbound).collect();
        let unidentified = (messages.len() - inbound.len()) as u64;
        match target.deliver(inbound).await {
            Ok(delivered) => {
                // Acknowledge only after the commit: a lost ack means a redelivery, which
                // the inbox then drops.
                for m in &messages {
                    if let Err(e) = m.ack().await {
                        tracing::warn!(consumer = %config.consumer, error = %e, "ack failed; the message will be redelivered and dropped by the inbox");
                    }
                }
                progress.send_modify(|p| p.add(delivered, unidentified));
            }
            Err(e) => {
                // Nothing committed, nothing acknowledged: JetStream redelivers after
                // `ack_wait`, up to `deliveries_max` times.
                tracing::warn!(consumer = %config.consumer, error = %e, "batch rolled back");
                progress.send_modify(|p| p.failures_total += 1);
                tokio::time::sleep(retry_delay).await;
            }
        }
    }
}

async fn fetch(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    config: &NatsInboundConfig,
) -> Result<Vec<async_nats::jetstream::Message>, String> {
    // `batch`, not `fetch`: a fetch is a no-wait request that returns at once when nothing
    // is pending, so an idle consumer would spin on it; a batch request waits up to
    // `fetch_wait_ms` for the first message.
    let mut batch = consumer
        .batch()
        .max_messages(config.batch_messages_max)
        .expires(Duration::from_millis(config.fetch_wait_ms))
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(m) = batch.next().await {
        out.push(m.map_err(|e| e.to_string())?);
    }
    Ok(out)
}
