//! The relay to a real Kafka-protocol broker (tansu in CI): one topic per category, key =
//! stream id (each stream in order within its partition), CloudEvents and correlation
//! headers, every event delivered; a second relay without a checkpoint re-sends, which
//! Kafka keeps (consumers drop the copies by `ce_id`, see kafka_inbound.rs).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{KafkaSink, KafkaSinkConfig, Relay, RelayConfig, SinkError, header};
use eventum_core::ReadDirection;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use uuid::Uuid;

use common::*;

const WAIT: Duration = Duration::from_secs(60);

async fn sink(prefix: &str) -> KafkaSink {
    let url = kafka_url();
    let config = KafkaSinkConfig {
        topic_prefix: prefix.to_owned(),
        connect_timeout_ms: 5_000,
        ..KafkaSinkConfig::default()
    };
    match KafkaSink::connect(&url, config).await {
        Ok(s) => s,
        Err(e) => unreachable("Kafka", &url, e, KAFKA_START),
    }
}

/// One record as read back: topic, partition, key, headers, body.
struct Record {
    topic: String,
    partition: i32,
    key: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Reads `count` records of `topics` from the beginning with a fresh group.
async fn read_back(topics: &[String], count: usize) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            eventum_bridge::kafka::bootstrap_servers(&kafka_url()),
        )
        .set("group.id", unique("check-"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        let m = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} records arrived", out.len()))
            .unwrap();
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        let v = String::from_utf8(h.value.unwrap().to_vec()).unwrap();
                        (h.key.to_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Record {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            key: String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
            headers,
            body: m.payload().unwrap().to_vec(),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_keyed_by_stream_with_cloudevents_headers() {
    let prefix = unique("eventum-test-");
    let sink = Arc::new(sink(&prefix).await);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let ids = append_events(&store, 160).await;
    let relay = Relay::spawn(
        store.clone(),
        sink.clone(),
        RelayConfig {
            batch_events_max: 32,
            source: "shop".into(),
            ..RelayConfig::named("kafka-a")
        },
    )
    .unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();

    let topics = [
        format!("{prefix}.order-events"),
        format!("{prefix}.user-events"),
    ];
    let records = read_back(&topics, 160).await;
    let events = store
        .read_all(Some(0), ReadDirection::Forward, 1_000)
        .await
        .unwrap();
    let by_id: HashMap<Uuid, &eventum_core::RecordedEvent> =
        events.iter().map(|e| (e.id, e)).collect();
    let mut got: Vec<Uuid> = Vec::new();
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut last_version: HashMap<String, u64> = HashMap::new();
    for r in &records {
        let id = Uuid::parse_str(&r.headers[header::CE_ID]).unwrap();
        let e = by_id[&id];
        assert_eq!(r.key, e.stream, "key = stream id");
        assert_eq!(r.topic.ends_with("user-events"), e.stream == "user-7");
        assert_eq!(r.headers[header::CE_TYPE], e.event_type);
        assert_eq!(r.headers[header::CE_SOURCE], "shop");
        assert_eq!(r.headers[header::CE_TIME], e.recorded_at_rfc3339());
        assert_eq!(
            r.headers[header::CORRELATION_ID],
            e.correlation_id.to_string()
        );
        assert_eq!(r.headers[header::CAUSATION_ID], e.causation_id.to_string());
        assert_eq!(r.body, e.data.as_ref());
        // One stream, one partition, versions in order.
        assert_eq!(
            *partition_of.entry(r.key.clone()).or_insert(r.partition),
            r.partition
        );
        let previous = last_version.insert(r.key.clone(), e.version);
        assert!(
            previous.is_none_or(|v| v + 1 == e.version),
            "{}: in order",
            r.key
        );
        got.push(id);
    }
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each event exactly once");

    // A second relay without a checkpoint re-sends everything: Kafka keeps the copies.
    let relay = Relay::spawn(store.clone(), sink, RelayConfig::named("kafka-b")).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();
    assert_eq!(read_back(&topics, 320).await.len(), 320);
}

#[tokio::test]
async fn an_unreachable_broker_is_a_typed_error() {
    let config = KafkaSinkConfig {
        connect_timeout_ms: 1_000,
        ..KafkaSinkConfig::default()
    };
    let err = KafkaSink::connect(&format!("kafka://127.0.0.1:{}", free_port()), config)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SinkError::Unavailable(_)), "{err:?}");
}
