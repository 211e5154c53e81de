//! The instance registry against the real `LogStore`: a lone new instance is listed at
//! once, without waiting for a checkpoint; the instances of a burst share registry appends,
//! none larger than the configured batch, and every one of them is listed.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use common::*;
use eventum_core::{
    AppendError, AppendResult, EventStore, ExpectedVersion, Limits, NewEvent, ReadDirection,
    ReadError, RecordedEvent, StreamMetadata, StreamName, StreamState, Subscription,
    SubscriptionFrom, SubscriptionTarget,
};
use eventum_sagas::{SagaConfig, SagaStatus, Status};
use serde_json::json;

const REGISTRY: &str = "$saga-instances-order";

/// The store, recording the size of every append to the registry.
struct RegistryAppends {
    inner: Arc<dyn EventStore>,
    sizes: Mutex<Vec<usize>>,
}

impl RegistryAppends {
    /// A store in `dir`, counted, and the same as a trait object.
    fn open(dir: &std::path::Path) -> (Arc<Self>, Arc<dyn EventStore>) {
        let store = Arc::new(Self {
            inner: open(dir),
            sizes: Mutex::new(Vec::new()),
        });
        let dyn_store: Arc<dyn EventStore> = store.clone();
        (store, dyn_store)
    }

    fn sizes(&self) -> Vec<usize> {
        self.sizes.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventStore for RegistryAppends {
    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        if stream.as_str() == REGISTRY {
            self.sizes.lock().unwrap().push(events.len());
        }
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.read_stream(stream, from, direction, limit).await
    }

    async fn read_all(
        &self,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.read_all(from, direction, limit).await
    }

    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.read_category(category, from, limit).await
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
    ) -> Result<AppendResult, AppendError> {
        self.inner.delete_stream(stream, expected).await
    }

    async fn set_stream_metadata(
        &self,
        stream: &StreamName,
        metadata: StreamMetadata,
    ) -> Result<AppendResult, AppendError> {
        self.inner.set_stream_metadata(stream, metadata).await
    }

    async fn stream_state(&self, stream: &StreamName) -> Result<StreamState, ReadError> {
        self.inner.stream_state(stream).await
    }

    fn subscribe(&self, target: SubscriptionTarget, from: SubscriptionFrom) -> Subscription {
        self.inner.subscribe(target, from)
    }

    fn head_position(&self) -> Option<u64> {
        self.inner.head_position()
    }
}

/// Places orders `{prefix}-0` … `{prefix}-{n - 1}` concurrently.
async fn place_at_once(store: &Arc<RegistryAppends>, prefix: &str, n: usize) {
    let mut placing = tokio::task::JoinSet::new();
    for i in 0..n {
        let (store, id) = (store.clone(), format!("{prefix}-{i}"));
        placing.spawn(async move {
            place_order(store.as_ref(), &id, json!({})).await;
        });
    }
    placing.join_all().await;
}

/// Waits until the registry lists every key of `expected`.
async fn wait_listed(status: &SagaStatus, expected: &HashSet<String>) {
    let started = Instant::now();
    loop {
        let keys = listed(status).await;
        if expected.is_subset(&keys) {
            return;
        }
        let missing: Vec<_> = expected.difference(&keys).collect();
        assert!(
            started.elapsed() < WAIT,
            "not listed after {WAIT:?}: {missing:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_prompt_alone_and_batched_in_a_burst() {
    const BATCH_MAX: usize = 16;
    const BURST: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let (store, dyn_store) = RegistryAppends::open(dir.path());
    let status = SagaStatus::new(dyn_store.clone(), "order");
    // No checkpoint in the test's time: registering must not wait for one.
    let config = SagaConfig {
        registry_batch_events_max: BATCH_MAX,
        checkpoint_every_events: 1_000_000,
        checkpoint_interval_ms: 3_600_000,
        ..SagaConfig::default()
    };
    let runner =
        start_order_saga(dyn_store.clone(), Services::new(dyn_store.clone()), config).await;

    // Given a lone order, its instance is listed once its first step is done, in one
    // append of its own.
    place_order(store.as_ref(), "solo", json!({})).await;
    wait_listed(&status, &HashSet::from(["solo".to_owned()])).await;
    assert_eq!(store.sizes(), [1]);

    // When a burst of orders arrives at once,
    place_at_once(&store, "burst", BURST).await;
    let mut expected: HashSet<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    expected.insert("solo".into());
    for key in &expected {
        wait_for_status(&status, key, Status::Completed).await;
    }

    // then every instance is listed, the registry appends carry several records each,
    // and none more than the configured batch.
    wait_listed(&status, &expected).await;
    let sizes = store.sizes();
    let burst_sizes = &sizes[1..];
    assert_eq!(
        burst_sizes.iter().sum::<usize>(),
        BURST,
        "one record per new instance: {sizes:?}"
    );
    assert!(
        burst_sizes.len() <= BURST / 2,
        "{} registry appends for {BURST} instances: {sizes:?}",
        burst_sizes.len()
    );
    assert!(
        burst_sizes.iter().all(|&n| n <= BATCH_MAX),
        "an append over the batch bound of {BATCH_MAX}: {sizes:?}"
    );
    runner.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_evicted_from_the_cache_are_reloaded_without_redoing_their_steps() {
    const ORDERS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let (store, dyn_store) = RegistryAppends::open(dir.path());
    let status = SagaStatus::new(dyn_store.clone(), "order");
    let services = Services::new(dyn_store.clone());
    // Given a runner that keeps one instance in memory, so that interleaved orders evict
    // each other between their steps,
    let config = SagaConfig {
        cache_instances_max: 1,
        ..SagaConfig::default()
    };
    let runner = start_order_saga(dyn_store.clone(), services.clone(), config).await;

    // when many orders run at once,
    place_at_once(&store, "evicted", ORDERS).await;
    for i in 0..ORDERS {
        wait_for_status(&status, &format!("evicted-{i}"), Status::Completed).await;
    }

    // then each instance was registered once and each command sent once (payment, stock,
    // shipping): a reload after an eviction within the run redid nothing.
    let registered: usize = store.sizes().iter().sum();
    assert_eq!(
        registered, ORDERS,
        "registry records for {ORDERS} instances"
    );
    assert_eq!(
        services.sends.load(std::sync::atomic::Ordering::SeqCst),
        3 * ORDERS as u64,
        "sends for {ORDERS} orders of three steps"
    );
    assert_eq!(services.executed_types().len(), 3 * ORDERS);
    runner.stop().await.unwrap();
}
