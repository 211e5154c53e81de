//! Snapshots: taken every N events, used on load, and ignored (state rebuilt from events)
//! when they are from another schema version or undecodable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use eventum_core::{EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName};
use eventum_runtime::snapshot::{SNAPSHOT_TYPE, snapshot_stream};
use eventum_runtime::{BusConfig, CommandBus, CommandMeta, Repository, RepositoryConfig};

fn config(every: u64) -> RepositoryConfig {
    RepositoryConfig {
        snapshot_every_events: Some(every),
        ..RepositoryConfig::default()
    }
}

/// Waits for the snapshot written in the background to reach `version`.
async fn snapshot_version(
    store: &Arc<dyn EventStore>,
    stream: &StreamName,
    version: u64,
) -> serde_json::Value {
    for _ in 0..200 {
        if let Ok(events) = store
            .read_stream(&snapshot_stream(stream), None, ReadDirection::Backward, 1)
            .await
        {
            let data: serde_json::Value = serde_json::from_slice(&events[0].data).unwrap();
            if data["version"] == version {
                return data;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no snapshot at version {version}");
}

#[tokio::test]
async fn snapshots_are_taken_every_n_events_and_used_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let bus = CommandBus::builder(BusConfig::default())
        .aggregate(Repository::<Account>::new(store.clone(), config(10)))
        .unwrap()
        .build();
    bus.dispatch(open("a"), CommandMeta::new()).await.unwrap();
    for _ in 0..24 {
        bus.dispatch(deposit("a", 2), CommandMeta::new())
            .await
            .unwrap();
    }
    let stream = StreamName::new("account-a").unwrap();
    let snap = snapshot_version(&store, &stream, 19).await;
    assert_eq!(snap["schema_version"], 1);
    assert_eq!(snap["state"]["balance"], 38);
    // Retention keeps only the newest snapshot readable.
    let all = store
        .read_stream(&snapshot_stream(&stream), None, ReadDirection::Forward, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);

    // Proof that load starts from the snapshot: a snapshot claiming a different balance
    // at version 24 (the current one) is believed, since no event follows it.
    let forged = serde_json::json!({
        "schema_version": 1, "version": 24,
        "state": {"open": true, "balance": 1000}, "recent_commands": {"entries": []}
    });
    store
        .append(
            &snapshot_stream(&stream),
            ExpectedVersion::Any,
            vec![NewEvent::new(SNAPSHOT_TYPE, &forged).unwrap()],
        )
        .await
        .unwrap();
    let repo = Repository::<Account>::new(store.clone(), config(10));
    let loaded = repo.load("a").await.unwrap();
    assert_eq!((loaded.state.balance, loaded.version), (1000, Some(24)));
}

#[tokio::test]
async fn unusable_snapshots_are_ignored_and_state_is_rebuilt_from_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let bus = CommandBus::builder(BusConfig::default())
        .aggregate(Repository::<Account>::new(store.clone(), config(1_000)))
        .unwrap()
        .build();
    bus.dispatch(open("b"), CommandMeta::new()).await.unwrap();
    for _ in 0..5 {
        bus.dispatch(deposit("b", 3), CommandMeta::new())
            .await
            .unwrap();
    }
    let stream = StreamName::new("account-b").unwrap();
    let repo = Repository::<Account>::new(store.clone(), config(1_000));
    for bad in [
        serde_json::json!({"schema_version": 99, "version": 5, "state": {"open": true, "balance": 7}, "recent_commands": {"entries": []}}),
        serde_json::json!({"schema_version": 1, "version": 5, "state": {"balance": "lots"}}),
        serde_json::json!("garbage"),
    ] {
        store
            .append(
                &snapshot_stream(&stream),
                ExpectedVersion::Any,
                vec![NewEvent::new(SNAPSHOT_TYPE, &bad).unwrap()],
            )
            .await
            .unwrap();
        let loaded = repo.load("b").await.unwrap();
        assert_eq!(
            (loaded.state.balance, loaded.version),
            (15, Some(5)),
            "snapshot {bad}"
        );
    }
}

#[tokio::test]
async fn idempotency_survives_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let id = uuid::Uuid::now_v7();
    {
        let bus = CommandBus::builder(BusConfig::default())
            .aggregate(Repository::<Account>::new(store.clone(), config(2)))
            .unwrap()
            .build();
        bus.dispatch(open("i"), CommandMeta::new()).await.unwrap();
        bus.dispatch(deposit("i", 4), CommandMeta::with_id(id))
            .await
            .unwrap();
        for _ in 0..3 {
            bus.dispatch(deposit("i", 1), CommandMeta::new())
                .await
                .unwrap();
        }
    }
    let stream = StreamName::new("account-i").unwrap();
    snapshot_version(&store, &stream, 3).await;
    // A fresh bus loads from the snapshot at version 3 (the command ran at version 1,
    // before it) and still recognises the command id.
    let bus = CommandBus::builder(BusConfig::default())
        .aggregate(Repository::<Account>::new(store.clone(), config(2)))
        .unwrap()
        .build();
    let again = bus
        .dispatch(deposit("i", 4), CommandMeta::with_id(id))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.version, Some(1));
}
