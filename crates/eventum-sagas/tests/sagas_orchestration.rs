//! The order orchestrator end to end against the real `LogStore`: the happy path, a
//! failure at each step compensated in reverse order, rejected commands, compensations
//! that fail and are retried, and technical send failures that are retried.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use eventum_core::{Causation, EventStore};
use eventum_sagas::records::InstanceRecord;
use eventum_sagas::{SagaConfig, SagaStatus, Status};
use serde_json::json;

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    services: Arc<Services>,
    status: SagaStatus,
    runner: eventum_sagas::SagaHandle,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let services = Services::new(store.clone());
    let config = SagaConfig {
        send_retry_delay_ms: 1,
        ..SagaConfig::default()
    };
    let runner = start_order_saga(store.clone(), services.clone(), config).await;
    Setup {
        status: SagaStatus::new(store.clone(), "order"),
        _dir: dir,
        store,
        services,
        runner,
    }
}

#[tokio::test]
async fn happy_path_runs_every_step_once_and_completes() {
    let s = setup().await;
    let placed = place_order(s.store.as_ref(), "o1", json!({"amount": 30})).await;
    let view = wait_for_status(&s.status, "o1", Status::Completed).await;
    assert_eq!(view.reason, None);
    assert!(view.pending_deadlines.is_empty());
    assert_eq!(
        executed_for(s.store.as_ref(), "o1").await,
        ["ProcessPayment", "ReserveStock", "ScheduleShipment"]
    );

    // The first command was caused by the order event and correlates with it, carries the
    // order's data, and has an id derived from the instance stream and step.
    let records = history(&s.status, "o1").await;
    let commands: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            InstanceRecord::CommandSent { command, .. } => Some(command.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(commands.len(), 3);
    let first = &commands[0];
    assert_eq!(
        Causation {
            correlation_id: first.correlation_id,
            causation_id: first.causation_id
        },
        Causation::caused_by_event(&placed)
    );
    assert_eq!(first.payload["amount"], 30);
    assert_eq!(first.command_id.get_version_num(), 5);
    // Every later command stays in the order's conversation.
    assert!(
        commands
            .iter()
            .all(|c| c.correlation_id == placed.correlation_id)
    );
    let executed = s.services.executed.lock().unwrap().clone();
    assert_eq!(executed.len(), 3);
    assert_eq!(executed[0], *first);
    s.runner.stop().await.unwrap();
}

/// Fails the order at `fail_at` and checks the compensations that ran.
async fn failing_order(fail_at: &str, expected: &[&str]) {
    let s = setup().await;
    place_order(s.store.as_ref(), "o1", json!({"fail_at": fail_at})).await;
    let view = wait_for_status(&s.status, "o1", Status::Compensated).await;
    assert!(
        view.reason.as_deref().unwrap().contains("failed"),
        "{:?}",
        view.reason
    );
    assert_eq!(executed_for(s.store.as_ref(), "o1").await, expected);
    // The history passed through `compensating` when there was something to undo.
    let statuses: Vec<Status> = history(&s.status, "o1")
        .await
        .into_iter()
        .filter_map(|r| match r {
            InstanceRecord::StatusChanged { status, .. } => Some(status),
            _ => None,
        })
        .collect();
    if expected.len() > 1 {
        assert_eq!(statuses, [Status::Compensating, Status::Compensated]);
    } else {
        assert_eq!(statuses, [Status::Compensated]);
    }
    s.runner.stop().await.unwrap();
}

#[tokio::test]
async fn failure_at_the_first_step_has_nothing_to_compensate() {
    failing_order("ProcessPayment", &["ProcessPayment"]).await;
}

#[tokio::test]
async fn failure_at_the_second_step_refunds_the_payment() {
    failing_order(
        "ReserveStock",
        &["ProcessPayment", "ReserveStock", "RefundPayment"],
    )
    .await;
}

#[tokio::test]
async fn failure_at_the_last_step_compensates_in_reverse_order() {
    failing_order(
        "ScheduleShipment",
        &[
            "ProcessPayment",
            "ReserveStock",
            "ScheduleShipment",
            "ReleaseStock",
            "RefundPayment",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_rejected_command_fails_its_step() {
    let s = setup().await;
    place_order(s.store.as_ref(), "o1", json!({"reject_at": "ReserveStock"})).await;
    let view = wait_for_status(&s.status, "o1", Status::Compensated).await;
    assert!(view.reason.unwrap().contains("refused"));
    assert_eq!(
        executed_for(s.store.as_ref(), "o1").await,
        ["ProcessPayment", "RefundPayment"]
    );
    let records = history(&s.status, "o1").await;
    assert!(records.iter().any(|r| matches!(r,
        InstanceRecord::CommandRejected { command_type, code, .. }
            if command_type == "ReserveStock" && code == "refused")));
    s.runner.stop().await.unwrap();
}

#[tokio::test]
async fn a_compensation_that_keeps_failing_ends_failed_with_the_reason() {
    let s = setup().await;
    // Every refund attempt fails: 1 + 2 retries, then failed.
    place_order(
        s.store.as_ref(),
        "o1",
        json!({"fail_at": "ReserveStock", "comp_fail_times": 99}),
    )
    .await;
    let view = wait_for_status(&s.status, "o1", Status::Failed).await;
    let reason = view.reason.unwrap();
    assert!(
        reason.contains("RefundPayment") && reason.contains("3 times"),
        "{reason}"
    );
    assert_eq!(
        executed_for(s.store.as_ref(), "o1").await,
        [
            "ProcessPayment",
            "ReserveStock",
            "RefundPayment",
            "RefundPayment",
            "RefundPayment"
        ]
    );
    s.runner.stop().await.unwrap();
}

#[tokio::test]
async fn a_compensation_that_fails_once_is_retried_and_succeeds() {
    let s = setup().await;
    place_order(
        s.store.as_ref(),
        "o1",
        json!({"fail_at": "ScheduleShipment", "comp_fail_times": 1}),
    )
    .await;
    wait_for_status(&s.status, "o1", Status::Compensated).await;
    assert_eq!(
        executed_for(s.store.as_ref(), "o1").await,
        [
            "ProcessPayment",
            "ReserveStock",
            "ScheduleShipment",
            "ReleaseStock",
            "ReleaseStock",
            "RefundPayment",
            "RefundPayment"
        ]
    );
    // Each retry is a new command (its own id), with the attempt number in its payload.
    let executed = s.services.executed.lock().unwrap().clone();
    let releases: Vec<_> = executed
        .iter()
        .filter(|c| c.command_type == "ReleaseStock")
        .collect();
    assert_ne!(releases[0].command_id, releases[1].command_id);
    assert_eq!(releases[1].payload["attempt"], 1);
    s.runner.stop().await.unwrap();
}

#[tokio::test]
async fn technical_send_failures_are_retried_within_the_bound() {
    let s = setup().await;
    s.services.fail_technically.store(2, Ordering::SeqCst);
    place_order(s.store.as_ref(), "o1", json!({})).await;
    wait_for_status(&s.status, "o1", Status::Completed).await;
    assert_eq!(
        executed_for(s.store.as_ref(), "o1").await,
        ["ProcessPayment", "ReserveStock", "ScheduleShipment"]
    );
    // 2 failed attempts + 3 successful sends.
    assert_eq!(s.services.sends.load(Ordering::SeqCst), 5);

    // Beyond the bound the failure reaches the saga as a rejection coded `failed`.
    s.services.fail_technically.store(100, Ordering::SeqCst);
    place_order(s.store.as_ref(), "o2", json!({})).await;
    let view = wait_for_status(&s.status, "o2", Status::Compensated).await;
    assert!(view.reason.unwrap().contains("failed"));
    s.services.fail_technically.store(0, Ordering::SeqCst);
    s.runner.stop().await.unwrap();
}
