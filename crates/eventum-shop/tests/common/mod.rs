//! Shared set-up of the shop's integration tests: a real `LogStore` in a tempdir, the shop
//! on it in a chosen flow style, and waiting helpers.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventum_core::EventStore;
use eventum_log::{LogConfig, LogStore};
use eventum_shop::auth::Caller;
use eventum_shop::{
    FlowStyle, HashingConfig, OrderItemRequest, OrderRequest, RunningShop, Shop, ShopConfig,
};

pub const SECRET: [u8; 32] = [42; 32];
pub const ADMIN_PASSWORD: &str = "admin-password";

pub fn config(dir: &Path, flow: FlowStyle) -> ShopConfig {
    let mut c = ShopConfig::new(dir.join("read-models"), SECRET.to_vec(), ADMIN_PASSWORD);
    c.hashing = HashingConfig::fast_insecure();
    c.flow = flow;
    c.demo_catalog = false;
    c.provider.amount_max = 5_000_000;
    c
}

pub async fn start(dir: &Path, config: ShopConfig) -> (Arc<LogStore>, RunningShop) {
    let log = LogStore::open(dir.join("log"), LogConfig::default()).expect("store opens");
    let store: Arc<dyn EventStore> = log.clone();
    let running = RunningShop::start(store, config)
        .await
        .expect("shop starts");
    (log, running)
}

pub fn user(name: &str) -> Caller {
    Caller {
        username: name.into(),
        role: "USER".into(),
    }
}

pub fn admin() -> Caller {
    Caller {
        username: "admin".into(),
        role: "ADMIN".into(),
    }
}

pub fn order(product_id: u64, quantity: i64, method: &str) -> OrderRequest {
    OrderRequest {
        order_items: vec![OrderItemRequest {
            product_id,
            quantity,
        }],
        shipping_address: Some("서울시 강남구".into()),
        payment_method: Some(method.into()),
    }
}

/// Waits until the order is CONFIRMED or CANCELLED; returns the order document.
pub async fn wait_terminal(shop: &Shop, order_id: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let doc = shop.order(&admin(), order_id).await.expect("order reads");
        if doc["status"] != "PENDING" {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "order {order_id} still PENDING after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until every terminal order has its notification and no reservation is open
/// (the commits and releases after a terminal state are done).
pub async fn wait_settled(shop: &Shop, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let missing = eventum_shop::audit::missing_notifications(shop.store().as_ref())
            .await
            .expect("log reads");
        let mut open = 0;
        for id in shop.catalog().keys() {
            open += shop.product(*id).await.expect("product reads")["reserved"]
                .as_i64()
                .unwrap();
        }
        if missing == 0 && open == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after {timeout:?}: {missing} notifications missing, {open} units reserved"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `stream` holds exactly `expected` (by type, in order); panics with what it
/// holds after `timeout`. For records written after the state a test waited for (a
/// release is recorded on the reservation after the product let the units go).
pub async fn wait_types(
    store: &dyn EventStore,
    stream: &str,
    expected: &[&str],
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let types = types_of(store, stream).await;
        if types == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{stream}: {types:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The event types of a stream, in order.
pub async fn types_of(store: &dyn EventStore, stream: &str) -> Vec<String> {
    let name = eventum_core::StreamName::new(stream).unwrap();
    match store
        .read_stream(&name, None, eventum_core::ReadDirection::Forward, 1000)
        .await
    {
        Ok(events) => events.into_iter().map(|e| e.event_type).collect(),
        Err(eventum_core::ReadError::StreamNotFound { .. }) => Vec::new(),
        Err(e) => panic!("read {stream}: {e}"),
    }
}
