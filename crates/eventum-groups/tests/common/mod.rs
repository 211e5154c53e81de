//! Helpers of the group tests: a real `LogStore` in a temporary directory with a
//! `GroupService` over it, appends, and a receive-until helper.
#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, RecordedEvent, StreamName,
};
use eventum_groups::{Delivery, GroupService, GroupSettings, GroupTarget, GroupsConfig};
use eventum_log::{LogConfig, LogStore};
use serde_json::json;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Arc<LogStore>,
    pub svc: Arc<GroupService>,
}

/// Checkpoints every 50 ms so that restart tests need not wait long.
pub fn fast_config() -> GroupsConfig {
    GroupsConfig {
        checkpoint_interval_ms: 50,
        ..GroupsConfig::default()
    }
}

pub async fn open_at(dir: &Path, config: GroupsConfig) -> (Arc<LogStore>, Arc<GroupService>) {
    let store = LogStore::open(dir, LogConfig::default()).expect("open store");
    let svc = GroupService::open(store.clone() as Arc<dyn EventStore>, config)
        .await
        .expect("open group service");
    (store, svc)
}

pub async fn env() -> Env {
    env_with(fast_config()).await
}

pub async fn env_with(config: GroupsConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (store, svc) = open_at(dir.path(), config).await;
    Env { dir, store, svc }
}

impl Env {
    /// Shuts the service and the store down cleanly and opens both again.
    pub async fn restart(&mut self, config: GroupsConfig) {
        self.svc.shutdown().await;
        self.store.shutdown();
        let (store, svc) = open_at(self.dir.path(), config).await;
        self.store = store;
        self.svc = svc;
    }
}

pub fn settings(target: GroupTarget, ordered: bool) -> GroupSettings {
    GroupSettings {
        ordered,
        ..GroupSettings::new(target)
    }
}

/// Appends one event `{"i": i}` to `stream`; returns its global position.
pub async fn append(store: &LogStore, stream: &str, i: u64) -> u64 {
    let e = NewEvent::new("T", &json!({"i": i})).unwrap();
    store
        .append(
            &StreamName::new(stream).unwrap(),
            ExpectedVersion::Any,
            vec![e],
        )
        .await
        .unwrap()
        .position
}

/// Appends `per_stream` events to each of `streams` streams `{prefix}-{k}`, round-robin so
/// that streams interleave in `$all`.
pub async fn fill(store: &LogStore, prefix: &str, streams: usize, per_stream: u64) {
    for i in 0..per_stream {
        for k in 0..streams {
            append(store, &format!("{prefix}-{k}"), i).await;
        }
    }
}

/// Receives until `n` deliveries arrived or `timeout` passed.
pub async fn receive_n(
    svc: &GroupService,
    group: &str,
    consumer: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && tokio::time::Instant::now() < deadline {
        let max = (n - out.len()).min(1000);
        out.extend(svc.receive(group, consumer, max, 100).await.unwrap());
    }
    out
}

/// Every event of a stream, read straight from the store (empty if it does not exist).
pub async fn read_stream(store: &LogStore, stream: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(
            &StreamName::system(stream).unwrap(),
            None,
            ReadDirection::Forward,
            10_000,
        )
        .await
        .unwrap_or_default()
}

pub fn data_i(e: &RecordedEvent) -> u64 {
    serde_json::from_slice::<serde_json::Value>(&e.data).unwrap()["i"]
        .as_u64()
        .unwrap()
}
