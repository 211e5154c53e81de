//! Instance status and history against the real `LogStore`: every status is observable
//! (running, compensating, completed, compensated, failed), the history is the instance
//! stream's records in order, instances are listed in bounded pages, and bad queries get
//! typed errors.

mod common;

use std::sync::Arc;

use common::*;
use eventum_core::{ErrorCode, EventStore, ExpectedVersion, NewEvent, StreamName};
use eventum_sagas::records::InstanceRecord;
use eventum_sagas::{QueryError, SagaConfig, SagaStatus, Status};
use serde_json::json;

#[tokio::test]
async fn status_history_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let status = SagaStatus::new(store.clone(), "order");
    let runner = start_runner(&store).await;
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

    // History: the records in stream order, starting with the start step; a step is one
    // event, so its records share a version, and versions run 0, 1, … below `records`.
    let view = status.instance("ok").await.unwrap().unwrap();
    let all = status.history("ok", 0, 1000).await.unwrap();
    let versions: Vec<u64> = all.iter().map(|e| e.version).collect();
    let mut distinct = versions.clone();
    distinct.dedup();
    assert_eq!(distinct, (0..view.records).collect::<Vec<_>>());
    assert_eq!(view.records, view.steps, "one event per step");
    assert!(
        all.len() > distinct.len(),
        "steps hold several records: {all:?}"
    );
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
    // A page holds whole steps: versions 1 and 2, every record of each.
    let page = status.history("ok", 1, 2).await.unwrap();
    let expected: Vec<_> = all
        .iter()
        .filter(|e| (1..=2).contains(&e.version))
        .cloned()
        .collect();
    assert_eq!(page, expected);

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

/// A store written before a step became one event holds an instance stream of one event
/// per record: the runner and the status queries read it, and the instance goes on with
/// steps of one event each after it.
#[tokio::test]
async fn an_instance_recorded_one_event_per_record_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let placed = place_order(store.as_ref(), "legacy", json!({})).await;
    // Its first step as the planner decides it, written the old way.
    let first_step = eventum_sagas::testing::SagaTest::new(order_saga(None))
        .when(placed.clone())
        .records()
        .to_vec();
    assert!(first_step.len() >= 3, "{first_step:?}");
    let legacy: Vec<NewEvent> = first_step
        .iter()
        .map(|r| NewEvent::new(r.type_name(), r).unwrap())
        .collect();
    let stream = StreamName::system("$saga-order-legacy").unwrap();
    store
        .append(&stream, ExpectedVersion::NoStream, legacy)
        .await
        .unwrap();
    let status = SagaStatus::new(store.clone(), "order");
    let view = status.instance("legacy").await.unwrap().unwrap();
    assert_eq!((view.steps, view.records), (1, first_step.len() as u64));

    // The runner loads it, redoes its last step's command, and carries it to the end.
    let runner = start_runner(&store).await;
    let done = wait_for_status(&status, "legacy", Status::Completed).await;
    runner.stop().await.unwrap();
    let all = status.history("legacy", 0, 1000).await.unwrap();
    let records: Vec<_> = all.iter().map(|e| e.record.clone()).collect();
    assert_eq!(records[..first_step.len()], first_step[..]);
    assert_steps_once("legacy", &records);
    // The old part one record per version, then one version per later step.
    let legacy_versions: Vec<u64> = all[..first_step.len()].iter().map(|e| e.version).collect();
    assert_eq!(
        legacy_versions,
        (0..first_step.len() as u64).collect::<Vec<_>>()
    );
    let later_steps = done.steps - 1;
    assert_eq!(done.records, first_step.len() as u64 + later_steps);
}

/// The order saga's runner on `store`, with the test services answering its commands.
async fn start_runner(store: &Arc<dyn EventStore>) -> eventum_sagas::SagaHandle {
    start_order_saga(
        store.clone(),
        Services::new(store.clone()),
        SagaConfig::default(),
    )
    .await
}
