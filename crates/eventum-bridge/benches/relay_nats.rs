//! Relay throughput to NATS JetStream with broker acknowledgements, against same-run
//! baselines: the same number of messages published straight to JetStream, with as many
//! unacknowledged at once as the relay may have (`batch × in_flight`), every ack awaited,
//! no store, no mapping, no CloudEvents headers — once through async-nats's JetStream
//! publish, once the way the sink publishes (plain messages replying to one inbox per
//! batch: the broker's ceiling for this client).
//! Usage: `cargo bench -p eventum-bridge --bench relay_nats -- [events] [batch] [in_flight]`
//! (defaults 100000, 512, 4); NATS from `EVENTUM_TEST_NATS_URL` or localhost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use eventum_bridge::{Message, NatsSink, NatsSinkConfig, Relay, RelayConfig, Sink, TopicMapping};
use eventum_core::{EventStore, ExpectedVersion, NewEvent, StreamName};
use eventum_log::{LogConfig, LogStore};

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

async fn fresh_stream(js: &jetstream::Context, prefix: &str) -> String {
    let name = prefix.to_uppercase();
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("create stream");
    name
}

async fn baseline(js: &jetstream::Context, events: usize, window: usize, body: &Bytes) -> f64 {
    let prefix = unique("braw");
    let stream = fresh_stream(js, &prefix).await;
    let subject = format!("{prefix}.order-events");
    let start = Instant::now();
    let mut pending = VecDeque::with_capacity(window);
    for _ in 0..events {
        if pending.len() >= window {
            let ack: jetstream::context::PublishAckFuture = pending.pop_front().unwrap();
            ack.await.unwrap();
        }
        let publish = jetstream::message::PublishMessage::build()
            .message_id(uuid::Uuid::now_v7().to_string())
            .payload(body.clone());
        pending.push_back(js.send_publish(subject.clone(), publish).await.unwrap());
    }
    for ack in pending {
        ack.await.unwrap();
    }
    let rate = events as f64 / start.elapsed().as_secs_f64();
    js.delete_stream(&stream).await.unwrap();
    rate
}

/// Plain publishes with `Nats-Msg-Id` only, replying to one inbox per batch of `batch`,
/// `in_flight` batches unacknowledged at most: the sink's technique without its headers.
async fn baseline_inbox(
    client: &async_nats::Client,
    js: &jetstream::Context,
    events: usize,
    batch: usize,
    in_flight: usize,
    body: &Bytes,
) -> f64 {
    use futures::StreamExt;
    let prefix = unique("binb");
    let stream = fresh_stream(js, &prefix).await;
    let subject = async_nats::Subject::from(format!("{prefix}.order-events"));
    let start = Instant::now();
    let mut pending: VecDeque<(async_nats::Subscriber, usize)> = VecDeque::new();
    let mut sent = 0;
    while sent < events {
        if pending.len() >= in_flight {
            let (mut replies, n) = pending.pop_front().unwrap();
            for _ in 0..n {
                let ack = replies.next().await.unwrap();
                assert!(ack.payload.starts_with(b"{\"stream\""));
            }
        }
        let n = batch.min(events - sent);
        let inbox = async_nats::Subject::from(client.new_inbox());
        let replies = client.subscribe(inbox.clone()).await.unwrap();
        for _ in 0..n {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                uuid::Uuid::now_v7().to_string(),
            );
            client
                .publish_with_reply_and_headers(
                    subject.clone(),
                    inbox.clone(),
                    headers,
                    body.clone(),
                )
                .await
                .unwrap();
        }
        pending.push_back((replies, n));
        sent += n;
    }
    for (mut replies, n) in pending {
        for _ in 0..n {
            replies.next().await.unwrap();
        }
    }
    let rate = events as f64 / start.elapsed().as_secs_f64();
    js.delete_stream(&stream).await.unwrap();
    rate
}

async fn relay(
    client: async_nats::Client,
    store: Arc<dyn EventStore>,
    events: usize,
    batch: usize,
    in_flight: usize,
    headers: eventum_bridge::HeaderSet,
) -> f64 {
    let prefix = unique("brel");
    let sink = Arc::new(NatsSink::from_client(
        client,
        NatsSinkConfig {
            subject_prefix: prefix.clone(),
            acks_in_flight_max: batch * in_flight,
            ..NatsSinkConfig::default()
        },
    ));
    let stream = fresh_stream(sink.jetstream(), &prefix).await;
    let start = Instant::now();
    let handle = Relay::spawn(
        store.clone(),
        sink.clone(),
        RelayConfig {
            batch_events_max: batch,
            batches_in_flight_max: in_flight,
            headers,
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
    handle.stop().await.unwrap();
    let info = sink
        .jetstream()
        .get_stream(&stream)
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(
        info.state.messages as usize, events,
        "every event arrived once"
    );
    sink.jetstream().delete_stream(&stream).await.unwrap();
    rate
}

/// The sink alone: the relay's own messages (same headers and bodies), mapped before the
/// clock starts, sent with the same window of batches in flight, every ack awaited.
async fn sink_only(
    client: async_nats::Client,
    store: &Arc<dyn EventStore>,
    batch: usize,
    in_flight: usize,
) -> f64 {
    let mut messages = Vec::new();
    let mut from = 0;
    loop {
        let page = store
            .read_all(Some(from), eventum_core::ReadDirection::Forward, 1_000)
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
    let sink = NatsSink::from_client(
        client,
        NatsSinkConfig {
            subject_prefix: prefix.clone(),
            acks_in_flight_max: batch * in_flight,
            ..NatsSinkConfig::default()
        },
    );
    let stream = fresh_stream(sink.jetstream(), &prefix).await;
    let start = Instant::now();
    let mut pending = VecDeque::new();
    for chunk in messages.chunks(batch) {
        if pending.len() >= in_flight {
            let acks: eventum_bridge::Acks = pending.pop_front().unwrap();
            acks.await.unwrap();
        }
        pending.push_back(sink.send(chunk).await.unwrap());
    }
    for acks in pending {
        acks.await.unwrap();
    }
    let rate = messages.len() as f64 / start.elapsed().as_secs_f64();
    sink.jetstream().delete_stream(&stream).await.unwrap();
    rate
}

/// The relay into a `MemorySink`: reading the log, mapping and batching, no broker.
async fn relay_to_memory(store: Arc<dyn EventStore>, events: usize, batch: usize) -> f64 {
    let sink = Arc::new(eventum_bridge::MemorySink::new());
    let start = Instant::now();
    let handle = Relay::spawn(
        store.clone(),
        sink.clone(),
        RelayConfig {
            batch_events_max: batch,
            ..RelayConfig::named(unique("bmem"))
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
    handle.stop().await.unwrap();
    assert_eq!(sink.received_count(), events);
    rate
}

#[tokio::main]
async fn main() {
    use eventum_bridge::HeaderSet::{Compact, Full};
    let events = arg(1, 100_000);
    let batch = arg(2, 512);
    let in_flight = arg(3, 4);
    let url =
        std::env::var("EVENTUM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("NATS unreachable at {url}: {e}; start `nats-server -js`"));
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(batch * in_flight)
        .build(client.clone());

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    let body = Bytes::from_static(br#"{"order":"o-1","total":1234,"items":3}"#);
    let mut appended = 0;
    while appended < events {
        let n = 100.min(events - appended);
        let batch: Vec<NewEvent> = (0..n)
            .map(|_| NewEvent::from_json("OrderCreated", body.clone()).unwrap())
            .collect();
        let stream = StreamName::new(format!("order-{}", appended % 1_000)).unwrap();
        store
            .append(&stream, ExpectedVersion::Any, batch)
            .await
            .unwrap();
        appended += n;
    }

    println!(
        "relay to NATS JetStream: {events} events, batch {batch}, {in_flight} batches in flight, file storage, acks awaited"
    );
    println!(
        "{:<44} {:>12} {:>8} {:>8}",
        "run", "events/s", "/raw", "/inbox"
    );
    for round in 1..=2 {
        let raw = baseline(&js, events, batch * in_flight, &body).await;
        let inbox = baseline_inbox(&client, &js, events, batch, in_flight, &body).await;
        let sink = sink_only(client.clone(), &store, batch, in_flight).await;
        let relayed = relay(
            client.clone(),
            store.clone(),
            events,
            batch,
            in_flight,
            Full,
        )
        .await;
        let compact = relay(
            client.clone(),
            store.clone(),
            events,
            batch,
            in_flight,
            Compact,
        )
        .await;
        let memory = relay_to_memory(store.clone(), events, batch).await;
        for (name, rate) in [
            ("raw JetStream publish (async-nats)", raw),
            ("raw, inbox per batch", inbox),
            ("sink only (same msgs)", sink),
            ("relay (store -> NATS)", relayed),
            ("relay, compact headers", compact),
            ("relay (store -> memory, no broker)", memory),
        ] {
            println!(
                "{:<44} {:>12.0} {:>8.2} {:>8.2}",
                format!("round {round}: {name}"),
                rate,
                rate / raw,
                rate / inbox
            );
        }
    }
}
