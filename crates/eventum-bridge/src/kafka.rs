//! The Kafka sink: one topic per relay topic (`{prefix}.{topic}`), message key = stream
//! id (so the default partitioner keeps one aggregate in one partition, in order),
//! CloudEvents attributes and correlation ids as record headers, an idempotent producer
//! with `acks=all`, and a batch counted as delivered only once librdkafka has reported
//! every record's delivery. The idempotent producer drops its own retries; a relay that
//! re-sends after a crash produces copies, which consumers drop by `ce_id` in an inbox.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::error::SinkError;
use crate::message::Message;
use crate::sink::{Acks, Sink};

/// Longest Kafka topic name.
pub const TOPIC_BYTES_MAX: usize = 249;

/// Topics the sink creates before it first publishes to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub partitions: i32,
    pub replication: i32,
}

/// Settings of a [`KafkaSink`].
#[derive(Clone, Debug)]
pub struct KafkaSinkConfig {
    /// Topics are `{topic_prefix}.{topic}`, or just `{topic}` when empty. Default
    /// `eventum`.
    pub topic_prefix: String,
    /// How long librdkafka may try to deliver one record (`message.timeout.ms`) before
    /// the batch fails and the relay retries it. Default 30,000 ms.
    pub delivery_timeout_ms: u64,
    /// How long the producer waits to fill a broker request (`linger.ms`). Default 2 ms.
    pub linger_ms: u64,
    /// Most records queued in the producer (`queue.buffering.max.messages`); keep it
    /// above the relay's unacknowledged window. Default 100,000.
    pub queue_messages_max: u32,
    /// How long connecting and creating topics may take. Default 5,000 ms.
    pub connect_timeout_ms: u64,
    /// Create missing topics with these settings on first use; `None` leaves topics to
    /// the broker (auto-creation) or the operator. Default: 3 partitions, replication 1.
    pub create_topics: Option<TopicSpec>,
    /// Further librdkafka properties (security, compression, ...), set last.
    pub properties: Vec<(String, String)>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        Self {
            topic_prefix: "eventum".into(),
            delivery_timeout_ms: 30_000,
            linger_ms: 2,
            queue_messages_max: 100_000,
            connect_timeout_ms: 5_000,
            create_topics: Some(TopicSpec {
                partitions: 3,
                replication: 1,
            }),
            properties: Vec::new(),
        }
    }
}

/// Publishes to Kafka through an idempotent producer.
pub struct KafkaSink {
    state: Arc<Producing>,
    admin: AdminClient<DefaultClientContext>,
}

/// The producer and what it knows, shared with pending acknowledgements so that a
/// failed delivery can renew them.
struct Producing {
    bootstrap: String,
    config: KafkaSinkConfig,
    /// Replaced after a failure (see [`Producing::after_failure`]).
    producer: RwLock<FutureProducer>,
    /// Topics created (or found) since the last failure.
    known_topics: Mutex<HashSet<String>>,
}

/// `kafka://host:9092,host2:9092` → `host:9092,host2:9092`; a bare list passes through.
pub fn bootstrap_servers(url: &str) -> &str {
    url.strip_prefix("kafka://")
        .unwrap_or(url)
        .trim_end_matches('/')
}

impl KafkaSink {
    /// Connects to the brokers of `url` (`kafka://host:9092[,host:port]`) and checks
    /// that one answers; fails when none does within `connect_timeout_ms`.
    pub async fn connect(url: &str, config: KafkaSinkConfig) -> Result<Self, SinkError> {
        if config.topic_prefix.len() > TOPIC_BYTES_MAX / 2
            || !config.topic_prefix.bytes().all(topic_byte_ok)
        {
            return Err(SinkError::Refused(format!(
                "Kafka topic prefix {:?}: use at most {} bytes of [a-zA-Z0-9._-]",
                config.topic_prefix,
                TOPIC_BYTES_MAX / 2
            )));
        }
        let bootstrap = bootstrap_servers(url).to_owned();
        let producer = new_producer(&bootstrap, &config)?;
        let admin: AdminClient<DefaultClientContext> = client_config(&bootstrap, &config)
            .create()
            .map_err(|e| SinkError::Refused(format!("Kafka admin client: {e}")))?;
        let probe = producer.clone();
        let timeout = Duration::from_millis(config.connect_timeout_ms);
        tokio::task::spawn_blocking(move || probe.client().fetch_metadata(None, timeout))
            .await
            .map_err(|e| SinkError::Unavailable(format!("Kafka metadata task: {e}")))?
            .map_err(|e| SinkError::Unavailable(format!("Kafka at {bootstrap}: {e}")))?;
        Ok(Self {
            state: Arc::new(Producing {
                bootstrap,
                config,
                producer: RwLock::new(producer),
                known_topics: Mutex::new(HashSet::new()),
            }),
            admin,
        })
    }

    /// The Kafka topic of relay topic `topic`.
    pub fn topic(&self, topic: &str) -> String {
        let mut name = if self.state.config.topic_prefix.is_empty() {
            topic.to_owned()
        } else {
            format!("{}.{topic}", self.state.config.topic_prefix)
        };
        // Relay topics are kebab-case; only an overlong one needs cutting.
        name.truncate(TOPIC_BYTES_MAX);
        name
    }

    /// Creates `topics` (Kafka names) with `spec`; ones that exist already are fine.
    pub async fn create_topics(
        &self,
        topics: &[String],
        spec: &TopicSpec,
    ) -> Result<(), SinkError> {
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replication),
                )
            })
            .collect();
        let timeout = Duration::from_millis(self.state.config.connect_timeout_ms);
        let options = AdminOptions::new()
            .operation_timeout(Some(timeout))
            .request_timeout(Some(timeout));
        let results = self
            .admin
            .create_topics(new.iter(), &options)
            .await
            .map_err(|e| SinkError::Unavailable(format!("Kafka create topics: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(SinkError::Refused(format!(
                        "creating topic {topic}: {code}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Creates the batch's topics this sink has not seen yet (with `create_topics`).
    async fn ensure_topics(&self, batch: &[Message]) -> Result<(), SinkError> {
        let Some(spec) = &self.state.config.create_topics else {
            return Ok(());
        };
        let missing: Vec<String> = {
            let known = self.state.known_topics.lock().expect("topics lock");
            let mut missing: Vec<String> = batch
                .iter()
                .map(|m| self.topic(&m.topic))
                .filter(|t| !known.contains(t))
                .collect();
            missing.sort();
            missing.dedup();
            missing
        };
        if missing.is_empty() {
            return Ok(());
        }
        self.create_topics(&missing, spec).await?;
        self.state
            .known_topics
            .lock()
            .expect("topics lock")
            .extend(missing);
        Ok(())
    }

    /// Queues every record of `batch`, in order; returns once all are queued, with a
    /// future that resolves when all are delivered.
    async fn send_all(&self, batch: &[Message]) -> Result<Acks, SinkError> {
        self.ensure_topics(batch).await?;
        let producer = self.state.producer();
        let mut deliveries = Vec::with_capacity(batch.len());
        // Consecutive messages mostly share a topic: name it once per run.
        let mut topic = String::new();
        let mut topic_of = "";
        for m in batch {
            if topic.is_empty() || topic_of != m.topic {
                topic = self.topic(&m.topic);
                topic_of = &m.topic;
            }
            let mut headers = OwnedHeaders::new_with_capacity(m.headers.len());
            for (name, value) in &m.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_bytes()),
                });
            }
            let mut record = FutureRecord::to(&topic)
                .key(m.key.as_bytes())
                .payload(m.body.as_ref())
                .headers(headers);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The producer's queue drains as deliveries complete.
                        record = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(classify(&e)),
                }
            }
        }
        let state = self.state.clone();
        Ok(Box::pin(async move {
            for delivery in deliveries {
                let error = match delivery.await {
                    Ok(Ok(_)) => continue,
                    Ok(Err((e, _))) => classify(&e),
                    Err(_) => {
                        SinkError::Unavailable("Kafka producer dropped a delivery report".into())
                    }
                };
                state.after_failure();
                return Err(error);
            }
            Ok(())
        }))
    }
}

impl Producing {
    fn producer(&self) -> FutureProducer {
        self.producer.read().expect("producer lock").clone()
    }

    /// After a failure: forgets which topics exist (a broker that lost its storage lost
    /// them too, so they are created again) and starts a new producer. The batch is
    /// re-sent anyway, so nothing depends on the old producer's session, and an
    /// idempotent producer whose records timed out may not recover by itself: after a
    /// broker restart that lost its state, the old producer kept timing out every record
    /// while a new one delivered at once.
    fn after_failure(&self) {
        self.known_topics.lock().expect("topics lock").clear();
        if let Some((code, reason)) = self.producer().client().fatal_error() {
            tracing::warn!(%code, %reason, "Kafka producer hit a fatal error");
        }
        match new_producer(&self.bootstrap, &self.config) {
            Ok(fresh) => {
                let old =
                    std::mem::replace(&mut *self.producer.write().expect("producer lock"), fresh);
                // Dropping a producer purges and flushes it, blocking up to 500 ms.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(e) => tracing::warn!(error = %e, "cannot start a new Kafka producer"),
        }
    }
}

fn topic_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
}

fn client_config(bootstrap: &str, config: &KafkaSinkConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set(
        "socket.connection.setup.timeout.ms",
        config.connect_timeout_ms.max(1000).to_string(),
    );
    c
}

fn new_producer(bootstrap: &str, config: &KafkaSinkConfig) -> Result<FutureProducer, SinkError> {
    let mut c = client_config(bootstrap, config);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        // The idempotent producer keeps order with up to 5 requests in flight.
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", config.delivery_timeout_ms.to_string())
        .set("linger.ms", config.linger_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            config.queue_messages_max.to_string(),
        );
    for (k, v) in &config.properties {
        c.set(k, v);
    }
    c.create()
        .map_err(|e| SinkError::Refused(format!("Kafka producer: {e}")))
}

/// Delivery failures the broker may recover from are `Unavailable`; the rest `Refused`.
/// The relay retries both.
fn classify(e: &KafkaError) -> SinkError {
    let unavailable = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::UnknownTopicOrPartition
        )
    );
    if unavailable {
        SinkError::Unavailable(format!("Kafka: {e}"))
    } else {
        SinkError::Refused(format!("Kafka: {e}"))
    }
}

#[async_trait]
impl Sink for KafkaSink {
    fn name(&self) -> &str {
        "kafka"
    }

    async fn publish(&self, batch: &[Message]) -> Result<(), SinkError> {
        self.send(batch).await?.await
    }

    /// A failure to queue or to deliver renews the producer ([`Producing::after_failure`]).
    async fn send(&self, batch: &[Message]) -> Result<Acks, SinkError> {
        let sent = self.send_all(batch).await;
        if sent.is_err() {
            self.state.after_failure();
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_servers_come_from_the_url() {
        assert_eq!(bootstrap_servers("kafka://a:9092,b:9093"), "a:9092,b:9093");
        assert_eq!(bootstrap_servers("kafka://a:9092/"), "a:9092");
        assert_eq!(bootstrap_servers("a:9092"), "a:9092");
    }
}
