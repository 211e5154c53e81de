//! Instance status and history against the real `LogStore`: every status is observable
//! (running, compensating, completed, compensated, failed), the history is the instance
//! stream's records in order, instances are listed in bounded pages, and bad queries get
//! typed errors.

mod common;

use std::sync::Arc;

use common::*;
use eventum_core::{ErrorCode, EventStore};
use eventum_sagas::records::InstanceRecord;
use eventum_sagas::{QueryError, SagaConfig, SagaRunner, SagaStatus, Status, SystemClock};
use serde_json::json;

#[tokio::test]
async fn status_history_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let status = SagaStatus::new(store.clone(), "order");
    let runner = SagaRunner::start(
        store.clone(),
        Services::new(store.clone()),
        order_saga(None),
        SagaConfig::default(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    assert_eq!(status.instance("nobody").await.unwrap(), None);
    assert!(status.list(0, 10).await.unwrap().instances.is_empty());

    place_order(store.as_ref(), "ok", json!({})).await;
    place_order(store.as_ref(), "undone", json!({"fail_at": "ReserveStock"})).await;
    place_order(
        store.as_ref(),
        "broken",
        json!({"fail_at": "ReserveStock", "comp_fail_times": 99}),
    )
    .await;
    // Waits on a shipment that never answers.
    place_order(
        store.as_ref(),
        "waiting",
        json!({"silent_at": "ScheduleShipment"}),
    )
    .await;
    // Waits on a refund that never answers.
    place_order(
        store.as_ref(),
        "undoing",
        json!({"fail_at": "ReserveStock", "silent_at": "RefundPayment"}),
    )
    .await;

    wait_for_status(&status, "ok", Status::Completed).await;
    let undone = wait_for_status(&status, "undone", Status::Compensated).await;
    assert_eq!(
        undone.reason.as_deref(),
        Some("step stock failed: StockFailed")
    );
    let broken = wait_for_status(&status, "broken", Status::Failed).await;
    assert!(
        broken
            .reason
            .unwrap()
            .contains("compensating for: step stock failed")
    );
    wait_for(&status, "waiting", |v| v.steps == 3).await;
    let undoing = wait_for_status(&status, "undoing", Status::Compensating).await;
    assert_eq!(undoing.state["phase"]["Compensating"]["step"], 0);
    runner.stop().await.unwrap();
    assert_eq!(
        status.instance("waiting").await.unwrap().unwrap().status,
        Status::Running
    );

    // History: the records in stream order, starting with the start step.
    let view = status.instance("ok").await.unwrap().unwrap();
    let all = status.history("ok", 0, 1000).await.unwrap();
    assert_eq!(all.len() as u64, view.records);
    assert!(all.windows(2).all(|w| w[1].version == w[0].version + 1));
    assert!(
        matches!(&all[0].record, InstanceRecord::SagaStarted { saga, key } if saga == "order" && key == "ok")
    );
    assert!(
        matches!(&all[1].record, InstanceRecord::EventHandled { step: 0, event_type, .. } if event_type == "OrderPlaced")
    );
    assert!(
        matches!(&all[2].record, InstanceRecord::CommandSent { command, .. } if command.command_type == "ProcessPayment")
    );
    assert!(matches!(
        &all.last().unwrap().record,
        InstanceRecord::StatusChanged {
            status: Status::Completed,
            ..
        }
    ));
    let page = status.history("ok", 2, 2).await.unwrap();
    assert_eq!(page, all[2..4]);

    // Pages of instances, in start order, with their status.
    let first = status.list(0, 2).await.unwrap();
    let keys: Vec<_> = first.instances.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["ok", "undone"]);
    assert_eq!(first.instances[0].status, Status::Completed);
    let second = status.list(first.next_from.unwrap(), 2).await.unwrap();
    let third = status.list(second.next_from.unwrap(), 2).await.unwrap();
    assert_eq!(third.instances.len(), 1);
    assert_eq!(third.next_from, None);
    let mut all_keys: Vec<_> = [first, second, third]
        .iter()
        .flat_map(|p| p.instances.iter().map(|i| i.key.clone()))
        .collect();
    all_keys.sort();
    assert_eq!(all_keys, ["broken", "ok", "undoing", "undone", "waiting"]);

    // Bad queries are refused with a typed error.
    let err = status.list(0, 0).await.unwrap_err();
    assert!(matches!(err, QueryError::InvalidInput(_)));
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let err = status.instance("bad\nkey").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let err = status.history("ok", 0, 1_000_000).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}
