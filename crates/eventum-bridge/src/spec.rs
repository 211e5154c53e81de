//! Bridges described as data — the `[[bridge]]` sections of a server's config file and
//! the flags of `eventum bridge run` — and started from that description: a relay when
//! the spec has `to` (a broker URL), an inbound consumer into a named command bus when
//! it has `from`. The broker is chosen by the URL's scheme: `nats://`, `kafka://`,
//! `redis://`, `amqp://`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventum_core::{CommandSender, EventStore};
use eventum_projections::{ReadModelStore, StoreConfig};
use serde::Deserialize;

use crate::inbound::{InboundHandle, NatsInboundConfig};
use crate::inbound_amqp::{AmqpInbound, AmqpInboundConfig};
use crate::inbound_commands::CommandTarget;
use crate::inbound_kafka::{KafkaInbound, KafkaInboundConfig};
use crate::inbound_redis::{RedisInbound, RedisInboundConfig};
use crate::inbound_target::InboundTarget;
use crate::kafka::{KafkaSink, KafkaSinkConfig};
use crate::nats::{NatsSink, NatsSinkConfig};
use crate::rabbitmq::{RabbitMqSink, RabbitMqSinkConfig};
use crate::redis_streams::{RedisSink, RedisSinkConfig};
use crate::relay::{Relay, RelayHandle};
use crate::sink::Sink;
use crate::{NatsInbound, RelayConfig, TopicMapping};

/// JetStream's duplicate window for streams a spec creates: a relay re-sends at most
/// what followed its last checkpoint, however long an outage lasted.
pub const CREATED_STREAM_DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One bridge: a relay (`to`) or an inbound consumer (`from` + `into`). Fields that do
/// not apply to the kind or the broker are refused, so a typo does not pass silently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeSpec {
    /// Relay: its checkpoint stream is `$bridge-{name}-checkpoint`. Inbound: the inbox
    /// and (unless `group`) the consumer group / durable consumer name.
    pub name: String,
    /// Relay: the broker to publish to.
    pub to: Option<String>,
    /// Inbound: the broker to consume.
    pub from: Option<String>,
    /// Inbound: the command bus the messages become commands on (`shop` in `serve`).
    pub into: Option<String>,
    /// Relay: `category` (order-events, the default) or `type` (order-created).
    pub topics: Option<String>,
    /// Relay: NATS subject prefix, Kafka topic prefix, Redis key prefix or RabbitMQ
    /// exchange. Default `eventum`.
    pub prefix: Option<String>,
    /// Relay, NATS: create (or reuse) this JetStream stream capturing `{prefix}.>`.
    pub create_stream: Option<String>,
    /// Relay: the CloudEvents `ce_source`. Default `eventum`.
    pub source: Option<String>,
    /// Relay: `full` (the default) or `compact` headers (see `HeaderSet`).
    pub headers: Option<String>,
    pub batch_events_max: Option<usize>,
    pub batches_in_flight_max: Option<usize>,
    /// Inbound: what to consume — NATS: one filter subject; Kafka: topics; Redis:
    /// stream keys; RabbitMQ: one queue.
    pub consume: Vec<String>,
    /// Inbound, NATS: the JetStream stream holding `consume`.
    pub stream: Option<String>,
    /// Inbound: consumer group (Kafka, Redis) or durable consumer (NATS). Default:
    /// `name`.
    pub group: Option<String>,
    /// Inbound: most messages per inbox transaction. Default 256.
    pub batch_messages_max: Option<usize>,
}

/// Why a spec cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bridge {name:?}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("bridge {name:?}: {source}")]
    Config {
        name: String,
        #[source]
        source: crate::ConfigError,
    },
    #[error("bridge {name:?}: cannot reach the broker: {reason}")]
    Broker { name: String, reason: String },
}

/// What a spec starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecKind {
    Relay,
    Inbound,
}

/// The brokers a URL may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    Nats,
    Kafka,
    Redis,
    RabbitMq,
}

impl Broker {
    /// The broker of `url`, by scheme.
    pub fn of(url: &str) -> Option<Self> {
        match url.split_once("://").map(|(s, _)| s) {
            Some("nats" | "tls") => Some(Self::Nats),
            Some("kafka") => Some(Self::Kafka),
            Some("redis" | "rediss") => Some(Self::Redis),
            Some("amqp" | "amqps") => Some(Self::RabbitMq),
            _ => None,
        }
    }
}

impl BridgeSpec {
    fn invalid(&self, reason: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            name: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Checks the spec without connecting; returns what it starts.
    pub fn validate(&self) -> Result<SpecKind, SpecError> {
        let (kind, url) = match (&self.to, &self.from) {
            (Some(to), None) => (SpecKind::Relay, to),
            (None, Some(from)) => (SpecKind::Inbound, from),
            _ => return Err(self.invalid("give exactly one of `to` (relay) or `from` (inbound)")),
        };
        let broker = Broker::of(url).ok_or_else(|| {
            self.invalid(format!(
                "{url:?}: expected a nats://, kafka://, redis:// or amqp:// URL"
            ))
        })?;
        let set = |present: bool, field: &str| present.then(|| field.to_owned());
        let misplaced: Vec<String> = match kind {
            SpecKind::Relay => [
                set(self.into.is_some(), "into"),
                set(!self.consume.is_empty(), "consume"),
                set(self.stream.is_some(), "stream"),
                set(self.group.is_some(), "group"),
                set(self.batch_messages_max.is_some(), "batch_messages_max"),
                set(
                    self.create_stream.is_some() && broker != Broker::Nats,
                    "create_stream (NATS only)",
                ),
            ]
            .into_iter()
            .flatten()
            .collect(),
            SpecKind::Inbound => [
                set(self.topics.is_some(), "topics"),
                set(self.prefix.is_some(), "prefix"),
                set(self.create_stream.is_some(), "create_stream"),
                set(self.source.is_some(), "source"),
                set(self.headers.is_some(), "headers"),
                set(self.batch_events_max.is_some(), "batch_events_max"),
                set(
                    self.batches_in_flight_max.is_some(),
                    "batches_in_flight_max",
                ),
                set(
                    self.stream.is_some() && broker != Broker::Nats,
                    "stream (NATS only)",
                ),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        if !misplaced.is_empty() {
            let what = if kind == SpecKind::Relay {
                "a relay (`to`)"
            } else {
                "an inbound bridge (`from`)"
            };
            return Err(self.invalid(format!("{} do not apply to {what}", misplaced.join(", "))));
        }
        match kind {
            SpecKind::Relay => {
                self.relay_config()?;
            }
            SpecKind::Inbound => {
                if self.into.is_none() {
                    return Err(self.invalid("an inbound bridge needs `into` (a command bus)"));
                }
                let single = matches!(broker, Broker::Nats | Broker::RabbitMq);
                if self.consume.is_empty() || (single && self.consume.len() != 1) {
                    let want = if single {
                        "one entry"
                    } else {
                        "at least one entry"
                    };
                    return Err(self.invalid(format!("`consume` needs {want}")));
                }
                if broker == Broker::Nats && self.stream.is_none() {
                    return Err(self.invalid("a NATS inbound bridge needs `stream`"));
                }
                for name in [self.name.as_str(), self.group()] {
                    crate::inbound_target::check_consumer_name(name)
                        .map_err(|source| self.config_error(source))?;
                }
            }
        }
        Ok(kind)
    }

    fn config_error(&self, source: crate::ConfigError) -> SpecError {
        SpecError::Config {
            name: self.name.clone(),
            source,
        }
    }

    fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.name)
    }

    fn prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| "eventum".into())
    }

    /// The relay settings of this spec.
    pub fn relay_config(&self) -> Result<RelayConfig, SpecError> {
        let mut config = RelayConfig::named(self.name.clone());
        if let Some(t) = &self.topics {
            config.topics = t
                .parse::<TopicMapping>()
                .map_err(|e| self.config_error(e))?;
        }
        if let Some(s) = &self.source {
            config.source = s.clone();
        }
        if let Some(h) = &self.headers {
            config.headers = h.parse().map_err(|e| self.config_error(e))?;
        }
        if let Some(n) = self.batch_events_max {
            config.batch_events_max = n;
        }
        if let Some(n) = self.batches_in_flight_max {
            config.batches_in_flight_max = n;
        }
        config.validate().map_err(|e| self.config_error(e))?;
        Ok(config)
    }

    /// Connects the sink of a relay spec (creating the NATS stream if asked).
    pub async fn connect_sink(&self) -> Result<Arc<dyn Sink>, SpecError> {
        let url = self
            .to
            .as_deref()
            .ok_or_else(|| self.invalid("not a relay"))?;
        let broker = |e: crate::SinkError| SpecError::Broker {
            name: self.name.clone(),
            reason: format!("{url}: {e}"),
        };
        let config = self.relay_config()?;
        // Enough acknowledgements in flight for every batch the relay keeps unacknowledged.
        let window = config.batch_events_max * config.batches_in_flight_max;
        let sink: Arc<dyn Sink> = match Broker::of(url) {
            Some(Broker::Nats) => {
                let config = NatsSinkConfig {
                    subject_prefix: self.prefix(),
                    acks_in_flight_max: window.max(NatsSinkConfig::default().acks_in_flight_max),
                    ..NatsSinkConfig::default()
                };
                let sink = NatsSink::connect(url, config).await.map_err(broker)?;
                if let Some(stream) = &self.create_stream {
                    sink.ensure_stream(stream, CREATED_STREAM_DUPLICATE_WINDOW)
                        .await
                        .map_err(broker)?;
                }
                Arc::new(sink)
            }
            Some(Broker::Kafka) => {
                let defaults = KafkaSinkConfig::default();
                let config = KafkaSinkConfig {
                    topic_prefix: self.prefix(),
                    queue_messages_max: defaults.queue_messages_max.max(window as u32),
                    ..defaults
                };
                Arc::new(KafkaSink::connect(url, config).await.map_err(broker)?)
            }
            Some(Broker::Redis) => {
                let config = RedisSinkConfig {
                    key_prefix: self.prefix(),
                    ..RedisSinkConfig::default()
                };
                Arc::new(RedisSink::connect(url, config).await.map_err(broker)?)
            }
            Some(Broker::RabbitMq) => {
                let config = RabbitMqSinkConfig {
                    exchange: self.prefix(),
                    ..RabbitMqSinkConfig::default()
                };
                Arc::new(RabbitMqSink::connect(url, config).await.map_err(broker)?)
            }
            None => return Err(self.invalid(format!("{url:?}: unknown broker"))),
        };
        Ok(sink)
    }

    /// Starts the inbound consumer of this spec into `target`.
    pub async fn start_inbound(
        &self,
        target: Arc<dyn InboundTarget>,
    ) -> Result<InboundHandle, SpecError> {
        let url = self
            .from
            .as_deref()
            .ok_or_else(|| self.invalid("not inbound"))?;
        let broker = |e: crate::InboundError| SpecError::Broker {
            name: self.name.clone(),
            reason: format!("{url}: {e}"),
        };
        let group = self.group();
        let batch = self.batch_messages_max;
        let handle = match Broker::of(url) {
            Some(Broker::Nats) => {
                let client = async_nats::connect(url)
                    .await
                    .map_err(|e| SpecError::Broker {
                        name: self.name.clone(),
                        reason: format!("{url}: {e}"),
                    })?;
                let stream = self.stream.as_deref().unwrap_or_default();
                let mut config = NatsInboundConfig::new(stream, group, &self.consume[0]);
                config.batch_messages_max = batch.unwrap_or(config.batch_messages_max);
                NatsInbound::spawn_into(async_nats::jetstream::new(client), config, target)
                    .await
                    .map_err(broker)?
            }
            Some(Broker::Kafka) => {
                let topics: Vec<&str> = self.consume.iter().map(String::as_str).collect();
                let mut config = KafkaInboundConfig::new(group, &topics);
                config.batch_messages_max = batch.unwrap_or(config.batch_messages_max);
                KafkaInbound::spawn_into(url, config, target)
                    .await
                    .map_err(broker)?
            }
            Some(Broker::Redis) => {
                let keys: Vec<&str> = self.consume.iter().map(String::as_str).collect();
                let mut config = RedisInboundConfig::new(&keys, group);
                config.batch_messages_max = batch.unwrap_or(config.batch_messages_max);
                RedisInbound::spawn_into(url, config, target)
                    .await
                    .map_err(broker)?
            }
            Some(Broker::RabbitMq) => {
                let mut config = AmqpInboundConfig::new(&self.consume[0], group);
                config.batch_messages_max = batch.unwrap_or(config.batch_messages_max);
                AmqpInbound::spawn_into(url, config, target)
                    .await
                    .map_err(broker)?
            }
            None => return Err(self.invalid(format!("{url:?}: unknown broker"))),
        };
        Ok(handle)
    }
}

/// The bridges a server runs, stopped together.
pub struct Bridges {
    relays: Vec<(String, RelayHandle)>,
    inbound: Vec<(String, InboundHandle)>,
}

impl Bridges {
    /// Validates every spec, then starts them: relays from `store`, inbound consumers into
    /// the command bus their `into` names in `buses`, with their inboxes in one
    /// read-model store in `inbox_dir` (opened only when a spec is inbound). On any
    /// failure, what was started is stopped again.
    pub async fn start(
        specs: &[BridgeSpec],
        store: Arc<dyn EventStore>,
        buses: &HashMap<String, Arc<dyn CommandSender>>,
        inbox_dir: &Path,
    ) -> Result<Self, SpecError> {
        let mut kinds = Vec::with_capacity(specs.len());
        let mut names = std::collections::HashSet::new();
        for spec in specs {
            let kind = spec.validate()?;
            if !names.insert((kind == SpecKind::Relay, spec.name.as_str())) {
                return Err(spec.invalid("two bridges of one kind share this name"));
            }
            if let Some(into) = &spec.into
                && !buses.contains_key(into)
            {
                let known: Vec<&str> = buses.keys().map(String::as_str).collect();
                return Err(spec.invalid(format!(
                    "`into = {into:?}`: no such command bus here (known: {known:?})"
                )));
            }
            kinds.push(kind);
        }
        let mut bridges = Bridges {
            relays: Vec::new(),
            inbound: Vec::new(),
        };
        let mut inbox: Option<ReadModelStore> = None;
        for (spec, kind) in specs.iter().zip(kinds) {
            let started = match kind {
                SpecKind::Relay => bridges.start_relay(spec, &store).await,
                SpecKind::Inbound => {
                    if inbox.is_none() {
                        let opened = ReadModelStore::open(inbox_dir, StoreConfig::default())
                            .map_err(|e| spec.invalid(format!("inbox store: {e}")));
                        match opened {
                            Ok(s) => inbox = Some(s),
                            Err(e) => {
                                bridges.stop().await;
                                return Err(e);
                            }
                        }
                    }
                    let models = inbox.clone().expect("opened above");
                    let bus = buses[spec.into.as_deref().expect("validated")].clone();
                    bridges.start_inbound(spec, bus, models).await
                }
            };
            if let Err(e) = started {
                bridges.stop().await;
                return Err(e);
            }
        }
        Ok(bridges)
    }

    async fn start_relay(
        &mut self,
        spec: &BridgeSpec,
        store: &Arc<dyn EventStore>,
    ) -> Result<(), SpecError> {
        let sink = spec.connect_sink().await?;
        let relay = Relay::spawn(store.clone(), sink, spec.relay_config()?)
            .map_err(|e| spec.config_error(e))?;
        tracing::info!(bridge = %spec.name, to = spec.to.as_deref(), "relay started");
        self.relays.push((spec.name.clone(), relay));
        Ok(())
    }

    async fn start_inbound(
        &mut self,
        spec: &BridgeSpec,
        bus: Arc<dyn CommandSender>,
        models: ReadModelStore,
    ) -> Result<(), SpecError> {
        let target =
            CommandTarget::new(bus, models, &spec.name).map_err(|e| spec.config_error(e))?;
        let handle = spec.start_inbound(Arc::new(target)).await?;
        tracing::info!(bridge = %spec.name, from = spec.from.as_deref(), "inbound bridge started");
        self.inbound.push((spec.name.clone(), handle));
        Ok(())
    }

    /// Names of the running relays and inbound consumers.
    pub fn names(&self) -> (Vec<&str>, Vec<&str>) {
        (
            self.relays.iter().map(|(n, _)| n.as_str()).collect(),
            self.inbound.iter().map(|(n, _)| n.as_str()).collect(),
        )
    }

    /// The running relays, by name.
    pub fn relays(&self) -> impl Iterator<Item = (&str, &RelayHandle)> {
        self.relays.iter().map(|(n, h)| (n.as_str(), h))
    }

    /// The running inbound consumers, by name.
    pub fn inbound(&self) -> impl Iterator<Item = (&str, &InboundHandle)> {
        self.inbound.iter().map(|(n, h)| (n.as_str(), h))
    }

    /// Stops every bridge (inbound first, so no new command starts), logging how each
    /// ended.
    pub async fn stop(self) {
        for (name, handle) in self.inbound {
            if let Err(e) = handle.stop().await {
                tracing::warn!(bridge = %name, error = %e, "inbound bridge ended with an error");
            }
        }
        for (name, relay) in self.relays {
            if let Err(e) = relay.stop().await {
                tracing::warn!(bridge = %name, error = %e, "relay ended with an error");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(to: &str) -> BridgeSpec {
        BridgeSpec {
            name: "out".into(),
            to: Some(to.into()),
            ..BridgeSpec::default()
        }
    }

    #[test]
    fn kinds_and_brokers_are_recognised() {
        assert_eq!(relay("kafka://h:9092").validate().unwrap(), SpecKind::Relay);
        assert_eq!(Broker::of("amqp://g:g@h:5672/%2f"), Some(Broker::RabbitMq));
        assert!(relay("http://h").validate().is_err());
        let both = BridgeSpec {
            from: Some("nats://h".into()),
            ..relay("nats://h")
        };
        assert!(both.validate().is_err());
    }

    #[test]
    fn misplaced_and_missing_fields_are_refused() {
        let with_group = BridgeSpec {
            group: Some("g".into()),
            ..relay("nats://h")
        };
        let err = with_group.validate().unwrap_err().to_string();
        assert!(err.contains("group"), "{err}");
        let stream_on_kafka = BridgeSpec {
            create_stream: Some("S".into()),
            ..relay("kafka://h:9092")
        };
        assert!(stream_on_kafka.validate().is_err());
        let inbound = BridgeSpec {
            name: "in".into(),
            from: Some("nats://h".into()),
            into: Some("shop".into()),
            consume: vec!["shop.commands.>".into()],
            ..BridgeSpec::default()
        };
        assert!(inbound.validate().is_err(), "NATS needs a stream");
        let inbound = BridgeSpec {
            stream: Some("SHOP".into()),
            ..inbound
        };
        assert_eq!(inbound.validate().unwrap(), SpecKind::Inbound);
        let bad_mapping = BridgeSpec {
            topics: Some("nope".into()),
            ..relay("nats://h")
        };
        assert!(bad_mapping.validate().is_err());
    }
}
