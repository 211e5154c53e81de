//! Redelivery and concurrency against the real `LogStore`: events delivered again after a
//! crash (the checkpoint lagging) send no command twice and record no step twice; two
//! runners of one saga at once record every step once.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use eventum_core::EventStore;
use eventum_sagas::{SagaConfig, SagaRunner, SagaStatus, Status, SystemClock};
use serde_json::json;

/// A checkpoint that only moves on a clean stop, so an abort redelivers everything.
fn lagging_checkpoint() -> SagaConfig {
    SagaConfig {
        checkpoint_every_events: 1_000_000,
        checkpoint_interval_ms: 3_600_000,
        ..SagaConfig::default()
    }
}

#[tokio::test]
async fn redelivery_after_a_crash_sends_no_command_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let status = SagaStatus::new(store.clone(), "order");
    let services = Services::new(store.clone());
    let runner = start_order_saga(store.clone(), services.clone(), lagging_checkpoint()).await;
    for i in 0..4 {
        place_order(store.as_ref(), &format!("d{i}"), json!({})).await;
    }
    // One order waits on a shipment that never answers: its last step sent a command.
    place_order(
        store.as_ref(),
        "waiting",
        json!({"silent_at": "ScheduleShipment"}),
    )
    .await;
    for i in 0..4 {
        wait_for_status(&status, &format!("d{i}"), Status::Completed).await;
    }
    wait_for(&status, "waiting", |v| v.steps == 3).await;
    // Wait for the step's command to reach the service before the crash.
    while !executed_for(store.as_ref(), "waiting")
        .await
        .contains(&"ScheduleShipment".to_owned())
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let records_before: HashMap<String, usize> = {
        let mut m = HashMap::new();
        for key in ["d0", "d1", "d2", "d3", "waiting"] {
            m.insert(key.to_owned(), history(&status, key).await.len());
        }
        m
    };
    // A service records a command as executed just after its append, which the saga may
    // already have seen: wait (bounded) for the last records, then insist on the count.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while services.executed.lock().unwrap().len() < 4 * 3 + 3
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let executed_before = services.executed.lock().unwrap().len();
    assert_eq!(executed_before, 4 * 3 + 3);
    runner.abort().await;

    // The restarted runner gets every event again.
    let services = Services::new(store.clone());
    let runner = start_order_saga(store.clone(), services.clone(), lagging_checkpoint()).await;
    // Events are handled in order: once this new order completes, the old ones were
    // handled again.
    place_order(store.as_ref(), "after", json!({})).await;
    wait_for_status(&status, "after", Status::Completed).await;
    runner.stop().await.unwrap();

    // The waiting order's last command was sent again (its step may not have finished
    // before the crash) and recognised as a duplicate; nothing else ran again.
    assert!(
        services.sends.load(Ordering::SeqCst) >= 4,
        "sends {}",
        services.sends.load(Ordering::SeqCst)
    );
    assert_eq!(
        services.executed_types(),
        ["ProcessPayment", "ReserveStock", "ScheduleShipment"],
        "only the new order's commands ran"
    );
    for (key, before) in records_before {
        let records = history(&status, &key).await;
        assert_eq!(records.len(), before, "{key}: no step recorded again");
        assert_steps_once(&key, &records);
        assert_eq!(
            executed_for(store.as_ref(), &key).await,
            ["ProcessPayment", "ReserveStock", "ScheduleShipment"],
            "{key}"
        );
    }
}

#[tokio::test]
async fn two_runners_at_once_record_every_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let status = SagaStatus::new(store.clone(), "order");
    let mut runners = Vec::new();
    for _ in 0..2 {
        runners.push(
            SagaRunner::start(
                store.clone(),
                Services::new(store.clone()),
                order_saga(None),
                SagaConfig {
                    conflict_retries_max: 50,
                    ..SagaConfig::default()
                },
                Arc::new(SystemClock),
            )
            .await
            .unwrap(),
        );
    }
    let keys: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let extra = if i % 3 == 0 {
            json!({"fail_at": "ScheduleShipment"})
        } else {
            json!({})
        };
        place_order(store.as_ref(), key, extra).await;
    }
    for (i, key) in keys.iter().enumerate() {
        let expected = if i % 3 == 0 {
            Status::Compensated
        } else {
            Status::Completed
        };
        wait_for_status(&status, key, expected).await;
    }
    for runner in runners {
        runner.stop().await.unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_steps_once(key, &history(&status, key).await);
        let executed = executed_for(store.as_ref(), key).await;
        let expected: &[&str] = if i % 3 == 0 {
            &[
                "ProcessPayment",
                "ReserveStock",
                "ScheduleShipment",
                "ReleaseStock",
                "RefundPayment",
            ]
        } else {
            &["ProcessPayment", "ReserveStock", "ScheduleShipment"]
        };
        assert_eq!(executed, expected, "{key}");
    }
}
