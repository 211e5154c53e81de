//! The broker side of a shop service: where the NATS server is, the one JetStream stream
//! every service publishes into and consumes from (`{subject_prefix}.>`, with its
//! duplicate window and retention bounds), and the relay that publishes the service's
//! own log to it (the log is the outbox).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use eventum_bridge::{NatsSink, NatsSinkConfig, Relay, RelayConfig, RelayHandle, TopicMapping};
use eventum_core::EventStore;

/// Where the broker is and how the shop uses it. Every bound has a default.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `nats://host:port`.
    pub url: String,
    /// The JetStream stream holding every shop message. Default `SHOP`.
    pub stream: String,
    /// Subjects are `{subject_prefix}.{topic}`. Default `shop`.
    pub subject_prefix: String,
    /// Topic per event type (`order-created`, seed 004's table; the default) or per
    /// category (`order-events`). Every service of one shop must use the same.
    pub topics: TopicMapping,
    /// How long JetStream remembers a message id to drop a re-sent copy. Default 120 s.
    /// A relay re-sends at most what followed its last checkpoint (~200 ms of events),
    /// right after it restarts; a copy arriving later is dropped by the consumers' inbox.
    pub duplicate_window_s: u64,
    /// Messages older than this are removed from the stream. Default 7 days; a consumer
    /// down for longer loses what it missed, so size it above the longest outage.
    pub max_age_s: u64,
    /// Most bytes the stream keeps (oldest removed first); `-1` (the default) for no
    /// byte bound, only the age bound. JetStream reserves a stream's byte bound out of the
    /// server's storage when the stream is created, whether it is used or not.
    pub max_bytes: i64,
    /// How long connecting may take before the broker counts as unreachable.
    /// Default 5,000 ms.
    pub connect_timeout_ms: u64,
    /// How long a publish waits for its acknowledgement. Default 5,000 ms.
    pub ack_timeout_ms: u64,
}

impl BrokerConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "SHOP".into(),
            subject_prefix: "shop".into(),
            topics: TopicMapping::EventType,
            duplicate_window_s: 120,
            max_age_s: 7 * 24 * 3600,
            max_bytes: -1,
            connect_timeout_ms: 5_000,
            ack_timeout_ms: 5_000,
        }
    }

    /// The subject a topic is published on.
    pub fn subject(&self, topic: &str) -> String {
        format!("{}.{topic}", self.subject_prefix)
    }

    pub fn check(&self) -> Result<(), String> {
        let token_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !token_ok(&self.stream) {
            return Err(format!(
                "bus stream {:?} must be letters, digits, '-' or '_'",
                self.stream
            ));
        }
        if !self.subject_prefix.split('.').all(token_ok) {
            return Err(format!(
                "bus subject prefix {:?} must be dot-separated tokens of letters, digits, '-' or '_'",
                self.subject_prefix
            ));
        }
        if self.duplicate_window_s == 0 || self.max_age_s == 0 {
            return Err("duplicate_window_s and max_age_s must be positive".into());
        }
        if self.max_bytes == 0 || self.max_bytes < -1 {
            return Err("max_bytes must be positive or -1 (no byte bound)".into());
        }
        if self.duplicate_window_s > self.max_age_s {
            return Err("the duplicate window cannot outlast the stream's max age".into());
        }
        Ok(())
    }
}

/// A connection to the broker with the shop's stream in place.
#[derive(Clone)]
pub struct Broker {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub config: BrokerConfig,
}

impl Broker {
    /// Connects and creates (or finds) the stream. The client reconnects by itself after
    /// an outage; relays and consumers retry meanwhile.
    pub async fn connect(config: BrokerConfig) -> anyhow::Result<Broker> {
        config.check().map_err(anyhow::Error::msg)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
            .connect(&config.url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach NATS at {}: {e}", config.url))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(config.ack_timeout_ms))
            .build(client.clone());
        let stream = jetstream::stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            duplicate_window: Duration::from_secs(config.duplicate_window_s),
            max_age: Duration::from_secs(config.max_age_s),
            max_bytes: config.max_bytes,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        jetstream
            .get_or_create_stream(stream)
            .await
            .map_err(|e| anyhow::anyhow!("JetStream stream {}: {e}", config.stream))?;
        Ok(Broker {
            client,
            jetstream,
            config,
        })
    }

    /// Starts the relay of `service`'s log to the stream: every event of the service's
    /// store, in log order, acknowledged by JetStream before its checkpoint (in the same
    /// store) moves. `relay` carries the batch and retry bounds.
    pub fn relay(
        &self,
        service: &str,
        store: Arc<dyn EventStore>,
        relay: RelayConfig,
    ) -> anyhow::Result<RelayHandle> {
        let sink = NatsSink::from_client(
            self.client.clone(),
            NatsSinkConfig {
                subject_prefix: self.config.subject_prefix.clone(),
                ack_timeout_ms: self.config.ack_timeout_ms,
                connect_timeout_ms: self.config.connect_timeout_ms,
                acks_in_flight_max: relay.batch_events_max.max(1),
            },
        );
        let config = RelayConfig {
            name: format!("shop-{service}"),
            topics: self.config.topics,
            source: format!("eventum-shop/{service}"),
            include_system_streams: false,
            ..relay
        };
        Ok(Relay::spawn(store, Arc::new(sink), config)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_names_and_bounds() {
        let ok = BrokerConfig::new("nats://127.0.0.1:4222");
        assert!(ok.check().is_ok());
        assert_eq!(ok.subject("order-created"), "shop.order-created");
        for (stream, prefix) in [("", "shop"), ("a b", "shop"), ("S", "a.>"), ("S", "")] {
            let c = BrokerConfig {
                stream: stream.into(),
                subject_prefix: prefix.into(),
                ..ok.clone()
            };
            assert!(c.check().is_err(), "{stream:?} {prefix:?}");
        }
        let c = BrokerConfig {
            duplicate_window_s: 10,
            max_age_s: 5,
            ..ok
        };
        assert!(c.check().is_err());
    }
}
