//! Inbound from Kafka: a consumer-group member reads its topics in batches into an
//! [`InboundTarget`] (a handler through the inbox, or the command bus) and commits the
//! batch's offsets only after the target has committed. Kafka does not redeliver by
//! itself, so a failed batch is retried in hand, with a delay, until it goes through.
//! A copy that arrives anyway (a relay re-sent after a crash, a rebalance before the
//! commit landed) carries the same `ce_id`, and the inbox drops it; a record without
//! `ce_id` is identified by its topic, partition and offset.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventum_projections::ReadModelStore;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ConfigError;
use crate::inbound::{InboundError, InboundHandle, InboundMessage, InboundProgress};
use crate::inbound_target::{
    HandlerTarget, InboundHandler, InboundTarget, Retry, check_consumer_name, deliver_with_retry,
    id_from_location,
};
use crate::kafka::bootstrap_servers;
use crate::message::header;

/// Settings of a [`KafkaInbound`] consumer.
#[derive(Clone, Debug)]
pub struct KafkaInboundConfig {
    /// The consumer group (`group.id`); also the inbox's consumer name with
    /// [`KafkaInbound::spawn`]. `[a-z0-9_-]`.
    pub group: String,
    /// The topics to consume.
    pub topics: Vec<String>,
    /// Most records per delivered batch. Default 256. Keep the read-model store's
    /// `inbox_ids_max` above it.
    pub batch_messages_max: usize,
    /// How long a batch waits for more records once it has one. Default 20 ms.
    pub batch_linger_ms: u64,
    /// Delay before a failed batch is delivered again. Default 500 ms.
    pub retry_delay_ms: u64,
    /// Failed deliveries of one batch before the consumer stops with an error; `None`
    /// (the default) retries until it goes through, holding the partitions' order.
    pub retry_attempts_max: Option<u32>,
    /// Where a group without committed offsets starts: `earliest` (default) or `latest`.
    pub start_from: String,
    /// `session.timeout.ms`: how long the group waits for a silent member. Default
    /// 10,000 ms.
    pub session_timeout_ms: u64,
    /// Further librdkafka properties, set last.
    pub properties: Vec<(String, String)>,
}

impl KafkaInboundConfig {
    pub fn new(group: &str, topics: &[&str]) -> Self {
        Self {
            group: group.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            batch_messages_max: 256,
            batch_linger_ms: 20,
            retry_delay_ms: 500,
            retry_attempts_max: None,
            start_from: "earliest".into(),
            session_timeout_ms: 10_000,
            properties: Vec::new(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_consumer_name(&self.group)?;
        for (field, zero) in [
            (
                "topics",
                self.topics.is_empty() || self.topics.iter().any(String::is_empty),
            ),
            ("batch_messages_max", self.batch_messages_max == 0),
            ("retry_delay_ms", self.retry_delay_ms == 0),
            ("retry_attempts_max", self.retry_attempts_max == Some(0)),
        ] {
            if zero {
                return Err(ConfigError::Zero(field));
            }
        }
        if !matches!(self.start_from.as_str(), "earliest" | "latest") {
            return Err(ConfigError::BadUrl {
                url: self.start_from.clone(),
                reason: "start_from is `earliest` or `latest`".into(),
            });
        }
        Ok(())
    }
}

/// Starts Kafka inbound consumers.
pub struct KafkaInbound;

impl KafkaInbound {
    /// Joins `config.group` on the brokers of `url` (`kafka://host:9092`) and runs
    /// `handler` inside the read-model transaction that records the inbox (under the
    /// group's name).
    pub async fn spawn(
        url: &str,
        read_models: ReadModelStore,
        config: KafkaInboundConfig,
        handler: impl InboundHandler,
    ) -> Result<InboundHandle, InboundError> {
        let target = HandlerTarget::new(read_models, &config.group, handler);
        Self::spawn_into(url, config, Arc::new(target)).await
    }

    /// Joins `config.group` and consumes into `target`.
    pub async fn spawn_into(
        url: &str,
        config: KafkaInboundConfig,
        target: Arc<dyn InboundTarget>,
    ) -> Result<InboundHandle, InboundError> {
        config.validate()?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap_servers(url))
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", &config.start_from)
            .set("session.timeout.ms", config.session_timeout_ms.to_string());
        for (k, v) in &config.properties {
            c.set(k, v);
        }
        let consumer: StreamConsumer = c
            .create()
            .map_err(|e| InboundError::Broker(format!("Kafka consumer: {e}")))?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| InboundError::Broker(format!("Kafka subscribe: {e}")))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (progress_tx, progress_rx) = watch::channel(InboundProgress::default());
        let task = tokio::spawn(consume(
            Arc::new(consumer),
            config,
            target,
            stop_rx,
            progress_tx,
        ));
        Ok(InboundHandle::new(stop_tx, progress_rx, task))
    }
}

fn to_inbound(m: &BorrowedMessage<'_>) -> InboundMessage {
    let headers: Vec<(String, String)> = m
        .headers()
        .map(|hs| {
            hs.iter()
                .filter_map(|h| {
                    let value = std::str::from_utf8(h.value?).ok()?;
                    Some((h.key.to_owned(), value.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let id = find(header::CE_ID)
        .and_then(|v| uuid::Uuid::parse_str(&v).ok())
        .unwrap_or_else(|| {
            id_from_location(&format!(
                "kafka/{}/{}/{}",
                m.topic(),
                m.partition(),
                m.offset()
            ))
        });
    let key = m
        .key()
        .and_then(|k| std::str::from_utf8(k).ok())
        .map(str::to_owned)
        .or_else(|| find(header::CE_SUBJECT));
    InboundMessage {
        id,
        subject: m.topic().to_owned(),
        event_type: find(header::CE_TYPE),
        key,
        headers,
        body: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
    }
}

/// The offsets to commit after a batch: per partition, one past its last record.
type Offsets = HashMap<(String, i32), i64>;

fn offsets_list(offsets: &Offsets) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        // Only fails for an invalid offset kind; `Offset::Offset` is valid.
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
    }
    tpl
}

async fn consume(
    consumer: Arc<StreamConsumer>,
    config: KafkaInboundConfig,
    target: Arc<dyn InboundTarget>,
    mut stop: watch::Receiver<bool>,
    progress: watch::Sender<InboundProgress>,
) -> Result<(), InboundError> {
    let linger = Duration::from_millis(config.batch_linger_ms);
    let retry = Retry {
        delay_ms: config.retry_delay_ms,
        attempts_max: config.retry_attempts_max,
    };
    loop {
        let first = tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            m = consumer.recv() => m,
        };
        let mut batch = Vec::new();
        let mut offsets = Offsets::new();
        let mut take = |m: BorrowedMessage<'_>, batch: &mut Vec<InboundMessage>| {
            offsets.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
            batch.push(to_inbound(&m));
        };
        match first {
            Ok(m) => take(m, &mut batch),
            Err(e) => {
                // librdkafka reconnects by itself; errors here are reports, not the end.
                tracing::warn!(group = %config.group, error = %e, "Kafka consumer error");
                progress.send_modify(|p| p.failures_total += 1);
                tokio::time::sleep(Duration::from_millis(config.retry_delay_ms)).await;
                continue;
            }
        }
        let deadline = Instant::now() + linger;
        while batch.len() < config.batch_messages_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => take(m, &mut batch),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let delivered = deliver_with_retry(
            target.as_ref(),
            &batch,
            retry,
            &config.group,
            &mut stop,
            &progress,
        )
        .await;
        let delivered = match delivered {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e),
        };
        // Committed before the next batch is taken (one round trip per batch): a commit
        // that fails means a redelivery, which the inbox drops.
        let tpl = offsets_list(&offsets);
        let c = consumer.clone();
        match tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(group = %config.group, error = %e, "offset commit failed; the inbox will drop the redelivery")
            }
            Err(e) => {
                tracing::warn!(group = %config.group, error = %e, "offset commit task failed")
            }
        }
        progress.send_modify(|p| p.add(delivered, 0));
    }
}
