//! Choreography against the real `LogStore`: reactors turn events into commands with ids
//! derived from the event, so redelivery after a crash runs nothing twice; refused
//! reactions are counted and skipped; a command that keeps failing stops the reactor
//! before its checkpoint passes the event, and a restart carries it out.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use eventum_core::{Causation, EventStore, SubscriptionTarget};
use eventum_sagas::{Choreography, CommandSpec, ReactorConfig, ReactorRunner, RunError};
use serde_json::json;

fn payments_flow() -> Choreography {
    Choreography::new("payments", SubscriptionTarget::Category(CATEGORY.into()))
        .on("OrderPlaced", |e| {
            let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
            vec![CommandSpec::new("ProcessPayment", data)]
        })
        .on("PaymentProcessed", |e| {
            let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
            vec![CommandSpec::new(
                "NotifyCustomer",
                json!({"order_id": data["order_id"]}),
            )]
        })
}

fn lagging() -> ReactorConfig {
    ReactorConfig {
        checkpoint_every_events: 1_000_000,
        checkpoint_interval_ms: 3_600_000,
        send_retry_delay_ms: 1,
        ..ReactorConfig::default()
    }
}

async fn wait_executed(store: &dyn EventStore, order_id: &str, expected: &[&str]) {
    let started = Instant::now();
    loop {
        let executed = executed_for(store, order_id).await;
        if executed == expected {
            return;
        }
        assert!(started.elapsed() < WAIT, "{order_id}: {executed:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn reactions_run_once_even_when_events_are_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let services = Services::new(store.clone());
    let reactor = ReactorRunner::start(store.clone(), services.clone(), payments_flow(), lagging())
        .await
        .unwrap();
    let placed = place_order(store.as_ref(), "c1", json!({})).await;
    wait_executed(store.as_ref(), "c1", &["ProcessPayment", "NotifyCustomer"]).await;
    assert_eq!(reactor.stats().commands_sent.load(Ordering::SeqCst), 2);

    // The first command was caused by the order event, in its conversation.
    let first = services.executed.lock().unwrap()[0].clone();
    assert_eq!((first.correlation_id, first.causation_id), {
        let c = Causation::caused_by_event(&placed);
        (c.correlation_id, c.causation_id)
    });
    // A crash before the checkpoint moved: everything is delivered again.
    reactor.abort().await;
    let services = Services::new(store.clone());
    let reactor = ReactorRunner::start(store.clone(), services.clone(), payments_flow(), lagging())
        .await
        .unwrap();
    place_order(store.as_ref(), "c2", json!({})).await;
    wait_executed(store.as_ref(), "c2", &["ProcessPayment", "NotifyCustomer"]).await;
    reactor.stop().await.unwrap();
    // Sent again, recognised as duplicates by their derived ids; only c2's commands ran.
    assert!(services.sends.load(Ordering::SeqCst) >= 4);
    assert_eq!(
        services.executed_types(),
        ["ProcessPayment", "NotifyCustomer"]
    );
    assert_eq!(
        executed_for(store.as_ref(), "c1").await,
        ["ProcessPayment", "NotifyCustomer"]
    );
}

#[tokio::test]
async fn refused_reactions_are_counted_and_failing_ones_stop_the_reactor() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let services = Services::new(store.clone());
    let reactor = ReactorRunner::start(store.clone(), services.clone(), payments_flow(), lagging())
        .await
        .unwrap();
    place_order(store.as_ref(), "r1", json!({"reject_at": "ProcessPayment"})).await;
    place_order(store.as_ref(), "r2", json!({})).await;
    // The refusal does not hold up the next order.
    wait_executed(store.as_ref(), "r2", &["ProcessPayment", "NotifyCustomer"]).await;
    assert!(executed_for(store.as_ref(), "r1").await.is_empty());
    assert_eq!(reactor.stats().commands_rejected.load(Ordering::SeqCst), 1);

    // A command that fails beyond the retries stops the reactor with a typed error.
    services.fail_technically.store(1_000, Ordering::SeqCst);
    place_order(store.as_ref(), "r3", json!({})).await;
    let err = tokio::time::timeout(WAIT, reactor.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, RunError::SendFailed { ref command_type, .. } if command_type == "ProcessPayment"),
        "{err}"
    );
    services.fail_technically.store(0, Ordering::SeqCst);

    // Restarted, it carries the failed reaction out.
    let reactor = ReactorRunner::start(store.clone(), services.clone(), payments_flow(), lagging())
        .await
        .unwrap();
    wait_executed(store.as_ref(), "r3", &["ProcessPayment", "NotifyCustomer"]).await;
    reactor.stop().await.unwrap();
}
