//! The relay to a real RabbitMQ: publisher confirms, `message_id` = event id, CloudEvents
//! headers as AMQP headers, routing key `{topic}.{stream id}` on a topic exchange.

mod common;

use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{RabbitMqSink, RabbitMqSinkConfig, Relay, RelayConfig, header};
use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use uuid::Uuid;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

async fn connect() -> Connection {
    let url = rabbitmq_url();
    match Connection::connect(&url, ConnectionProperties::default()).await {
        Ok(c) => c,
        Err(e) => unreachable("RabbitMQ", &url, e, "systemctl start rabbitmq-server"),
    }
}

fn text(headers: &FieldTable, name: &str) -> String {
    match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("header {name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_carry_id_headers_and_routing_key() {
    let connection = connect().await;
    let channel = connection.create_channel().await.unwrap();
    let exchange = unique("eventum-test-");
    let url = rabbitmq_url();
    let sink = match RabbitMqSink::connect(
        &url,
        RabbitMqSinkConfig {
            exchange: exchange.clone(),
            ..RabbitMqSinkConfig::default()
        },
    )
    .await
    {
        Ok(s) => Arc::new(s),
        Err(e) => unreachable("RabbitMQ", &url, e, "systemctl start rabbitmq-server"),
    };
    // Two queues: one topic, and everything.
    let orders = format!("{exchange}-orders");
    let everything = format!("{exchange}-all");
    for (queue, pattern) in [(&orders, "order-events.#"), (&everything, "#")] {
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let ids = append_events(&store, 120).await;
    let relay = Relay::spawn(
        store.clone(),
        sink.clone(),
        RelayConfig {
            batch_events_max: 32,
            ..RelayConfig::named("amqp")
        },
    )
    .unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();

    let mut received = Vec::new();
    while let Some(m) = channel
        .basic_get(everything.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let props = &m.delivery.properties;
        let id = Uuid::parse_str(props.message_id().as_ref().unwrap().as_str()).unwrap();
        let headers = props.headers().as_ref().unwrap();
        assert_eq!(text(headers, header::CE_ID), id.to_string());
        assert_eq!(text(headers, header::CE_SPECVERSION), "1.0");
        let stream = text(headers, header::CE_SUBJECT);
        let topic = if stream.starts_with("order") {
            "order-events"
        } else {
            "user-events"
        };
        assert_eq!(m.delivery.routing_key.as_str(), format!("{topic}.{stream}"));
        let data: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
        assert!(data["i"].is_u64());
        received.push(id);
    }
    assert_eq!(received, ids, "every event once, in order");
    let mut order_count = 0;
    while channel
        .basic_get(orders.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_some()
    {
        order_count += 1;
    }
    assert_eq!(order_count, 90, "the topic binding sees only order streams");

    for queue in [&orders, &everything] {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_a_typed_error() {
    let config = RabbitMqSinkConfig {
        timeout_ms: 1_000,
        ..RabbitMqSinkConfig::default()
    };
    let err = RabbitMqSink::connect("amqp://guest:guest@127.0.0.1:1/%2f", config)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, eventum_bridge::SinkError::Unavailable(_)));
}
