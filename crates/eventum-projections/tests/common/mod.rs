//! Helpers shared by the projection test binaries: the test projections and the pure
//! in-memory folds they are compared with, opening real stores, appending recognisable
//! events, reading the whole log and a whole read model back.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, RecordedEvent, StreamName,
    SubscriptionTarget,
};
use eventum_log::{LogConfig, LogStore, OpenError};
use eventum_projections::{
    Lookup, Projection, ProjectionError, ProjectionTx, ReadModelStore, StoreConfig,
};
use serde_json::{Value, json};

/// Upper bound on any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

/// Opens a `LogStore`, waiting briefly for a lock a killed process may still hold.
pub fn open_log(dir: &Path) -> Arc<LogStore> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match LogStore::open(dir, LogConfig::default()) {
            Ok(s) => return s,
            Err(OpenError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("open log {}: {e}", dir.display()),
        }
    }
}

pub fn open_models(dir: &Path) -> ReadModelStore {
    open_models_with(dir, StoreConfig::default())
}

pub fn open_models_with(dir: &Path, config: StoreConfig) -> ReadModelStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ReadModelStore::open(dir, config.clone()) {
            Ok(s) => return s,
            Err(eventum_projections::OpenError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("open read models {}: {e}", dir.display()),
        }
    }
}

pub fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

pub fn event(event_type: &str, data: Value) -> NewEvent {
    NewEvent::new(event_type, &data).unwrap()
}

pub async fn append(store: &dyn EventStore, name: &str, events: Vec<NewEvent>) -> u64 {
    store
        .append(&stream(name), ExpectedVersion::Any, events)
        .await
        .unwrap()
        .position
}

/// The whole `$all` log.
pub async fn read_log(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = out.last().map_or(0, |e| e.position + 1);
        let page = store
            .read_all(Some(from), ReadDirection::Forward, 1000)
            .await
            .unwrap();
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// Every document of `model`'s active generation.
pub fn read_model(store: &ReadModelStore, model: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut from: Option<String> = None;
    loop {
        let page = store.list(model, from.as_deref(), 1000).unwrap();
        let done = page.len() < 1000;
        for d in page {
            // `from` is inclusive: skip the document the previous page ended with.
            if Some(&d.key) != from.as_ref() {
                out.insert(d.key, d.doc);
            }
        }
        if done {
            return out;
        }
        from = out.keys().next_back().cloned();
    }
}

// ---------------------------------------------------------------------------------------
// Orders: a category projection with a lookup, documents created, changed and deleted.

/// `order-*` streams: `OrderPlaced {amount}`, `OrderShipped`, `OrderCancelled` (deletes
/// the document). `version` 2 doubles the amounts, so its documents differ from v1's.
pub struct Orders {
    pub version: u64,
}

impl Projection for Orders {
    fn name(&self) -> &str {
        "orders"
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category("order".into())
    }
    fn lookups(&self) -> Vec<Lookup> {
        vec![Lookup::field("by_status", "/status")]
    }
    fn apply(&self, tx: &mut ProjectionTx<'_>, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let data: Value = serde_json::from_slice(&e.data)
            .map_err(|err| ProjectionError::rejected(err.to_string()))?;
        if data.get("poison").is_some() {
            return Err(ProjectionError::rejected("poison event"));
        }
        let doc = tx.document_mut(&e.stream)?;
        apply_order(doc, e, &data, self.version);
        Ok(())
    }
}

fn apply_order(doc: &mut Option<Value>, e: &RecordedEvent, data: &Value, version: u64) {
    match e.event_type.as_str() {
        "OrderPlaced" => {
            let amount = data["amount"].as_u64().unwrap_or(0) * version;
            *doc = Some(json!({"status": "open", "amount": amount, "events": 1}));
        }
        "OrderShipped" => {
            if let Some(d) = doc {
                d["status"] = json!("shipped");
                d["events"] = json!(d["events"].as_u64().unwrap() + 1);
            }
        }
        "OrderCancelled" => *doc = None,
        _ => {}
    }
}

/// The pure fold the `orders` read model must equal.
pub fn fold_orders(log: &[RecordedEvent], version: u64) -> BTreeMap<String, Value> {
    let mut docs: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for e in log.iter().filter(|e| e.category() == "order") {
        let data: Value = serde_json::from_slice(&e.data).unwrap();
        apply_order(docs.entry(e.stream.clone()).or_default(), e, &data, version);
    }
    docs.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Counter: follows `$all`; any double application shows in `count` and `sum`.

pub struct Counter;

impl Projection for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn version(&self) -> u64 {
        1
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::All
    }
    fn apply(&self, tx: &mut ProjectionTx<'_>, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let doc = tx.document_mut(&e.stream)?;
        bump(doc, e);
        Ok(())
    }
}

fn bump(doc: &mut Option<Value>, e: &RecordedEvent) {
    let d = doc.get_or_insert_with(|| json!({"count": 0, "sum": 0, "last": 0}));
    d["count"] = json!(d["count"].as_u64().unwrap() + 1);
    d["sum"] = json!(d["sum"].as_u64().unwrap() + e.position);
    d["last"] = json!(e.position);
}

pub fn fold_counter(log: &[RecordedEvent]) -> BTreeMap<String, Value> {
    let mut docs: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for e in log {
        bump(docs.entry(e.stream.clone()).or_default(), e);
    }
    docs.into_iter().map(|(k, v)| (k, v.unwrap())).collect()
}

/// Appends a mix of order events and other streams; returns the last position.
pub async fn append_orders(store: &dyn EventStore, from: u64, n: u64) -> u64 {
    let mut last = 0;
    for i in from..from + n {
        let order = format!("order-{}", i % 17);
        last = match i % 5 {
            0 | 1 => {
                append(
                    store,
                    &order,
                    vec![event("OrderPlaced", json!({"amount": i}))],
                )
                .await
            }
            2 => append(store, &order, vec![event("OrderShipped", json!({}))]).await,
            3 if i % 3 == 0 => {
                append(store, &order, vec![event("OrderCancelled", json!({}))]).await
            }
            _ => {
                append(
                    store,
                    &format!("noise-{}", i % 3),
                    vec![
                        event("Noise", json!({"i": i})),
                        event("Noise", json!({"i": i})),
                    ],
                )
                .await
            }
        };
    }
    last
}
