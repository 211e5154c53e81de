//! The NATS JetStream sink: one subject per topic (`{prefix}.{topic}`), `Nats-Msg-Id` =
//! event id so that JetStream's duplicate window drops re-sent messages, and every
//! publish acknowledged by the stream before the batch counts as delivered.

use std::time::Duration;

use async_nats::header::HeaderName;
use async_nats::jetstream::{self, message::PublishMessage as Publish};
use async_nats::{HeaderMap, Subject};
use async_trait::async_trait;

use crate::error::{ConfigError, SinkError};
use crate::message::{Message, header};
use crate::sink::{Acks, Sink};

/// Settings of a [`NatsSink`].
#[derive(Clone, Debug)]
pub struct NatsSinkConfig {
    /// Subjects are `{subject_prefix}.{topic}`. Default `eventum`.
    pub subject_prefix: String,
    /// How long a publish waits for its JetStream acknowledgement. Default 5,000 ms.
    pub ack_timeout_ms: u64,
    /// How long connecting may take before the broker counts as unreachable. Default
    /// 5,000 ms.
    pub connect_timeout_ms: u64,
    /// Most publishes awaiting acknowledgement on the connection. Default 4,096; keep it
    /// at least the relay's `batch_events_max`.
    pub acks_in_flight_max: usize,
}

impl Default for NatsSinkConfig {
    fn default() -> Self {
        Self {
            subject_prefix: "eventum".into(),
            ack_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            acks_in_flight_max: 4_096,
        }
    }
}

/// Publishes to JetStream. A stream must capture `{subject_prefix}.>` (see
/// [`NatsSink::ensure_stream`]); without one, publishes fail and the relay retries.
pub struct NatsSink {
    jetstream: jetstream::Context,
    config: NatsSinkConfig,
}

impl NatsSink {
    /// Connects to `url` (`nats://host:port`). The client reconnects by itself after an
    /// outage; publishes in between fail and are retried by the relay.
    pub async fn connect(url: &str, config: NatsSinkConfig) -> Result<Self, SinkError> {
        if config.subject_prefix.is_empty()
            || config
                .subject_prefix
                .chars()
                .any(|c| c.is_whitespace() || c == '*' || c == '>')
        {
            return Err(SinkError::Refused(
                ConfigError::BadName(config.subject_prefix.clone()).to_string(),
            ));
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
            .connect(url)
            .await
            .map_err(|e| SinkError::Unavailable(format!("NATS at {url}: {e}")))?;
        Ok(Self::from_client(client, config))
    }

    /// A sink on an existing client.
    pub fn from_client(client: async_nats::Client, config: NatsSinkConfig) -> Self {
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(config.ack_timeout_ms))
            .max_ack_inflight(config.acks_in_flight_max.max(1))
            .build(client);
        Self { jetstream, config }
    }

    /// The subject of `topic`.
    pub fn subject(&self, topic: &str) -> String {
        format!("{}.{topic}", self.config.subject_prefix)
    }

    /// The JetStream context, to manage streams and consumers.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Creates (or finds) a file-backed stream `name` capturing `{subject_prefix}.>`,
    /// whose duplicate window must outlast the longest outage after which a relay may
    /// re-send (a relay re-sends at most what followed its last checkpoint).
    pub async fn ensure_stream(
        &self,
        name: &str,
        duplicate_window: Duration,
    ) -> Result<(), SinkError> {
        let config = jetstream::stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{}.>", self.config.subject_prefix)],
            duplicate_window,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        self.jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|e| SinkError::Refused(format!("creating stream {name}: {e}")))?;
        Ok(())
    }
}

/// The message's headers plus `Nats-Msg-Id` = event id (the `ce_id` text). Names are
/// static and values moved in, so building the map costs one allocation per value.
fn headers_of(message: &Message) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &message.headers {
        headers.insert(HeaderName::from_static(name), value.clone());
    }
    let id = message
        .header(header::CE_ID)
        .map_or_else(|| message.id.to_string(), str::to_owned);
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
    headers
}

#[async_trait]
impl Sink for NatsSink {
    fn name(&self) -> &str {
        "nats"
    }

    async fn publish(&self, batch: &[Message]) -> Result<(), SinkError> {
        self.send(batch).await?.await
    }

    async fn send(&self, batch: &[Message]) -> Result<Acks, SinkError> {
        // Send the whole batch, then await the acks: one connection keeps publish order,
        // so the stream stores the batch in order while the round trips overlap.
        let mut acks = Vec::with_capacity(batch.len());
        // Consecutive messages mostly share a topic: build its subject once per run.
        let mut subject: Option<(&str, Subject)> = None;
        for message in batch {
            let publish = Publish::build()
                .headers(headers_of(message))
                .payload(message.body.clone());
            let to = match &subject {
                Some((topic, s)) if *topic == message.topic => s.clone(),
                _ => {
                    let s = Subject::from(self.subject(&message.topic));
                    subject = Some((message.topic.as_str(), s.clone()));
                    s
                }
            };
            let ack = self
                .jetstream
                .send_publish(to, publish)
                .await
                .map_err(|e| SinkError::Unavailable(format!("publish: {e}")))?;
            acks.push(ack);
        }
        Ok(Box::pin(async move {
            for ack in acks {
                ack.await.map_err(|e| match e.kind() {
                    jetstream::context::PublishErrorKind::TimedOut
                    | jetstream::context::PublishErrorKind::BrokenPipe
                    | jetstream::context::PublishErrorKind::StreamNotFound => {
                        SinkError::Unavailable(format!("publish ack: {e}"))
                    }
                    _ => SinkError::Refused(format!("publish ack: {e}")),
                })?;
            }
            Ok(())
        }))
    }
}
