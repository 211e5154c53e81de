//! The contract suite every [`EventStore`] backend must pass: the factory abstraction a
//! backend implements, the `store_contract_tests!` macro that turns each case into a named
//! test, and the helpers the cases share. The cases themselves live in the submodules,
//! one per area of the contract.

mod append;
mod concurrency;
mod lifecycle;
mod limits;
mod read;
mod subscribe;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use eventum_core::{
    AppendError, AppendResult, EventStore, ExpectedVersion, NewEvent, ReadDirection, RecordedEvent,
    StreamName, Subscription,
};
use futures::StreamExt;

use crate::MemoryStore;

pub use append::*;
pub use concurrency::*;
pub use lifecycle::*;
pub use limits::*;
pub use read::*;
pub use subscribe::*;

/// A store under test plus whatever must outlive it (a temp dir, a schema, a server).
pub struct TestStore {
    pub store: Arc<dyn EventStore>,
    /// Dropped after `store`; field order matters, so the resources it holds outlive the
    /// store's last use in the test.
    pub guard: Box<dyn Any + Send>,
}

impl TestStore {
    pub fn new(store: Arc<dyn EventStore>, guard: impl Any + Send) -> Self {
        Self {
            store,
            guard: Box::new(guard),
        }
    }
}

/// Builds fresh, empty stores for the contract suite and the model checker.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// A new empty store, isolated from every other store this factory made.
    async fn create(&self) -> TestStore;

    /// Whether [`StoreFactory::reopen`] is supported (durable backends only).
    fn supports_reopen(&self) -> bool {
        false
    }

    /// Closes `store` cleanly and opens the same data again. Called only when
    /// [`StoreFactory::supports_reopen`] is true.
    async fn reopen(&self, store: TestStore) -> TestStore {
        drop(store);
        panic!("this factory does not support reopen")
    }
}

/// Factory of [`MemoryStore`]s with default limits. Not durable, so no reopen.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFactory;

#[async_trait]
impl StoreFactory for MemoryFactory {
    async fn create(&self) -> TestStore {
        TestStore::new(Arc::new(MemoryStore::default()), ())
    }
}

/// Longest a single contract case may run; a hung backend fails instead of blocking CI.
pub const CASE_DEADLINE: Duration = Duration::from_secs(120);
/// Longest the suite waits for one expected event or one operation.
pub const WAIT: Duration = Duration::from_secs(15);

/// Runs one case under [`CASE_DEADLINE`]. Used by the macros.
pub async fn run_case(name: &str, case: impl Future<Output = ()>) {
    if tokio::time::timeout(CASE_DEADLINE, case).await.is_err() {
        panic!("contract case {name} did not finish within {CASE_DEADLINE:?}");
    }
}

/// Expands to one `#[tokio::test]` per contract case, each named after its case, all run
/// against stores built by `$factory` (an expression whose type implements
/// [`StoreFactory`]). The calling crate needs `tokio` (with `macros` and `rt-multi-thread`)
/// as a dev-dependency.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory;
            append_round_trip,
            positions_are_gap_free_across_streams,
            expected_version_any,
            expected_version_no_stream,
            expected_version_stream_exists,
            expected_version_exact,
            multi_event_append_is_atomic,
            idempotent_retry_exact,
            idempotent_retry_no_stream,
            idempotent_retry_any_and_exists,
            different_ids_are_not_a_retry,
            rejects_empty_batch,
            rejects_too_many_events,
            rejects_too_large_event,
            rejects_too_large_batch,
            rejects_duplicate_ids,
            accepts_input_at_the_limits,
            rejects_bad_read_limits,
            read_stream_forward,
            read_stream_backward,
            read_long_stream_across_pages,
            read_missing_stream,
            read_all_forward_and_backward,
            read_category_in_global_order,
            soft_delete,
            delete_conflicts_and_missing_streams,
            metadata_max_count,
            metadata_max_age,
            subscribe_all_catch_up_then_live,
            subscribe_from_end,
            subscribe_from_middle,
            subscribe_stream,
            subscribe_category,
            subscribe_under_concurrent_appenders,
            subscribers_attaching_mid_stream_miss_nothing,
            slow_subscriber_neither_blocks_nor_misses,
            concurrent_exact_appends_one_winner_per_version,
            durability_across_reopen,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                $crate::contract::run_case(
                    stringify!($case),
                    $crate::contract::$case(&factory),
                )
                .await;
            }
        )*
    };
}

// ---- helpers shared by the cases ----

/// A user stream name; panics on a bad literal (a bug in the suite, not the store).
pub fn stream(name: &str) -> StreamName {
    StreamName::new(name).expect("valid stream name in the suite")
}

/// A small event whose data names it, so mix-ups show in assertion output.
pub fn event(event_type: &str, n: u64) -> NewEvent {
    NewEvent::from_json(event_type, format!(r#"{{"n":{n}}}"#)).expect("valid JSON")
}

/// `count` small events of type `T`.
pub fn events(count: u64) -> Vec<NewEvent> {
    (0..count).map(|n| event("T", n)).collect()
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Awaits an operation under [`WAIT`], so that a stuck store fails the case.
pub async fn bounded<T>(what: &str, op: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, op).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not complete within {WAIT:?}"),
    }
}

/// Appends and expects success.
pub async fn append_ok(
    store: &dyn EventStore,
    name: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendResult {
    let what = format!("append to {name} expecting {expected}");
    match bounded(&what, store.append(&stream(name), expected, events)).await {
        Ok(r) => r,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

/// Appends and expects a failure.
pub async fn append_err(
    store: &dyn EventStore,
    name: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendError {
    let what = format!("append to {name} expecting {expected}");
    match bounded(&what, store.append(&stream(name), expected, events)).await {
        Ok(r) => panic!("{what}: expected an error, got {r:?}"),
        Err(e) => e,
    }
}

/// The whole of `$all`, forward, paging with the store's read limit.
pub async fn read_all_events(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let page = store.limits().read_events_max;
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = out.last().map(|e| e.position + 1);
        let batch = bounded(
            "read $all",
            store.read_all(from.or(Some(0)), ReadDirection::Forward, page),
        )
        .await
        .expect("read $all");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// A whole stream, forward; panics if the read fails.
pub async fn read_stream_events(store: &dyn EventStore, name: &str) -> Vec<RecordedEvent> {
    let limit = store.limits().read_events_max;
    bounded(
        "read stream",
        store.read_stream(&stream(name), None, ReadDirection::Forward, limit),
    )
    .await
    .unwrap_or_else(|e| panic!("read {name}: {e:?}"))
}

/// The next `n` events of a subscription, each awaited under [`WAIT`].
pub async fn take_events(sub: &mut Subscription, n: usize) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(Ok(e))) => out.push(e),
            Ok(Some(Err(e))) => panic!("subscription failed after {} events: {e:?}", out.len()),
            Ok(None) => panic!("subscription ended after {} of {n} events", out.len()),
            Err(_) => panic!(
                "subscription delivered only {} of {n} events within {WAIT:?} of the last",
                out.len()
            ),
        }
    }
    out
}

/// Asserts a subscription has nothing more to deliver for a short while: no duplicate and
/// no event that should not match.
pub async fn assert_quiet(sub: &mut Subscription) {
    if let Ok(next) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
        panic!("subscription delivered an unexpected extra item: {next:?}");
    }
}

/// Positions of events, for compact assertions.
pub fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

/// Versions of events, for compact assertions.
pub fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}
