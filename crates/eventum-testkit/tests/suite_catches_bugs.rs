//! The suite must be able to fail: deliberately broken wrappers of the model store are run
//! through contract cases and the model checker, and each must be caught.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use eventum_core::{
    AppendError, AppendResult, EventStore, ExpectedVersion, Limits, NewEvent, ReadDirection,
    ReadError, RecordedEvent, StreamMetadata, StreamName, StreamState, Subscription,
    SubscriptionFrom, SubscriptionTarget,
};
use eventum_testkit::contract::{self, StoreFactory, TestStore};
use eventum_testkit::{MemoryStore, model};
use futures::StreamExt;
use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
enum Bug {
    /// Does not recognise retries: a repeated batch is written again under fresh ids.
    NoDedupe,
    /// Backward stream reads from a version start one event too early.
    BackwardOffByOne,
    /// Subscriptions silently drop the event at position 3.
    SubscriptionGap,
}

struct Broken {
    inner: MemoryStore,
    bug: Bug,
    seen: Mutex<HashSet<Uuid>>,
}

#[async_trait]
impl EventStore for Broken {
    fn limits(&self) -> &Limits {
        self.inner.limits()
    }
    async fn append(
        &self,
        s: &StreamName,
        e: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        if let Bug::NoDedupe = self.bug {
            let mut seen = self.seen.lock().unwrap();
            if events.first().is_some_and(|ev| seen.contains(&ev.id())) {
                events = events
                    .into_iter()
                    .map(|ev| ev.with_id(Uuid::now_v7()))
                    .collect();
            }
            seen.extend(events.iter().map(NewEvent::id));
        }
        self.inner.append(s, e, events).await
    }
    async fn read_stream(
        &self,
        s: &StreamName,
        from: Option<u64>,
        d: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let from = match (self.bug, d, from) {
            (Bug::BackwardOffByOne, ReadDirection::Backward, Some(v)) => Some(v.saturating_sub(1)),
            _ => from,
        };
        self.inner.read_stream(s, from, d, limit).await
    }
    async fn read_all(
        &self,
        from: Option<u64>,
        d: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.read_all(from, d, limit).await
    }
    async fn read_category(
        &self,
        c: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.read_category(c, from, limit).await
    }
    async fn delete_stream(
        &self,
        s: &StreamName,
        e: ExpectedVersion,
    ) -> Result<AppendResult, AppendError> {
        self.inner.delete_stream(s, e).await
    }
    async fn set_stream_metadata(
        &self,
        s: &StreamName,
        m: StreamMetadata,
    ) -> Result<AppendResult, AppendError> {
        self.inner.set_stream_metadata(s, m).await
    }
    async fn stream_state(&self, s: &StreamName) -> Result<StreamState, ReadError> {
        self.inner.stream_state(s).await
    }
    fn subscribe(&self, t: SubscriptionTarget, from: SubscriptionFrom) -> Subscription {
        let sub = self.inner.subscribe(t, from);
        match self.bug {
            Bug::SubscriptionGap => sub
                .filter(|r| std::future::ready(!matches!(r, Ok(e) if e.position == 3)))
                .boxed(),
            _ => sub,
        }
    }
    fn head_position(&self) -> Option<u64> {
        self.inner.head_position()
    }
}

struct BrokenFactory(Bug);

#[async_trait]
impl StoreFactory for BrokenFactory {
    async fn create(&self) -> TestStore {
        let store = Broken {
            inner: MemoryStore::default(),
            bug: self.0,
            seen: Mutex::default(),
        };
        TestStore::new(Arc::new(store), ())
    }
}

/// Runs the model checker against `bug` and asserts it fails.
fn model_catches(bug: Bug) {
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // Few shrink steps: only detection matters here, and a stalling bug costs a timeout
        // per step.
        let config = proptest::test_runner::Config {
            cases: 256,
            max_shrink_iters: 8,
            ..Default::default()
        };
        model::run_model_tests_with(&BrokenFactory(bug), config);
    }));
    assert!(caught.is_err(), "the model checker missed {bug:?}");
}

/// Runs one contract case against `bug` and asserts it fails.
async fn contract_catches<F, Fut>(bug: Bug, case: F)
where
    F: FnOnce(BrokenFactory) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(case(BrokenFactory(bug))).await;
    assert!(outcome.is_err(), "the contract case missed {bug:?}");
}

#[test]
fn model_catches_missing_dedupe() {
    model_catches(Bug::NoDedupe);
}

#[test]
fn model_catches_backward_off_by_one() {
    model_catches(Bug::BackwardOffByOne);
}

#[test]
fn model_catches_subscription_gap() {
    model_catches(Bug::SubscriptionGap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_catches_each_bug() {
    contract_catches(Bug::NoDedupe, |f| async move {
        contract::idempotent_retry_exact(&f).await
    })
    .await;
    contract_catches(Bug::NoDedupe, |f| async move {
        contract::idempotent_retry_any_and_exists(&f).await
    })
    .await;
    contract_catches(Bug::BackwardOffByOne, |f| async move {
        contract::read_stream_backward(&f).await
    })
    .await;
    contract_catches(Bug::SubscriptionGap, |f| async move {
        contract::subscribe_all_catch_up_then_live(&f).await
    })
    .await;
}
