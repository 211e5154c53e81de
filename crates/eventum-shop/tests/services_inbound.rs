//! A shop service's inbound side against real NATS JetStream: the notifications service
//! (on an embedded log) takes order events from the broker and notifies once per order,
//! however often the event arrives re-published under new message ids (past JetStream's
//! duplicate window), and a restarted service does nothing again. Needs NATS with JetStream (EVENTUM_TEST_NATS_URL): fails, never skips.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use eventum_core::EventStore;
use eventum_log::{LogConfig, LogStore};
use eventum_shop::services::{
    Backend, BackendConfig, BrokerConfig, ConsumerConfig, RunningService, ServiceConfig,
    ServiceKind,
};
use serde_json::json;
use uuid::Uuid;

fn nats_url() -> String {
    std::env::var("EVENTUM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

async fn jetstream() -> async_nats::jetstream::Context {
    match async_nats::connect(nats_url()).await {
        Ok(c) => async_nats::jetstream::new(c),
        Err(e) => panic!(
            "NATS is unreachable at {}: {e}\nStart it (`nats-server -js`) or set \
             EVENTUM_TEST_NATS_URL; `.ci/run` starts it in CI.",
            nats_url()
        ),
    }
}

/// Publishes `OrderConfirmed` of `order_id` as the orders service's relay would, with
/// event id `event_id` and JetStream message id `message_id`.
async fn publish(
    js: &async_nats::jetstream::Context,
    prefix: &str,
    order_id: &str,
    event_id: Uuid,
    message_id: Uuid,
) {
    let mut headers = HeaderMap::new();
    headers.insert("ce_id", event_id.to_string().as_str());
    headers.insert("ce_type", "OrderConfirmed");
    headers.insert("ce_subject", format!("order-{order_id}").as_str());
    headers.insert("ce_time", "2026-11-23T00:00:00Z");
    headers.insert("Nats-Msg-Id", message_id.to_string().as_str());
    let body = json!({"orderId": order_id, "userId": "alice"}).to_string();
    js.publish_with_headers(format!("{prefix}.order-confirmed"), headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("acknowledged");
}

async fn notifications(store: &Arc<dyn EventStore>) -> Vec<serde_json::Value> {
    store
        .read_category("notification", 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_slice(&e.data).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_notification_per_order_whatever_the_broker_delivers_again() {
    let js = jetstream().await;
    let run = format!("si{}", &Uuid::now_v7().simple().to_string()[20..]);
    let dir = tempfile::tempdir().unwrap();
    let log = LogStore::open(dir.path().join("log"), LogConfig::default()).unwrap();
    let store: Arc<dyn EventStore> = log.clone();
    let mut broker = BrokerConfig::new(nats_url());
    broker.stream = run.clone();
    broker.subject_prefix = run.clone();
    let config = ServiceConfig {
        data_dir: dir.path().join("service"),
        broker,
        consumer: ConsumerConfig {
            // Redelivered soon after a lost acknowledgement.
            ack_wait_ms: 1_000,
            ..ConsumerConfig::default()
        },
        relay: Default::default(),
        backend: BackendConfig::default(),
        gateway: None,
    };
    let kind = ServiceKind::Backend(Backend::Notifications);
    let service = RunningService::start(kind, store.clone(), config.clone())
        .await
        .expect("the service starts");

    // The same event three times: twice under new message ids (JetStream keeps both),
    // once under a message id it has (JetStream drops it).
    let (order, event, message) = ("o-1", Uuid::now_v7(), Uuid::now_v7());
    publish(&js, &run, order, event, message).await;
    publish(&js, &run, order, event, Uuid::now_v7()).await;
    publish(&js, &run, order, event, message).await;
    let other = Uuid::now_v7();
    publish(&js, &run, "o-2", other, other).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done: u64 = service.consumer_stats().iter().map(|(_, s)| s[0]).sum();
        if done >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", service.consumer_stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = notifications(&store).await;
    assert_eq!(seen.len(), 2, "one per order: {seen:?}");
    assert_eq!(seen[0]["orderId"], "o-1");
    assert_eq!(seen[0]["kind"], "ORDER_CONFIRMED");

    // Everything was acknowledged after it was handled: a restarted service has nothing
    // to do again.
    service.shutdown().await;
    let service = RunningService::start(kind, store.clone(), config)
        .await
        .expect("the service starts again");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let redone: u64 = service.consumer_stats().iter().map(|(_, s)| s[0]).sum();
    assert_eq!(redone, 0, "{:?}", service.consumer_stats());
    assert_eq!(notifications(&store).await.len(), 2);
    service.shutdown().await;
    log.shutdown();
    let _ = js.delete_stream(&run).await;
}
