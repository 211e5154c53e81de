//! Inbound from a real Kafka-protocol broker (tansu in CI) through a consumer group and
//! the read-model inbox: two relays without a shared checkpoint put every event in the
//! topics twice; a member stopped part-way and a new member of the same group resume
//! from the committed offsets; the handler runs once per event. The same records also
//! feed the command bus, where a re-read is an idempotent repeat.

mod common;

use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{
    CommandTarget, HandlerError, InboundMessage, KafkaInbound, KafkaInboundConfig, KafkaSink,
    KafkaSinkConfig, Relay, RelayConfig, header,
};
use eventum_core::{EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName};
use eventum_projections::StoreTx;
use serde_json::json;

use common::accounts::bus;
use common::*;

const WAIT: Duration = Duration::from_secs(60);

async fn sink(prefix: &str) -> Arc<KafkaSink> {
    let url = kafka_url();
    let config = KafkaSinkConfig {
        topic_prefix: prefix.to_owned(),
        linger_ms: 0,
        ..KafkaSinkConfig::default()
    };
    match KafkaSink::connect(&url, config).await {
        Ok(s) => Arc::new(s),
        Err(e) => unreachable("Kafka", &url, e, KAFKA_START),
    }
}

/// Relays everything in `store` through two relays without a shared checkpoint, with
/// `batch_events_max` events per batch.
async fn relay_twice(store: &Arc<dyn EventStore>, sink: Arc<KafkaSink>, batch_events_max: usize) {
    for name in ["kafka-in-a", "kafka-in-b"] {
        let config = RelayConfig {
            batch_events_max,
            batches_in_flight_max: 1,
            ..RelayConfig::named(name)
        };
        let relay = Relay::spawn(store.clone(), sink.clone(), config).unwrap();
        assert!(relay.wait_acknowledged(head_next(store), WAIT).await);
        relay.stop().await.unwrap();
    }
}

/// One record per produce request, so that every offset starts a record batch: tansu
/// 0.6 (dynostore, memory) serves a fetch only from batch starts, so a group resuming at
/// an offset inside a multi-record batch would skip the rest of that batch (see
/// `resume_inside_a_record_batch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_are_dropped_and_a_new_member_resumes_from_committed_offsets() {
    resume_case(1).await;
}

/// The same with the relay's batches (many records per produce request), so the group
/// commits offsets inside record batches. Real Kafka serves a fetch from any offset;
/// tansu 0.6 does not (its dynostore fetch starts at the first batch whose base offset
/// is at or above the requested one), so this fails against tansu: run it against Kafka
/// with `EVENTUM_TEST_KAFKA_URL=... cargo test --test kafka_inbound -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tansu 0.6 cannot fetch from an offset inside a record batch"]
async fn resume_inside_a_record_batch() {
    resume_case(512).await;
}

async fn resume_case(batch_events_max: usize) {
    let prefix = unique("eventum-in-");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    append_events(&store, 80).await;
    relay_twice(&store, sink(&prefix).await, batch_events_max).await;

    let models_dir = tempfile::tempdir().unwrap();
    let models = seen_models(&models_dir);
    let handler = |tx: &mut StoreTx<'_>, m: &InboundMessage| -> Result<(), HandlerError> {
        assert_eq!(m.header(header::CE_ID), Some(m.id.to_string().as_str()));
        assert!(
            m.key
                .as_deref()
                .is_some_and(|k| k.starts_with("order-") || k == "user-7")
        );
        count_seen(tx, m)
    };
    let topics = [
        format!("{prefix}.order-events"),
        format!("{prefix}.user-events"),
    ];
    let config = KafkaInboundConfig {
        batch_messages_max: 16,
        session_timeout_ms: 6_000,
        ..KafkaInboundConfig::new("kafka-inbound", &[&topics[0], &topics[1]])
    };
    let url = kafka_url();
    let first = KafkaInbound::spawn(&url, models.clone(), config.clone(), handler)
        .await
        .unwrap();
    let mut progress = first.progress();
    let part_way = tokio::time::timeout(WAIT, progress.wait_for(|p| p.seen_total() >= 40))
        .await
        .is_ok();
    assert!(part_way, "the first member consumed nothing");
    first.stop().await.unwrap();
    // Read after the stop: the member may have finished more batches meanwhile.
    let first_progress = progress.borrow().clone();

    let second = KafkaInbound::spawn(&url, models.clone(), config, handler)
        .await
        .unwrap();
    let mut progress = second.progress();
    let done = tokio::time::timeout(
        WAIT,
        progress.wait_for(|p| first_progress.seen_total() + p.seen_total() >= 160),
    )
    .await
    .is_ok();
    assert!(done, "160 records not consumed: {:?}", *progress.borrow());
    // Nothing more comes: the second member started at the first one's offsets.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = progress.borrow().clone();
    second.stop().await.unwrap();
    assert_eq!(first_progress.seen_total() + p.seen_total(), 160, "{p:?}");
    assert_eq!(first_progress.handled_total + p.handled_total, 80);
    assert_eq!(first_progress.duplicates_total + p.duplicates_total, 80);
    assert_eq!(seen_total(&models), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_become_commands_once() {
    // Deposit commands written as events to the category `deposit`, relayed twice: the
    // topic holds each record twice.
    let prefix = unique("eventum-cmd-");
    let dir = tempfile::tempdir().unwrap();
    let source = open_store(&dir);
    for i in 0..20 {
        let event = NewEvent::new(
            "Deposit",
            &json!({"account": format!("k{}", i % 2), "amount": 5}),
        )
        .unwrap();
        let stream = StreamName::new(format!("deposit-{i}")).unwrap();
        source
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    relay_twice(&source, sink(&prefix).await, 512).await;

    let accounts_dir = tempfile::tempdir().unwrap();
    let accounts = open_store(&accounts_dir);
    let models_dir = tempfile::tempdir().unwrap();
    let models = seen_models(&models_dir);
    let target = CommandTarget::new(bus(&accounts), models, "kafka-cmd").unwrap();
    let topic = format!("{prefix}.deposit-events");
    let inbound = KafkaInbound::spawn_into(
        &kafka_url(),
        KafkaInboundConfig::new("kafka-cmd", &[&topic]),
        Arc::new(target),
    )
    .await
    .unwrap();
    let mut progress = inbound.progress();
    let done = tokio::time::timeout(WAIT, progress.wait_for(|p| p.seen_total() >= 40))
        .await
        .is_ok();
    assert!(done, "40 records not consumed: {:?}", *progress.borrow());
    let p = progress.borrow().clone();
    inbound.stop().await.unwrap();
    assert_eq!(
        (p.handled_total, p.duplicates_total, p.rejected_total),
        (20, 20, 0)
    );
    for account in ["k0", "k1"] {
        let stream = StreamName::new(format!("account-{account}")).unwrap();
        let events = accounts
            .read_stream(&stream, None, ReadDirection::Forward, 100)
            .await
            .unwrap();
        let deposits = events
            .iter()
            .filter(|e| e.event_type == "Deposited")
            .count();
        assert_eq!(deposits, 10, "{account}: one deposit per record");
    }
}
