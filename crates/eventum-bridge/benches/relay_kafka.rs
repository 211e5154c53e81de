//! Relay throughput to Kafka with delivery reports (idempotent producer, `acks=all`),
//! against a same-run baseline: the same number of records produced straight through
//! rdkafka with the same producer settings, key and body only, with as many records
//! unacknowledged at once as the relay may have (`batch × in_flight`), every delivery
//! report awaited. Usage:
//! `cargo bench -p eventum-bridge --bench relay_kafka -- [events] [batch] [in_flight]`
//! (defaults 100000, 512, 4); the broker from `EVENTUM_TEST_KAFKA_URL` or localhost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventum_bridge::{KafkaSink, KafkaSinkConfig, Message, Relay, RelayConfig, Sink, TopicMapping};
use eventum_core::{EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName};
use eventum_log::{LogConfig, LogStore};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn unique(tag: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{tag}{}", &id[id.len() - 10..])
}

async fn sink(url: &str, prefix: &str) -> KafkaSink {
    KafkaSink::connect(
        url,
        KafkaSinkConfig {
            topic_prefix: prefix.to_owned(),
            ..KafkaSinkConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("Kafka unreachable at {url}: {e}"))
}

/// Raw rdkafka: the relay's producer settings, `window` records unacknowledged at most.
async fn baseline(url: &str, events: usize, window: usize, body: &Bytes) -> f64 {
    let prefix = unique("braw");
    let topic = format!("{prefix}.order-events");
    // Created like the relay's topics (3 partitions).
    let creator = sink(url, &prefix).await;
    creator
        .create_topics(
            std::slice::from_ref(&topic),
            &eventum_bridge::TopicSpec {
                partitions: 3,
                replication: 1,
            },
        )
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            eventum_bridge::kafka::bootstrap_servers(url),
        )
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "100000")
        .create()
        .unwrap();
    let keys: Vec<String> = (0..1_000).map(|i| format!("order-{i}")).collect();
    // Connection, producer id and metadata first, outside the clock (as for the sink).
    let warm = FutureRecord::to(&topic)
        .key("warm-up")
        .payload(body.as_ref());
    producer.send(warm, Duration::from_secs(10)).await.unwrap();
    let start = Instant::now();
    let mut pending = VecDeque::with_capacity(window);
    for i in 0..events {
        if pending.len() >= window {
            let d: rdkafka::producer::DeliveryFuture = pending.pop_front().unwrap();
            d.await.unwrap().unwrap();
        }
        let record = FutureRecord::to(&topic)
            .key(keys[i / 100 % 1_000].as_str())
            .payload(body.as_ref());
        pending.push_back(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
    events as f64 / start.elapsed().as_secs_f64()
}

async fn relay(
    url: &str,
    store: Arc<dyn EventStore>,
    events: usize,
    batch: usize,
    in_flight: usize,
) -> f64 {
    let prefix = unique("brel");
    let sink = Arc::new(sink(url, &prefix).await);
    let start = Instant::now();
    let handle = Relay::spawn(
        store.clone(),
        sink,
        RelayConfig {
            batch_events_max: batch,
            batches_in_flight_max: in_flight,
            ..RelayConfig::named(&prefix)
        },
    )
    .unwrap();
    let head = store.head_position().unwrap() + 1;
    assert!(
        handle
            .wait_acknowledged(head, Duration::from_secs(600))
            .await
    );
    let rate = events as f64 / start.elapsed().as_secs_f64();
    let published = handle.progress().borrow().published_total;
    handle.stop().await.unwrap();
    assert_eq!(published as usize, events, "every event delivered once");
    rate
}

/// The sink alone: the relay's own messages, mapped before the clock starts, sent with
/// the same window of batches in flight.
async fn sink_only(url: &str, store: &Arc<dyn EventStore>, batch: usize, in_flight: usize) -> f64 {
    let mut messages = Vec::new();
    let mut from = 0;
    loop {
        let page = store
            .read_all(Some(from), ReadDirection::Forward, 1_000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        messages.extend(
            page.iter()
                .filter(|e| !e.stream.starts_with('$'))
                .map(|e| Message::from_event(e, TopicMapping::Category, "eventum")),
        );
    }
    let prefix = unique("bsnk");
    let sink = sink(url, &prefix).await;
    // Topics first, outside the clock.
    sink.publish(&messages[..1]).await.unwrap();
    let start = Instant::now();
    let mut pending = VecDeque::new();
    for chunk in messages[1..].chunks(batch) {
        if pending.len() >= in_flight {
            let acks: eventum_bridge::Acks = pending.pop_front().unwrap();
            acks.await.unwrap();
        }
        pending.push_back(sink.send(chunk).await.unwrap());
    }
    for acks in pending {
        acks.await.unwrap();
    }
    (messages.len() - 1) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let events = arg(1, 100_000);
    let batch = arg(2, 512);
    let in_flight = arg(3, 4);
    let url =
        std::env::var("EVENTUM_TEST_KAFKA_URL").unwrap_or_else(|_| "kafka://127.0.0.1:9092".into());

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    let body = Bytes::from_static(br#"{"order":"o-1","total":1234,"items":3}"#);
    let mut appended = 0;
    while appended < events {
        let n = 100.min(events - appended);
        let batch: Vec<NewEvent> = (0..n)
            .map(|_| NewEvent::from_json("OrderCreated", body.clone()).unwrap())
            .collect();
        let stream = StreamName::new(format!("order-{}", appended / 100 % 1_000)).unwrap();
        store
            .append(&stream, ExpectedVersion::Any, batch)
            .await
            .unwrap();
        appended += n;
    }

    println!(
        "relay to Kafka ({url}): {events} events, batch {batch}, {in_flight} batches in flight, delivery reports awaited"
    );
    println!("{:<38} {:>14} {:>8}", "run", "events/s", "ratio");
    for round in 1..=2 {
        let raw = baseline(&url, events, batch * in_flight, &body).await;
        let sink = sink_only(&url, &store, batch, in_flight).await;
        let relayed = relay(&url, store.clone(), events, batch, in_flight).await;
        println!(
            "{:<38} {:>14.0} {:>8}",
            format!("round {round}: raw rdkafka produce"),
            raw,
            "1.00"
        );
        println!(
            "{:<38} {:>14.0} {:>8.2}",
            format!("round {round}: sink only (same msgs)"),
            sink,
            sink / raw
        );
        println!(
            "{:<38} {:>14.0} {:>8.2}",
            format!("round {round}: relay (store -> Kafka)"),
            relayed,
            relayed / raw
        );
    }
}
