//! Eventum's broker bridges. The store's log is the outbox: a [`Relay`] follows `$all`
//! from a durable checkpoint and publishes each event as a [`Message`] (topic per category
//! or per event type, key = stream id, CloudEvents headers) through a [`Sink`] adapter —
//! NATS JetStream, Kafka, Redis Streams, RabbitMQ — advancing its checkpoint only after
//! the broker acknowledged. The inbound side consumes a broker (JetStream, Kafka, Redis
//! Streams, RabbitMQ) into an [`InboundTarget`] — a handler or the command bus — through
//! an inbox that drops duplicates.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod inbound;
pub mod inbound_amqp;
pub mod inbound_commands;
pub mod inbound_kafka;
pub mod inbound_redis;
pub mod inbound_target;
pub mod kafka;
pub mod memory;
pub mod message;
pub mod nats;
pub mod rabbitmq;
pub mod redis_streams;
pub mod relay;
mod relay_reader;
pub mod sink;
pub mod spec;

pub use config::{RelayConfig, TopicMapping};
pub use error::{ConfigError, RelayError, SinkError};
pub use inbound::{
    HandlerError, InboundError, InboundHandle, InboundMessage, InboundProgress, NatsInbound,
    NatsInboundConfig,
};
pub use inbound_amqp::{AmqpInbound, AmqpInboundConfig};
pub use inbound_commands::{CommandTarget, command_id};
pub use inbound_kafka::{KafkaInbound, KafkaInboundConfig};
pub use inbound_redis::{RedisInbound, RedisInboundConfig};
pub use inbound_target::{Delivered, HandlerTarget, InboundTarget};
pub use kafka::{KafkaSink, KafkaSinkConfig, TopicSpec};
pub use memory::MemorySink;
pub use message::{HeaderSet, Message, header, kebab_case};
pub use nats::{NatsSink, NatsSinkConfig};
pub use rabbitmq::{RabbitMqSink, RabbitMqSinkConfig};
pub use redis_streams::{RedisSink, RedisSinkConfig};
pub use relay::{Relay, RelayHandle, RelayProgress, RelayState};
pub use sink::{Acks, Sink};
pub use spec::{BridgeSpec, Bridges, SpecError};
