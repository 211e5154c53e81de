//! Inbound from a real RabbitMQ through the read-model inbox: RabbitMQ keeps re-sent
//! messages, so two relays without a shared checkpoint put every event in the queue
//! twice; the handler runs once per event id and the duplicates are acknowledged and
//! dropped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{
    AmqpInbound, AmqpInboundConfig, HandlerError, InboundMessage, RabbitMqSink, RabbitMqSinkConfig,
    Relay, RelayConfig, header,
};
use eventum_projections::StoreTx;
use lapin::options::{
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use common::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_in_the_queue_reach_the_handler_once() {
    let url = rabbitmq_url();
    let connection = match Connection::connect(&url, ConnectionProperties::default()).await {
        Ok(c) => c,
        Err(e) => unreachable("RabbitMQ", &url, e, "systemctl start rabbitmq-server"),
    };
    let channel = connection.create_channel().await.unwrap();
    let exchange = unique("eventum-test-");
    let queue = format!("{exchange}-in");
    let sink = Arc::new(
        RabbitMqSink::connect(
            &url,
            RabbitMqSinkConfig {
                exchange: exchange.clone(),
                ..RabbitMqSinkConfig::default()
            },
        )
        .await
        .unwrap(),
    );
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
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    append_events(&store, 60).await;
    for name in ["amqp-in-a", "amqp-in-b"] {
        let relay = Relay::spawn(store.clone(), sink.clone(), RelayConfig::named(name)).unwrap();
        assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
        relay.stop().await.unwrap();
    }

    let models_dir = tempfile::tempdir().unwrap();
    let models = seen_models(&models_dir);
    let handler = |tx: &mut StoreTx<'_>, m: &InboundMessage| -> Result<(), HandlerError> {
        assert_eq!(m.header(header::CE_ID), Some(m.id.to_string().as_str()));
        count_seen(tx, m)
    };
    let config = AmqpInboundConfig {
        prefetch_max: 32,
        batch_messages_max: 16,
        ..AmqpInboundConfig::new(&queue, "amqp-inbound")
    };
    let inbound = AmqpInbound::spawn(&url, models.clone(), config, handler)
        .await
        .unwrap();
    let mut progress = inbound.progress();
    let done = tokio::time::timeout(
        WAIT,
        progress.wait_for(|p| p.handled_total + p.duplicates_total >= 120),
    )
    .await;
    assert!(done.is_ok(), "120 deliveries were not all consumed");
    let p = inbound.progress().borrow().clone();
    inbound.stop().await.unwrap();
    assert_eq!((p.handled_total, p.duplicates_total), (60, 60));
    assert_eq!(seen_total(&models), 60);

    // Everything was acknowledged: the queue is empty.
    let declared = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(declared.message_count(), 0);
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}
