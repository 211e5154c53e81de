//! The RabbitMQ sink: publishes to a durable topic exchange with publisher confirms,
//! `message_id` = event id, CloudEvents attributes as AMQP headers, persistent delivery.
//! The routing key is `{topic}.{stream id}`: bindings choose a topic (`order-events.#`)
//! or one aggregate (`order-events.order-42`), and the key stays in the routing key.
//! RabbitMQ does not deduplicate by itself; consumers drop re-sent messages by
//! `message_id` through an inbox.

use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use crate::error::SinkError;
use crate::message::Message;
use crate::sink::Sink;

/// AMQP's limit on a routing key (a short string).
pub const ROUTING_KEY_BYTES_MAX: usize = 255;

/// Settings of a [`RabbitMqSink`].
#[derive(Clone, Debug)]
pub struct RabbitMqSinkConfig {
    /// The topic exchange, declared durable on connect. Default `eventum`.
    pub exchange: String,
    /// Publish as `mandatory`: an unroutable message (no queue bound for it) fails the
    /// batch instead of being dropped by the exchange, so the relay waits until a queue
    /// is bound. Default false.
    pub mandatory: bool,
    /// How long connecting, and a batch's confirms, may take. Default 5,000 ms.
    pub timeout_ms: u64,
}

impl Default for RabbitMqSinkConfig {
    fn default() -> Self {
        Self {
            exchange: "eventum".into(),
            mandatory: false,
            timeout_ms: 5_000,
        }
    }
}

struct Open {
    // Kept so that the connection lives as long as its channel.
    _connection: Connection,
    channel: Channel,
}

/// Publishes to RabbitMQ; reopens its connection on the next batch after a failure.
pub struct RabbitMqSink {
    url: String,
    config: RabbitMqSinkConfig,
    open: Mutex<Option<Open>>,
}

impl RabbitMqSink {
    /// Connects to `url` (`amqp://user:pass@host:port/%2f`) and declares the exchange;
    /// fails when RabbitMQ is unreachable.
    pub async fn connect(url: &str, config: RabbitMqSinkConfig) -> Result<Self, SinkError> {
        let sink = Self {
            url: url.to_owned(),
            config,
            open: Mutex::new(None),
        };
        let open = sink.open().await?;
        *sink.open.lock().await = Some(open);
        Ok(sink)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    async fn open(&self) -> Result<Open, SinkError> {
        let unavailable = |e: lapin::Error| SinkError::Unavailable(format!("RabbitMQ: {e}"));
        let connect = Connection::connect(&self.url, ConnectionProperties::default());
        let connection = tokio::time::timeout(self.timeout(), connect)
            .await
            .map_err(|_| {
                SinkError::Unavailable(format!("RabbitMQ at {}: connect timed out", self.url))
            })?
            .map_err(unavailable)?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| SinkError::Refused(format!("declaring exchange: {e}")))?;
        Ok(Open {
            _connection: connection,
            channel,
        })
    }

    /// The routing key of `message`, cut to AMQP's 255-byte limit on a character
    /// boundary (a longer key could never be sent, and the relay would retry it
    /// forever; the full stream id is in the `ce_subject` header).
    pub fn routing_key(message: &Message) -> String {
        let mut key = format!("{}.{}", message.topic, message.key);
        if key.len() > ROUTING_KEY_BYTES_MAX {
            let mut end = ROUTING_KEY_BYTES_MAX;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            key.truncate(end);
        }
        key
    }

    async fn publish_on(&self, channel: &Channel, batch: &[Message]) -> Result<(), SinkError> {
        let unavailable = |e: lapin::Error| SinkError::Unavailable(format!("RabbitMQ: {e}"));
        let mut confirms = Vec::with_capacity(batch.len());
        for m in batch {
            let mut headers = FieldTable::default();
            for (name, value) in &m.headers {
                headers.insert((*name).into(), AMQPValue::LongString(value.as_str().into()));
            }
            let properties = BasicProperties::default()
                .with_message_id(ShortString::from(m.id.to_string()))
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_headers(headers);
            let confirm = channel
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    Self::routing_key(m).into(),
                    BasicPublishOptions {
                        mandatory: self.config.mandatory,
                        ..BasicPublishOptions::default()
                    },
                    &m.body,
                    properties,
                )
                .await
                .map_err(unavailable)?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            let confirmation = confirm.await.map_err(unavailable)?;
            if confirmation.is_nack() {
                return Err(SinkError::Refused(
                    "RabbitMQ refused a message (nack)".into(),
                ));
            }
            if confirmation.take_message().is_some() {
                return Err(SinkError::Refused(
                    "RabbitMQ returned an unroutable message: no queue is bound for it".into(),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for RabbitMqSink {
    fn name(&self) -> &str {
        "rabbitmq"
    }

    async fn publish(&self, batch: &[Message]) -> Result<(), SinkError> {
        let mut guard = self.open.lock().await;
        let open = match guard.as_mut() {
            Some(o) => o,
            None => guard.insert(self.open().await?),
        };
        let result = tokio::time::timeout(self.timeout(), self.publish_on(&open.channel, batch))
            .await
            .unwrap_or_else(|_| {
                Err(SinkError::Unavailable(
                    "RabbitMQ: confirms timed out".into(),
                ))
            });
        if matches!(result, Err(SinkError::Unavailable(_))) {
            // A failed channel or connection does not recover; open new ones next time.
            *guard = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_key_fits_amqp() {
        let mut m = Message {
            topic: "order-events".into(),
            key: "order-42".into(),
            id: uuid::Uuid::now_v7(),
            position: 0,
            headers: Vec::new(),
            body: bytes::Bytes::new(),
        };
        assert_eq!(RabbitMqSink::routing_key(&m), "order-events.order-42");
        m.key = "é".repeat(128);
        let key = RabbitMqSink::routing_key(&m);
        assert!(key.len() <= ROUTING_KEY_BYTES_MAX);
        assert!(key.starts_with("order-events.é"));
    }
}
