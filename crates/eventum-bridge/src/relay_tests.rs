//! The relay against `MemoryStore` and a `MemorySink` that fails on demand.

use std::collections::HashSet;

use eventum_core::{EventId, ExpectedVersion, NewEvent};
use eventum_testkit::MemoryStore;
use serde_json::json;

use super::*;
use crate::checkpoint::read_next_position;
use crate::memory::MemorySink;
use crate::message::header;

const WAIT: Duration = Duration::from_secs(10);

fn config(name: &str) -> RelayConfig {
    RelayConfig {
        batch_events_max: 8,
        retry_delay_ms_min: 5,
        retry_delay_ms_max: 20,
        checkpoint_interval_ms: 0,
        ..RelayConfig::named(name)
    }
}

/// Appends `n` events round-robin over three order streams and a user stream; returns
/// their ids in append order.
async fn append_events(store: &Arc<dyn EventStore>, n: usize, tag: &str) -> Vec<EventId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let stream = match i % 4 {
            3 => StreamName::new("user-7").unwrap(),
            k => StreamName::new(format!("order-{k}")).unwrap(),
        };
        let event = NewEvent::new("OrderCreated", &json!({"i": i, "tag": tag})).unwrap();
        ids.push(event.id());
        store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    ids
}

fn head_next(store: &Arc<dyn EventStore>) -> u64 {
    store.head_position().map_or(0, |p| p + 1)
}

/// Ids in order of first arrival.
fn first_occurrences(messages: &[Message]) -> Vec<EventId> {
    let mut seen = HashSet::new();
    messages
        .iter()
        .filter(|m| seen.insert(m.id))
        .map(|m| m.id)
        .collect()
}

async fn saved(store: &Arc<dyn EventStore>, name: &str) -> u64 {
    let stream = StreamName::system(format!("$bridge-{name}-checkpoint")).unwrap();
    read_next_position(store.as_ref(), &stream).await.unwrap()
}

#[tokio::test]
async fn relays_user_events_in_order_and_resumes_from_checkpoint() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
    let mut ids = append_events(&store, 50, "a").await;
    let sink = Arc::new(MemorySink::new());
    let relay = Relay::spawn(store.clone(), sink.clone(), config("r1")).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    let received = sink.received();
    assert_eq!(received.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert!(
        received.iter().all(|m| !m.key.starts_with('$')),
        "system streams skipped"
    );
    assert_eq!(received[0].topic, "order-events");
    assert_eq!(received[3].topic, "user-events");
    assert_eq!(received[3].key, "user-7");
    assert!(received[0].header(header::CE_TIME).is_some());
    relay.stop().await.unwrap();
    let saved_next = saved(&store, "r1").await;
    assert!(
        saved_next >= 50,
        "checkpoint covers the relayed events: {saved_next}"
    );

    // A restarted relay sends only what is new.
    ids = append_events(&store, 5, "b").await;
    let sink2 = Arc::new(MemorySink::new());
    let relay = Relay::spawn(store.clone(), sink2.clone(), config("r1")).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    assert_eq!(
        sink2.received().iter().map(|m| m.id).collect::<Vec<_>>(),
        ids
    );
    relay.stop().await.unwrap();
}

#[tokio::test]
async fn outage_holds_the_checkpoint_then_resumes_without_loss() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
    let sink = Arc::new(MemorySink::new());
    sink.set_down(true);
    let relay = Relay::spawn(store.clone(), sink.clone(), config("out")).unwrap();
    let ids = append_events(&store, 30, "a").await;
    let mut progress = relay.progress();
    progress
        .wait_for(|p| p.publish_failures_total >= 3)
        .await
        .unwrap();
    let p = progress.borrow().clone();
    assert_eq!(p.state, RelayState::Retrying);
    assert_eq!(p.next_position, 0, "nothing acknowledged, nothing advanced");
    assert_eq!(saved(&store, "out").await, 0);
    assert_eq!(sink.received_count(), 0);

    sink.set_down(false);
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    let received = sink.received();
    assert_eq!(received.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert_eq!(relay.progress().borrow().state, RelayState::Running);
    relay.stop().await.unwrap();
    assert!(saved(&store, "out").await >= 30);
}

#[tokio::test]
async fn lost_acknowledgements_only_duplicate_and_keep_order() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
    let ids = append_events(&store, 40, "a").await;
    let sink = Arc::new(MemorySink::new());
    sink.lose_next_acks(2);
    let relay = Relay::spawn(store.clone(), sink.clone(), config("dup")).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();
    let received = sink.received();
    assert!(received.len() > ids.len(), "lost acks re-send their batch");
    assert_eq!(first_occurrences(&received), ids, "every event, in order");
    // Per stream, versions never go backwards except by repeating a re-sent batch.
    for stream in ["order-0", "order-1", "order-2", "user-7"] {
        let firsts: Vec<u64> = first_occurrences(&received)
            .iter()
            .filter_map(|id| received.iter().find(|m| m.id == *id))
            .filter(|m| m.key == stream)
            .map(|m| m.header(header::EVENTUM_VERSION).unwrap().parse().unwrap())
            .collect();
        assert!(
            firsts.windows(2).all(|w| w[0] + 1 == w[1]),
            "{stream}: {firsts:?}"
        );
    }
}

#[tokio::test]
async fn pipelined_batches_are_bounded_and_never_checkpointed_unacknowledged() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
    let ids = append_events(&store, 100, "a").await;
    let sink = Arc::new(MemorySink::new());
    sink.hold_acks();
    let cfg = RelayConfig {
        batches_in_flight_max: 3,
        ..config("pipe")
    };
    let relay = Relay::spawn(store.clone(), sink.clone(), cfg).unwrap();
    // Three batches of 8 go out; then the relay waits for their acknowledgements.
    let deadline = tokio::time::Instant::now() + WAIT;
    while sink.received_count() < 24 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "batches were not sent"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        sink.received_count(),
        24,
        "at most 3 batches unacknowledged"
    );
    assert_eq!(relay.progress().borrow().next_position, 0);
    assert_eq!(saved(&store, "pipe").await, 0);

    // The held acknowledgements fail: all three batches are sent again, then the rest.
    sink.release_acks(true);
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 124, "the 24 in flight were sent twice");
    assert_eq!(first_occurrences(&received), ids);
    assert_eq!(
        received[24..].iter().map(|m| m.id).collect::<Vec<_>>(),
        ids,
        "after the failure, every event again in order"
    );
    assert!(saved(&store, "pipe").await >= 100);
}

#[tokio::test]
async fn bounded_retries_stop_the_relay_without_advancing() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
    append_events(&store, 3, "a").await;
    let sink = Arc::new(MemorySink::new());
    sink.set_down(true);
    let cfg = RelayConfig {
        retry_attempts_max: Some(3),
        ..config("bounded")
    };
    let relay = Relay::spawn(store.clone(), sink.clone(), cfg).unwrap();
    let err = tokio::time::timeout(WAIT, relay.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(
        err,
        RelayError::RetriesExhausted { attempts: 3, .. }
    ));
    assert_eq!(sink.publish_calls(), 3);
    assert_eq!(saved(&store, "bounded").await, 0);
}

#[tokio::test]
async fn restart_mid_way_loses_nothing() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
    let ids = append_events(&store, 200, "a").await;
    let first = Arc::new(MemorySink::new());
    let relay = Relay::spawn(
        store.clone(),
        first.clone(),
        RelayConfig {
            batch_events_max: 4,
            batch_linger_ms: 0,
            ..config("mid")
        },
    )
    .unwrap();
    relay
        .progress()
        .wait_for(|p| p.next_position >= 40)
        .await
        .unwrap();
    relay.stop().await.unwrap();
    let saved_next = saved(&store, "mid").await;
    assert!(saved_next < head_next(&store), "stopped mid-way");

    let second = Arc::new(MemorySink::new());
    let relay = Relay::spawn(store.clone(), second.clone(), config("mid")).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();
    let second_received = second.received();
    assert!(second_received.iter().all(|m| m.position >= saved_next));
    let mut all = first.received();
    all.extend(second_received);
    assert_eq!(first_occurrences(&all), ids);
}

#[test]
fn bad_config_starts_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
        let err = Relay::spawn(
            store,
            Arc::new(MemorySink::new()),
            RelayConfig::named("Bad Name"),
        )
        .err()
        .unwrap();
        assert!(matches!(err, ConfigError::BadName(_)));
    });
}

#[tokio::test]
async fn an_idle_relay_does_not_feed_on_its_own_checkpoints() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
    append_events(&store, 5, "a").await;
    let sink = Arc::new(MemorySink::new());
    let relay = Relay::spawn(store.clone(), sink.clone(), config("idle")).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let head = store.head_position();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.head_position(),
        head,
        "no checkpoint writes while idle"
    );
    assert_eq!(sink.received_count(), 5);
    relay.stop().await.unwrap();
}
