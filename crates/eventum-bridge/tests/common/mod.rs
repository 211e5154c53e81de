//! Shared helpers of the broker integration tests: broker URLs from the environment
//! (localhost defaults), a real `LogStore` in a tempdir, and event fixtures. A test that
//! needs a broker fails, never skips, when it is unreachable.
#![allow(dead_code)]

use std::sync::Arc;

use eventum_core::{EventId, EventStore, ExpectedVersion, NewEvent, StreamName};
use eventum_log::{LogConfig, LogStore};
use serde_json::json;

pub fn nats_url() -> String {
    std::env::var("EVENTUM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub fn redis_url() -> String {
    std::env::var("EVENTUM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `EVENTUM_TEST_RABBITMQ_URL`, else `EVENTUM_TEST_AMQP_URL` (the name `.ci/run` exports).
pub fn rabbitmq_url() -> String {
    std::env::var("EVENTUM_TEST_RABBITMQ_URL")
        .or_else(|_| std::env::var("EVENTUM_TEST_AMQP_URL"))
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Panics with how to start the broker: tests that need one must fail, not skip.
pub fn unreachable(what: &str, url: &str, error: impl std::fmt::Display, start: &str) -> ! {
    panic!(
        "{what} is unreachable at {url}: {error}\n\
         Start it (e.g. `{start}`) or point the tests at one with the environment variable; \
         `.ci/run` starts it in CI."
    )
}

/// A short unique name part per test run.
pub fn unique(tag: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{tag}{}", &id[id.len() - 10..])
}

pub fn open_store(dir: &tempfile::TempDir) -> Arc<dyn EventStore> {
    LogStore::open(dir.path(), LogConfig::default()).expect("open the log store")
}

/// Appends `n` events over three order streams and a user stream, alternating two
/// event types, one event per append; returns the ids in append order.
pub async fn append_events(store: &Arc<dyn EventStore>, n: usize) -> Vec<EventId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let stream = match i % 4 {
            3 => StreamName::new("user-7").unwrap(),
            k => StreamName::new(format!("order-{k}")).unwrap(),
        };
        let kind = if i % 2 == 0 {
            "OrderCreated"
        } else {
            "OrderPaid"
        };
        let event = NewEvent::new(kind, &json!({ "i": i }))
            .unwrap()
            .with_correlation_id(uuid::Uuid::now_v7());
        ids.push(event.id());
        store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    ids
}

pub fn head_next(store: &Arc<dyn EventStore>) -> u64 {
    store.head_position().map_or(0, |p| p + 1)
}
