//! The NATS JetStream sink: one subject per topic (`{prefix}.{topic}`), `Nats-Msg-Id` =
//! event id so that JetStream's duplicate window drops re-sent messages, and every
//! publish acknowledged by the stream before the batch counts as delivered.
//!
//! A batch is published as plain NATS messages whose reply subject is one inbox per
//! batch, subscribed before the first publish; the batch counts as delivered once that
//! inbox received one positive JetStream acknowledgement per message. This is what a
//! JetStream publish is on the wire, without the client's per-message bookkeeping (an
//! inbox, a one-shot channel, a timer and a JSON decode for every message), which cost
//! about as much client CPU as the message itself.

use std::time::Duration;

use async_nats::header::HeaderName;
use async_nats::jetstream;
use async_nats::{HeaderMap, Subject};
use async_trait::async_trait;
use futures::StreamExt;

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
    /// Most publishes awaiting acknowledgement through [`NatsSink::jetstream`] (the
    /// context for other uses). Default 4,096. The sink's own batches are bounded by the
    /// relay (`batch_events_max × batches_in_flight_max`).
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
    client: async_nats::Client,
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
            .build(client.clone());
        Self {
            client,
            jetstream,
            config,
        }
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
        let unavailable = |e: &dyn std::fmt::Display| SinkError::Unavailable(format!("NATS: {e}"));
        // The inbox is subscribed before the publishes go out on the same connection, so
        // the server knows it before the first acknowledgement.
        let inbox = Subject::from(self.client.new_inbox());
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        // Consecutive messages mostly share a topic: build its subject once per run.
        let mut subject: Option<(&str, Subject)> = None;
        for message in batch {
            let to = match &subject {
                Some((topic, s)) if *topic == message.topic => s.clone(),
                _ => {
                    let s = Subject::from(self.subject(&message.topic));
                    subject = Some((message.topic.as_str(), s.clone()));
                    s
                }
            };
            self.client
                .publish_with_reply_and_headers(
                    to,
                    inbox.clone(),
                    headers_of(message),
                    message.body.clone(),
                )
                .await
                .map_err(|e| unavailable(&e))?;
        }
        let expected = batch.len();
        let timeout = Duration::from_millis(self.config.ack_timeout_ms);
        Ok(Box::pin(async move {
            let acked = async {
                for _ in 0..expected {
                    let reply = replies.next().await.ok_or_else(|| {
                        SinkError::Unavailable("NATS: connection closed before the acks".into())
                    })?;
                    check_ack(&reply)?;
                }
                Ok(())
            };
            let result = tokio::time::timeout(timeout, acked)
                .await
                .unwrap_or_else(|_| {
                    Err(SinkError::Unavailable(format!(
                        "NATS: acknowledgements timed out after {} ms",
                        timeout.as_millis()
                    )))
                });
            // The subscription ends when dropped; no need to wait for the UNSUB.
            drop(replies);
            result
        }))
    }
}

/// One JetStream acknowledgement: `{"stream":…,"seq":…}` (with `"duplicate":true` for a
/// message the stream already had) is success; `{"error":{…}}` a refusal; a 503 status
/// (no responders) means no stream captures the subject.
fn check_ack(reply: &async_nats::Message) -> Result<(), SinkError> {
    if reply.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return Err(SinkError::Unavailable(
            "NATS: no JetStream stream captures the subject (no responders)".into(),
        ));
    }
    let body = reply.payload.as_ref();
    if has_error_member(body) {
        return Err(SinkError::Refused(format!(
            "JetStream refused a message: {}",
            String::from_utf8_lossy(body)
        )));
    }
    if !body.starts_with(b"{\"stream\"") {
        return Err(SinkError::Refused(format!(
            "unexpected JetStream acknowledgement: {}",
            String::from_utf8_lossy(body)
        )));
    }
    Ok(())
}

/// Whether an acknowledgement carries an `"error"` member anywhere.
fn has_error_member(body: &[u8]) -> bool {
    body.windows(8).any(|w| w == b"\"error\":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(
        payload: &'static [u8],
        status: Option<async_nats::StatusCode>,
    ) -> async_nats::Message {
        async_nats::Message {
            subject: Subject::from("_INBOX.x"),
            reply: None,
            payload: bytes::Bytes::from_static(payload),
            headers: None,
            status,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn acknowledgements_are_read_without_a_json_decode() {
        assert!(check_ack(&reply(br#"{"stream":"S","seq":7}"#, None)).is_ok());
        assert!(check_ack(&reply(br#"{"stream":"S","seq":7,"duplicate":true}"#, None)).is_ok());
        let refused = br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S"}"#;
        assert!(matches!(
            check_ack(&reply(refused, None)),
            Err(SinkError::Refused(_))
        ));
        let none = reply(b"", Some(async_nats::StatusCode::NO_RESPONDERS));
        assert!(matches!(check_ack(&none), Err(SinkError::Unavailable(_))));
        assert!(check_ack(&reply(b"+OK", None)).is_err());
    }
}
