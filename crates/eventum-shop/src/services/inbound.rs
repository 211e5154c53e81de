//! Inbound from the broker: one durable JetStream pull consumer per topic a service
//! follows, feeding a [`Target`] in bounded batches. A message is acknowledged only once
//! its target is done with it (handled, dropped as a duplicate, or refused for good);
//! one that failed for a technical reason is negatively acknowledged with a growing
//! delay and comes again, however long the outage lasts (nothing is lost). Two targets:
//! [`CommandTarget`] turns messages into the service's commands through an inbox, and
//! [`ViewTarget`] folds them into read models in the inbox's own transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::AckPolicy, consumer::pull};
use async_trait::async_trait;
use bytes::Bytes;
use eventum_bridge::header;
use eventum_core::CommandEnvelope;
use eventum_projections::{ReadModelStore, StoreTx, TxError};
use eventum_runtime::CommandBus;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::broker::Broker;
use super::reactions::{Backend, ordering_key};

/// Bounds of one inbound consumer. Every batch, wait and retry is limited here.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Most messages pulled, handled and acknowledged together. Default 256.
    pub batch_messages_max: usize,
    /// How long a batch waits for more messages once it has one. Default 1 ms.
    pub batch_linger_ms: u64,
    /// A delivered message not acknowledged within this comes again (a crashed
    /// service's messages come back to its successor after it). Default 30,000 ms.
    pub ack_wait_ms: u64,
    /// Most messages delivered and not yet acknowledged per consumer. Default 1,024;
    /// keep the inbox's `inbox_ids_max` above it.
    pub ack_pending_max: i64,
    /// Orders (ordering keys) handled at once within a batch; one key's messages run in
    /// order. Default 128.
    pub keys_in_flight_max: usize,
    /// Redelivery delay after a technical failure, doubling per delivery up to the max.
    /// Defaults 100 ms and 10,000 ms; also the pause after a failed pull.
    pub retry_delay_ms_min: u64,
    pub retry_delay_ms_max: u64,
    /// Deliveries of one message before JetStream gives up on it; `-1` (the default)
    /// never gives up. Only technical failures are retried (a broken message or a
    /// refused command is acknowledged at once), so giving up would lose an order
    /// during an outage of the service's store.
    pub deliveries_max: i64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            batch_messages_max: 256,
            batch_linger_ms: 1,
            ack_wait_ms: 30_000,
            ack_pending_max: 1_024,
            keys_in_flight_max: 128,
            retry_delay_ms_min: 100,
            retry_delay_ms_max: 10_000,
            deliveries_max: -1,
        }
    }
}

impl ConsumerConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.batch_messages_max == 0
            || self.ack_wait_ms == 0
            || self.keys_in_flight_max == 0
            || self.retry_delay_ms_min == 0
        {
            return Err(
                "consumer batch, waits, keys in flight and retry delay must be positive".into(),
            );
        }
        if self.ack_pending_max < self.batch_messages_max as i64 {
            return Err("ack_pending_max must be at least batch_messages_max".into());
        }
        if self.retry_delay_ms_max < self.retry_delay_ms_min {
            return Err("retry_delay_ms_max must be at least retry_delay_ms_min".into());
        }
        if self.deliveries_max == 0 || self.deliveries_max < -1 {
            return Err("deliveries_max must be positive or -1 (unbounded)".into());
        }
        Ok(())
    }

    /// The redelivery delay of a message delivered `delivered` times.
    pub fn retry_delay(&self, delivered: i64) -> Duration {
        let doublings = (delivered.max(1) - 1).min(30) as u32;
        let ms = self
            .retry_delay_ms_min
            .saturating_mul(1u64 << doublings)
            .min(self.retry_delay_ms_max);
        Duration::from_millis(ms)
    }
}

/// One broker message as the shop sees it: a relayed event of another service.
#[derive(Clone, Debug)]
pub struct BusMessage {
    /// The event id (`ce_id`, else `Nats-Msg-Id`): the inbox's deduplication id.
    pub id: Uuid,
    pub event_type: String,
    /// The stream the event was written to in its service (`ce_subject`).
    pub source_stream: String,
    pub correlation_id: Option<Uuid>,
    /// The event's version in its stream (`eventum_version`).
    pub version: Option<u64>,
    /// The event's position in its service's log (`eventum_position`).
    pub position: Option<u64>,
    /// When it was recorded (`ce_time`, RFC 3339).
    pub time: String,
    pub body: Bytes,
    /// Delivered to this consumer before (after a crash, a lost acknowledgement or a
    /// retry): the only messages the inbox can already hold.
    pub redelivered: bool,
}

impl BusMessage {
    /// The message's fields from its headers; `None` without a usable id and type.
    pub fn from_headers(find: impl Fn(&str) -> Option<String>, body: Bytes) -> Option<Self> {
        let id = find(header::CE_ID)
            .or_else(|| find("Nats-Msg-Id"))
            .and_then(|v| Uuid::parse_str(&v).ok())?;
        let event_type = find(header::CE_TYPE).filter(|t| !t.is_empty())?;
        Some(Self {
            id,
            event_type,
            source_stream: find(header::CE_SUBJECT).unwrap_or_default(),
            correlation_id: find(header::CORRELATION_ID).and_then(|v| Uuid::parse_str(&v).ok()),
            version: find(header::EVENTUM_VERSION).and_then(|v| v.parse().ok()),
            position: find(header::EVENTUM_POSITION).and_then(|v| v.parse().ok()),
            time: find(header::CE_TIME).unwrap_or_default(),
            body,
            redelivered: false,
        })
    }

    fn from_jetstream(message: &jetstream::Message) -> Option<Self> {
        let headers = message.headers.as_ref()?;
        let mut m = Self::from_headers(
            |name| headers.get(name).map(|v| v.as_str().to_owned()),
            message.payload.clone(),
        )?;
        m.redelivered = message.info().is_ok_and(|i| i.delivered > 1);
        Some(m)
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn data(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Handled: its effects are durable.
    Done,
    /// The inbox had its id: handled before, dropped.
    Duplicate,
    /// A type this consumer's service does not follow (a shared category topic).
    Skipped,
    /// Refused for good (a broken body, a command the domain refused): acknowledged so
    /// that it does not come back forever, and logged.
    Refused,
    /// A technical failure: not acknowledged, comes again later.
    Retry,
}

/// The receiving end of a consumer.
#[async_trait]
pub trait Target: Send + Sync + 'static {
    /// One verdict per message of `batch` (given in broker order), in the same order.
    async fn deliver(&self, consumer: &str, batch: &[BusMessage]) -> Vec<Verdict>;
}

/// Counters of one consumer, for status lines and tests.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub done: AtomicU64,
    pub duplicates: AtomicU64,
    pub skipped: AtomicU64,
    pub refused: AtomicU64,
    pub retried: AtomicU64,
    /// Failed pulls and messages without an id or a type.
    pub failures: AtomicU64,
}

impl ConsumerStats {
    fn count(&self, verdict: Verdict) {
        let counter = match verdict {
            Verdict::Done => &self.done,
            Verdict::Duplicate => &self.duplicates,
            Verdict::Skipped => &self.skipped,
            Verdict::Refused => &self.refused,
            Verdict::Retry => &self.retried,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running consumer.
pub struct ConsumerHandle {
    pub name: String,
    pub stats: Arc<ConsumerStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ConsumerHandle {
    /// Stops after the batch in hand; what it did not acknowledge comes again later.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Creates (or reuses) the durable consumer `name` on `topic` of the shop's stream and
/// starts feeding `target`. A new consumer starts at the beginning of the stream, so a
/// service started after others have published misses nothing.
pub async fn spawn_consumer(
    broker: &Broker,
    name: &str,
    topic: &str,
    config: ConsumerConfig,
    target: Arc<dyn Target>,
) -> anyhow::Result<ConsumerHandle> {
    config.check().map_err(anyhow::Error::msg)?;
    let stream = broker
        .jetstream
        .get_stream(&broker.config.stream)
        .await
        .map_err(|e| anyhow::anyhow!("JetStream stream {}: {e}", broker.config.stream))?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_owned()),
                filter_subject: broker.config.subject(topic),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_millis(config.ack_wait_ms),
                max_deliver: config.deliveries_max,
                max_ack_pending: config.ack_pending_max,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("consumer {name} on {topic}: {e}"))?;
    let (stop, stop_rx) = watch::channel(false);
    let stats = Arc::new(ConsumerStats::default());
    let task = tokio::spawn(consume(
        consumer,
        name.to_owned(),
        config,
        target,
        stats.clone(),
        stop_rx,
    ));
    Ok(ConsumerHandle {
        name: name.to_owned(),
        stats,
        stop,
        task,
    })
}

async fn consume(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    name: String,
    config: ConsumerConfig,
    target: Arc<dyn Target>,
    stats: Arc<ConsumerStats>,
    mut stop: watch::Receiver<bool>,
) {
    let pause = Duration::from_millis(config.retry_delay_ms_min);
    let linger = Duration::from_millis(config.batch_linger_ms);
    loop {
        if *stop.borrow() {
            return;
        }
        // A standing pull (refilled as it drains, with heartbeats): no polling while
        // idle, and messages arrive while the previous batch is being handled.
        let opened = consumer
            .stream()
            .max_messages_per_batch(config.batch_messages_max)
            .messages()
            .await;
        let mut messages = match opened {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot pull; retrying");
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        loop {
            let first = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                m = messages.next() => m,
            };
            let mut raw = match first {
                Some(Ok(m)) => vec![m],
                Some(Err(e)) => {
                    // Missed heartbeats, a lost connection: pull anew after a pause.
                    tracing::warn!(consumer = %name, error = %e, "pull failed; pulling again");
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                    break;
                }
                None => break,
            };
            let deadline = tokio::time::Instant::now() + linger;
            while raw.len() < config.batch_messages_max {
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(Some(Ok(m))) => raw.push(m),
                    _ => break,
                }
            }
            handle(&name, &config, target.as_ref(), &stats, raw).await;
        }
    }
}

async fn handle(
    name: &str,
    config: &ConsumerConfig,
    target: &dyn Target,
    stats: &ConsumerStats,
    raw: Vec<jetstream::Message>,
) {
    let mut parsed = Vec::with_capacity(raw.len());
    let mut identified = Vec::with_capacity(raw.len());
    for m in &raw {
        match BusMessage::from_jetstream(m) {
            Some(p) => {
                parsed.push(p);
                identified.push(m);
            }
            None => {
                // Not a relayed event: nothing could handle it, ever.
                tracing::warn!(consumer = %name, subject = %m.subject, "message without ce_id/ce_type; dropped");
                stats.failures.fetch_add(1, Ordering::Relaxed);
                ack(name, m, AckKind::Ack).await;
            }
        }
    }
    let verdicts = target.deliver(name, &parsed).await;
    debug_assert_eq!(verdicts.len(), parsed.len());
    for (m, verdict) in identified.into_iter().zip(verdicts) {
        stats.count(verdict);
        let kind = if verdict == Verdict::Retry {
            let delivered = m.info().map_or(1, |i| i.delivered);
            AckKind::Nak(Some(config.retry_delay(delivered)))
        } else {
            AckKind::Ack
        };
        ack(name, m, kind).await;
    }
}

async fn ack(consumer: &str, message: &jetstream::Message, kind: AckKind) {
    // A lost acknowledgement means one more delivery, which the inbox drops.
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(%consumer, error = %e, "acknowledgement failed; the message will come again");
    }
}

/// The namespace of command ids derived from message ids.
const COMMAND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7368_6f70_2d73_6572_7669_6365_2d63_6d64);

/// The id of command `index` that consumer `consumer` sends for message `message_id`:
/// a redelivered message sends the same ids, which the bus and the aggregates'
/// streams recognise, so its effects happen once even past the inbox.
pub fn command_id(consumer: &str, message_id: Uuid, index: usize) -> Uuid {
    let mut name = Vec::with_capacity(consumer.len() + 24);
    name.extend_from_slice(consumer.as_bytes());
    name.push(0);
    name.extend_from_slice(message_id.as_bytes());
    name.extend_from_slice(&(index as u64).to_be_bytes());
    Uuid::new_v5(&COMMAND_ID_NAMESPACE, &name)
}

/// The outcome of reading the inbox without writing: the transaction is abandoned, not
/// committed, so a peek costs no sync.
enum Peek {
    Seen(Vec<bool>),
    Tx(TxError),
}

impl From<TxError> for Peek {
    fn from(e: TxError) -> Self {
        Peek::Tx(e)
    }
}

/// Which of `ids` the inbox of `consumer` holds.
async fn inbox_peek(
    inbox: &ReadModelStore,
    consumer: &str,
    ids: Vec<Uuid>,
) -> Result<Vec<bool>, TxError> {
    let consumer = consumer.to_owned();
    let peeked = inbox
        .transaction_async(move |tx| -> Result<(), Peek> {
            let mut seen = Vec::with_capacity(ids.len());
            for id in ids {
                seen.push(tx.inbox_contains(&consumer, id)?);
            }
            Err(Peek::Seen(seen))
        })
        .await;
    match peeked {
        Err(Peek::Seen(seen)) => Ok(seen),
        Err(Peek::Tx(e)) => Err(e),
        Ok(()) => unreachable!("the peek always abandons its transaction"),
    }
}

/// A service's commands from the broker: each followed message becomes the commands
/// [`Backend::react`] names, sent on the service's bus with ids derived from the message
/// id. The inbox in front drops a message already handled; its ids are recorded after
/// the commands ran (the event store and the inbox cannot commit together), so a crash
/// in between sends the same command ids once more, which append nothing.
pub struct CommandTarget {
    pub backend: Backend,
    pub bus: Arc<CommandBus>,
    pub inbox: ReadModelStore,
    pub keys_in_flight_max: usize,
}

impl CommandTarget {
    async fn run(&self, consumer: &str, message: &BusMessage) -> Verdict {
        let data: Value = match serde_json::from_slice(&message.body) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%consumer, id = %message.id, error = %e, "body is not JSON; refused");
                return Verdict::Refused;
            }
        };
        let mut verdict = Verdict::Done;
        for (index, spec) in self
            .backend
            .react(&message.event_type, data)
            .into_iter()
            .enumerate()
        {
            let envelope = CommandEnvelope {
                command_id: command_id(consumer, message.id, index),
                command_type: spec.command_type,
                payload: spec.payload,
                correlation_id: message.correlation_id.unwrap_or(message.id),
                causation_id: message.id,
            };
            let command_type = envelope.command_type.clone();
            match self.bus.dispatch_envelope(envelope, None).await {
                Ok(_) => {}
                Err(e) if e.is_transient() => {
                    tracing::debug!(%consumer, %command_type, error = %e, "command failed; will retry");
                    return Verdict::Retry;
                }
                Err(e) => {
                    tracing::info!(%consumer, %command_type, id = %message.id, error = %e, "command refused");
                    verdict = Verdict::Refused;
                }
            }
        }
        verdict
    }
}

#[async_trait]
impl Target for CommandTarget {
    async fn deliver(&self, consumer: &str, batch: &[BusMessage]) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Skipped; batch.len()];
        let followed: Vec<usize> = (0..batch.len())
            .filter(|&i| {
                self.backend
                    .follows()
                    .contains(&batch[i].event_type.as_str())
            })
            .collect();
        if followed.is_empty() {
            return verdicts;
        }
        // Only a message delivered before can be in the inbox: a first delivery skips
        // the lookup. (A copy the relay re-published after JetStream's duplicate window
        // is a first delivery too; its commands carry the ids of the first copy's, which
        // the aggregates recognise.)
        let again: Vec<usize> = (0..followed.len())
            .filter(|&k| batch[followed[k]].redelivered)
            .collect();
        let mut seen = vec![false; followed.len()];
        if !again.is_empty() {
            let ids = again.iter().map(|&k| batch[followed[k]].id).collect();
            match inbox_peek(&self.inbox, consumer, ids).await {
                Ok(found) => {
                    for (&k, found) in again.iter().zip(found) {
                        seen[k] = found;
                    }
                }
                Err(e) => {
                    tracing::warn!(%consumer, error = %e, "inbox unreadable; batch retried");
                    return vec![Verdict::Retry; batch.len()];
                }
            }
        }
        // One order's messages in broker order; orders side by side.
        let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut keys = Vec::new();
        for (&i, seen) in followed.iter().zip(seen) {
            if seen {
                verdicts[i] = Verdict::Duplicate;
                continue;
            }
            let key = ordering_key(&batch[i].source_stream);
            by_key
                .entry(key)
                .or_insert_with(|| {
                    keys.push(key);
                    Vec::new()
                })
                .push(i);
        }
        let groups: Vec<Vec<usize>> = keys.iter().filter_map(|k| by_key.remove(k)).collect();
        let results: Vec<(usize, Verdict)> = futures::stream::iter(groups)
            .map(|indexes: Vec<usize>| {
                async move {
                    let mut out = Vec::with_capacity(indexes.len());
                    let mut blocked = false;
                    for i in indexes {
                        // A later message of an order never overtakes a retried one.
                        let verdict = if blocked {
                            Verdict::Retry
                        } else {
                            self.run(consumer, &batch[i]).await
                        };
                        blocked |= verdict == Verdict::Retry;
                        out.push((i, verdict));
                    }
                    out
                }
            })
            .buffer_unordered(self.keys_in_flight_max.max(1))
            .flat_map(futures::stream::iter)
            .collect()
            .await;
        let mut handled = Vec::new();
        for (i, verdict) in results {
            verdicts[i] = verdict;
            if matches!(verdict, Verdict::Done | Verdict::Refused) {
                handled.push(batch[i].id);
            }
        }
        if !handled.is_empty() {
            let name = consumer.to_owned();
            let recorded = self
                .inbox
                .transaction_async(move |tx| -> Result<(), TxError> {
                    for id in handled {
                        tx.inbox_check_and_record(&name, id)?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = recorded {
                // Not acknowledged: they come again and run as the same commands.
                tracing::warn!(%consumer, error = %e, "inbox not recorded; batch retried");
                for v in &mut verdicts {
                    if matches!(v, Verdict::Done | Verdict::Refused) {
                        *v = Verdict::Retry;
                    }
                }
            }
        }
        verdicts
    }
}

/// Folds a message into read models inside the inbox's transaction.
pub type ApplyFn = dyn Fn(&mut StoreTx<'_>, &BusMessage) -> Result<(), TxError> + Send + Sync;

/// Read models from the broker: each batch is one read-model transaction that records
/// every message id in the inbox and applies the new ones, so the documents and the
/// inbox commit together (a duplicate is never applied twice).
pub struct ViewTarget {
    pub store: ReadModelStore,
    pub follows: &'static [&'static str],
    pub apply: Arc<ApplyFn>,
}

#[async_trait]
impl Target for ViewTarget {
    async fn deliver(&self, consumer: &str, batch: &[BusMessage]) -> Vec<Verdict> {
        let follows = self.follows;
        let apply = self.apply.clone();
        let name = consumer.to_owned();
        let messages = batch.to_vec();
        let outcome = self
            .store
            .transaction_async(move |tx| -> Result<Vec<Verdict>, TxError> {
                let mut verdicts = Vec::with_capacity(messages.len());
                for m in &messages {
                    if !follows.contains(&m.event_type.as_str()) {
                        verdicts.push(Verdict::Skipped);
                    } else if tx.inbox_check_and_record(&name, m.id)? {
                        apply(tx, m)?;
                        verdicts.push(Verdict::Done);
                    } else {
                        verdicts.push(Verdict::Duplicate);
                    }
                }
                Ok(verdicts)
            })
            .await;
        outcome.unwrap_or_else(|e| {
            tracing::warn!(%consumer, error = %e, "read-model batch rolled back; retried");
            vec![Verdict::Retry; batch.len()]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let c = ConsumerConfig::default();
        assert_eq!(c.retry_delay(1), Duration::from_millis(100));
        assert_eq!(c.retry_delay(2), Duration::from_millis(200));
        assert_eq!(c.retry_delay(8), Duration::from_millis(10_000));
        assert_eq!(c.retry_delay(i64::MAX), Duration::from_millis(10_000));
        assert!(c.check().is_ok());
        let bad = ConsumerConfig {
            ack_pending_max: 10,
            ..ConsumerConfig::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn command_ids_are_stable_per_consumer_message_and_index() {
        let m = Uuid::now_v7();
        assert_eq!(command_id("a", m, 0), command_id("a", m, 0));
        assert_ne!(command_id("a", m, 0), command_id("a", m, 1));
        assert_ne!(command_id("a", m, 0), command_id("b", m, 0));
        assert_ne!(command_id("a", m, 0), command_id("a", Uuid::now_v7(), 0));
    }

    #[test]
    fn messages_need_an_id_and_a_type() {
        let id = Uuid::now_v7();
        let headers = |with_type: bool| {
            move |name: &str| match name {
                header::CE_ID => Some(id.to_string()),
                header::CE_TYPE if with_type => Some("OrderCreated".to_owned()),
                header::CE_SUBJECT => Some("order-1".to_owned()),
                header::EVENTUM_VERSION => Some("3".to_owned()),
                _ => None,
            }
        };
        let m = BusMessage::from_headers(headers(true), Bytes::from_static(b"{}")).unwrap();
        assert_eq!((m.id, m.event_type.as_str()), (id, "OrderCreated"));
        assert_eq!((m.source_stream.as_str(), m.version), ("order-1", Some(3)));
        assert!(BusMessage::from_headers(headers(false), Bytes::new()).is_none());
    }

    fn confirmed(order: &str, redelivered: bool, id: Uuid) -> BusMessage {
        BusMessage {
            id,
            event_type: "OrderConfirmed".into(),
            source_stream: format!("order-{order}"),
            correlation_id: None,
            version: Some(1),
            position: Some(1),
            time: String::new(),
            body: Bytes::from(format!(r#"{{"orderId":"{order}","userId":"u"}}"#)),
            redelivered,
        }
    }

    #[tokio::test]
    async fn a_redelivered_message_in_the_inbox_is_dropped_without_a_command() {
        use eventum_core::EventStore;
        let store: Arc<dyn EventStore> = Arc::new(eventum_testkit::MemoryStore::default());
        let backend = Backend::Notifications;
        let bus = super::super::backends::command_bus(backend, store.clone(), &Default::default())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = CommandTarget {
            backend,
            bus: Arc::new(bus),
            inbox: ReadModelStore::open(dir.path(), Default::default()).unwrap(),
            keys_in_flight_max: 4,
        };
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = [confirmed("o1", false, a), confirmed("o2", false, b)];
        assert_eq!(
            target.deliver("c", &first).await,
            [Verdict::Done, Verdict::Done]
        );
        // Both again (a lost acknowledgement), with one never handled before.
        let again = [
            confirmed("o1", true, a),
            confirmed("o3", true, Uuid::now_v7()),
            confirmed("o2", true, b),
        ];
        assert_eq!(
            target.deliver("c", &again).await,
            [Verdict::Duplicate, Verdict::Done, Verdict::Duplicate]
        );
        let notified = store.read_category("notification", 0, 10).await.unwrap();
        assert_eq!(notified.len(), 3, "o1, o2, o3 once each");
        // Another consumer's inbox is its own.
        assert_eq!(target.deliver("d", &again[..1]).await, [Verdict::Done]);
        let skipped = BusMessage {
            event_type: "OrderCreated".into(),
            ..confirmed("o4", false, Uuid::now_v7())
        };
        assert_eq!(target.deliver("c", &[skipped]).await, [Verdict::Skipped]);
    }

    #[tokio::test]
    async fn the_inbox_peek_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReadModelStore::open(dir.path(), Default::default()).unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        store
            .transaction(|tx| -> Result<(), TxError> {
                tx.inbox_check_and_record("c", a)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(
            inbox_peek(&store, "c", vec![a, b]).await.unwrap(),
            [true, false]
        );
        assert_eq!(
            inbox_peek(&store, "c", vec![b]).await.unwrap(),
            [false],
            "not recorded"
        );
    }
}
