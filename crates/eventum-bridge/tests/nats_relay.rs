//! The relay to a real NATS JetStream server: every event arrives once, in order, with
//! its CloudEvents headers; a relay that re-sends after losing its checkpoint adds no
//! duplicate because `Nats-Msg-Id` is the event id.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use eventum_bridge::{NatsSink, NatsSinkConfig, Relay, RelayConfig, TopicMapping, header};
use uuid::Uuid;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

async fn sink(prefix: &str) -> NatsSink {
    let url = nats_url();
    let config = NatsSinkConfig {
        subject_prefix: prefix.to_owned(),
        connect_timeout_ms: 2_000,
        ..NatsSinkConfig::default()
    };
    match NatsSink::connect(&url, config).await {
        Ok(s) => s,
        Err(e) => unreachable("NATS", &url, e, "nats-server -js"),
    }
}

/// Deletes the test's stream even when an assertion fails.
struct StreamGuard(jetstream::Context, String);
impl Drop for StreamGuard {
    fn drop(&mut self) {
        let (js, name) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move { js.delete_stream(&name).await })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_in_order_with_headers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let ids = append_events(&store, 300).await;
    let prefix = unique("t");
    let sink = Arc::new(sink(&prefix).await);
    let stream_name = prefix.to_uppercase();
    sink.ensure_stream(&stream_name, Duration::from_secs(120))
        .await
        .unwrap();
    let _guard = StreamGuard(sink.jetstream().clone(), stream_name.clone());

    let config = RelayConfig {
        batch_events_max: 64,
        topics: TopicMapping::EventType,
        ..RelayConfig::named("nats-once")
    };
    let relay = Relay::spawn(store.clone(), sink.clone(), config).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();

    let stream = sink.jetstream().get_stream(&stream_name).await.unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.state.messages, 300, "each event stored exactly once");
    let mut received = Vec::new();
    for seq in 1..=300 {
        let m = stream.get_raw_message(seq).await.unwrap();
        let h = |name: &str| {
            m.headers
                .get(name)
                .unwrap_or_else(|| panic!("header {name} missing"))
                .as_str()
                .to_owned()
        };
        let id = Uuid::parse_str(&h(header::CE_ID)).unwrap();
        assert_eq!(h("Nats-Msg-Id"), id.to_string());
        let ce_type = h(header::CE_TYPE);
        let expected_subject = match ce_type.as_str() {
            "OrderCreated" => format!("{prefix}.order-created"),
            "OrderPaid" => format!("{prefix}.order-paid"),
            other => panic!("unexpected type {other}"),
        };
        assert_eq!(m.subject.as_str(), expected_subject);
        assert_eq!(h(header::CE_SOURCE), "eventum");
        assert_eq!(h(header::CE_SPECVERSION), "1.0");
        assert!(h(header::CE_TIME).ends_with('Z'));
        Uuid::parse_str(&h(header::CORRELATION_ID)).unwrap();
        Uuid::parse_str(&h(header::CAUSATION_ID)).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(body["i"], serde_json::json!(seq - 1));
        received.push(id);
    }
    assert_eq!(received, ids, "global order, hence per-stream order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_resends_adds_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let ids = append_events(&store, 200).await;
    let prefix = unique("t");
    let sink = Arc::new(sink(&prefix).await);
    let stream_name = prefix.to_uppercase();
    sink.ensure_stream(&stream_name, Duration::from_secs(120))
        .await
        .unwrap();
    let _guard = StreamGuard(sink.jetstream().clone(), stream_name.clone());

    // First relay stops mid-way after some batches.
    let first = Relay::spawn(
        store.clone(),
        sink.clone(),
        RelayConfig {
            batch_events_max: 16,
            batch_linger_ms: 0,
            ..RelayConfig::named("nats-a")
        },
    )
    .unwrap();
    first
        .progress()
        .wait_for(|p| p.next_position >= 50)
        .await
        .unwrap();
    first.stop().await.unwrap();
    // A relay whose checkpoint is behind the broker (here: none at all, as after a
    // crash before its first checkpoint write) re-sends everything from 0.
    let second = Relay::spawn(store.clone(), sink.clone(), RelayConfig::named("nats-b")).unwrap();
    assert!(second.wait_acknowledged(head_next(&store), WAIT).await);
    let resent = second.progress().borrow().published_total;
    second.stop().await.unwrap();
    assert_eq!(resent, 200, "the second relay re-sent every event");

    let stream = sink.jetstream().get_stream(&stream_name).await.unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.state.messages, 200, "re-sent messages were dropped");
    let mut received = Vec::new();
    for seq in 1..=200 {
        let m = stream.get_raw_message(seq).await.unwrap();
        received.push(Uuid::parse_str(m.headers.get(header::CE_ID).unwrap().as_str()).unwrap());
    }
    assert_eq!(received, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_is_retried_until_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let ids = append_events(&store, 40).await;
    let prefix = unique("t");
    let sink = Arc::new(sink(&prefix).await);
    let relay = Relay::spawn(
        store.clone(),
        sink.clone(),
        RelayConfig {
            retry_delay_ms_min: 20,
            retry_delay_ms_max: 100,
            ..RelayConfig::named("nats-late")
        },
    )
    .unwrap();
    // No stream captures the subjects yet: JetStream does not acknowledge, the relay
    // retries and its checkpoint stays put.
    let mut progress = relay.progress();
    progress
        .wait_for(|p| p.publish_failures_total >= 3)
        .await
        .unwrap();
    assert_eq!(progress.borrow().next_position, 0);

    let stream_name = prefix.to_uppercase();
    sink.ensure_stream(&stream_name, Duration::from_secs(120))
        .await
        .unwrap();
    let _guard = StreamGuard(sink.jetstream().clone(), stream_name.clone());
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();
    let stream = sink.jetstream().get_stream(&stream_name).await.unwrap();
    assert_eq!(stream.get_info().await.unwrap().state.messages, 40);
    let mut received = Vec::new();
    for seq in 1..=40 {
        let m = stream.get_raw_message(seq).await.unwrap();
        received.push(Uuid::parse_str(m.headers.get(header::CE_ID).unwrap().as_str()).unwrap());
    }
    assert_eq!(received, ids);
}

#[tokio::test]
async fn an_unreachable_server_is_a_typed_error() {
    let err = NatsSink::connect(
        "nats://127.0.0.1:1",
        NatsSinkConfig {
            connect_timeout_ms: 500,
            ..NatsSinkConfig::default()
        },
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, eventum_bridge::SinkError::Unavailable(_)));
}
