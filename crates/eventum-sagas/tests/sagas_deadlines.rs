//! Durable deadlines against the real `LogStore` with a test clock: a deadline fires after
//! the store and the runner restart, exactly once; it is cancelled when the awaited event
//! arrives; an orchestrator step times out; more deadlines than the in-memory bound all
//! fire.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, RecordedEvent, StreamName,
    SubscriptionTarget,
};
use eventum_log::LogStore;
use eventum_sagas::records::InstanceRecord;
use eventum_sagas::{
    Action, Clock, SagaConfig, SagaHandle, SagaRunner, SagaStatus, Status, TestClock, Trigger,
};
use serde_json::json;

const START_MS: i64 = 1_000_000;
const EXPIRE_AFTER_MS: u64 = 60_000;

/// Waits for payment: cancels the order when the payment does not come in time.
struct PaymentWindow;

impl eventum_sagas::Saga for PaymentWindow {
    type State = ();

    fn name(&self) -> &str {
        "window"
    }
    fn source(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category(CATEGORY.into())
    }
    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        let d: serde_json::Value = serde_json::from_slice(&event.data).ok()?;
        d["order_id"].as_str().map(str::to_owned)
    }
    fn starts(&self, event: &RecordedEvent) -> bool {
        event.event_type == "OrderPlaced"
    }
    fn handle(&self, _: &(), trigger: &Trigger<'_>) -> Vec<Action> {
        match trigger {
            Trigger::Event(e) if e.event_type == "OrderPlaced" => vec![Action::Schedule {
                name: "expire".into(),
                after_ms: EXPIRE_AFTER_MS,
                payload: json!({"why": "no payment"}),
            }],
            Trigger::Event(e) if e.event_type == "PaymentReceived" => vec![
                Action::Cancel {
                    name: "expire".into(),
                },
                Action::Complete,
            ],
            Trigger::Deadline(d) if d.name == "expire" => {
                assert_eq!(d.payload["why"], "no payment");
                vec![
                    Action::send(
                        "NotifyCustomer",
                        json!({"order_id": "?", "what": "expired"}),
                    ),
                    Action::Fail {
                        reason: "payment window expired".into(),
                    },
                ]
            }
            _ => Vec::new(),
        }
    }
    fn evolve(&self, _: &mut (), _: &Trigger<'_>) {}
}

async fn start<G: eventum_sagas::Saga>(
    store: &Arc<LogStore>,
    saga: G,
    clock: &TestClock,
    config: SagaConfig,
) -> (SagaHandle, Arc<Services>) {
    let store: Arc<dyn EventStore> = store.clone();
    let services = Services::new(store.clone());
    let runner = SagaRunner::start(
        store,
        services.clone(),
        saga,
        config,
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    (runner, services)
}

async fn book_records(store: &dyn EventStore, saga: &str) -> Vec<String> {
    let stream = StreamName::system(format!("$saga-deadlines-{saga}")).unwrap();
    store
        .read_stream(&stream, None, ReadDirection::Forward, 1000)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

fn fired(records: &[InstanceRecord]) -> usize {
    count_types(records)
        .get("DeadlineFired")
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_deadline_fires_after_a_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(START_MS);
    let store = open(dir.path());
    let (runner, _) = start(&store, PaymentWindow, &clock, SagaConfig::default()).await;
    place_order(store.as_ref(), "o1", json!({})).await;
    let status = SagaStatus::new(store.clone(), "window");
    let view = wait_for(&status, "o1", |v| v.pending_deadlines.len() == 1).await;
    assert_eq!(
        view.pending_deadlines[0].due_at_ms,
        START_MS + EXPIRE_AFTER_MS as i64
    );
    runner.stop().await.unwrap();
    store.shutdown();
    drop((store, status));

    // Time passes while nothing runs; the store is reopened from disk.
    clock.advance(EXPIRE_AFTER_MS + 1);
    let store = open(dir.path());
    let status = SagaStatus::new(store.clone(), "window");
    let (runner, services) = start(&store, PaymentWindow, &clock, SagaConfig::default()).await;
    let view = wait_for_status(&status, "o1", Status::Failed).await;
    assert_eq!(view.reason.as_deref(), Some("payment window expired"));
    assert!(view.pending_deadlines.is_empty());
    // Stopping lets the step in hand finish its effects (the command is sent after the
    // step is recorded).
    runner.stop().await.unwrap();
    assert_eq!(services.executed_types(), ["NotifyCustomer"]);
    assert_eq!(fired(&history(&status, "o1").await), 1);
    store.shutdown();
    drop((store, status));

    // Another restart, later still: nothing fires again.
    clock.advance(EXPIRE_AFTER_MS * 10);
    let store = open(dir.path());
    let status = SagaStatus::new(store.clone(), "window");
    let (runner, services) = start(&store, PaymentWindow, &clock, SagaConfig::default()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    runner.stop().await.unwrap();
    assert!(services.executed.lock().unwrap().is_empty());
    assert_eq!(fired(&history(&status, "o1").await), 1);
    assert_eq!(
        book_records(store.as_ref(), "window").await,
        ["Scheduled", "Fired"]
    );
    assert_eq!(executed_for(store.as_ref(), "?").await, ["NotifyCustomer"]);
}

#[tokio::test]
async fn a_deadline_is_cancelled_when_the_awaited_event_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(START_MS);
    let store = open(dir.path());
    let status = SagaStatus::new(store.clone(), "window");
    let (runner, services) = start(&store, PaymentWindow, &clock, SagaConfig::default()).await;
    place_order(store.as_ref(), "o2", json!({})).await;
    wait_for(&status, "o2", |v| v.pending_deadlines.len() == 1).await;
    let stream = StreamName::new(format!("{CATEGORY}-o2-payments")).unwrap();
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::new("PaymentReceived", &json!({"order_id": "o2"})).unwrap()],
        )
        .await
        .unwrap();
    let view = wait_for_status(&status, "o2", Status::Completed).await;
    assert!(view.pending_deadlines.is_empty());
    // Long past the due time, nothing fires.
    clock.advance(EXPIRE_AFTER_MS * 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    runner.stop().await.unwrap();
    let records = history(&status, "o2").await;
    assert_eq!(fired(&records), 0);
    assert_eq!(count_types(&records)["DeadlineCancelled"], 1);
    assert!(services.executed.lock().unwrap().is_empty());
    assert_eq!(
        book_records(store.as_ref(), "window").await,
        ["Scheduled", "Cancelled"]
    );
}

#[tokio::test]
async fn an_orchestrator_step_that_never_answers_times_out_and_compensates() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(START_MS);
    let store = open(dir.path());
    let status = SagaStatus::new(store.clone(), "order");
    let (runner, _) = start(
        &store,
        order_saga(Some(5_000)),
        &clock,
        SagaConfig::default(),
    )
    .await;
    place_order(store.as_ref(), "o3", json!({"silent_at": "ReserveStock"})).await;
    // Payment done, the stock step is in flight and never answered.
    let view = wait_for(&status, "o3", |v| v.state["phase"]["Running"]["step"] == 1).await;
    assert_eq!(view.steps, 2);
    assert_eq!(view.pending_deadlines[0].due_at_ms, START_MS + 5_000);
    clock.advance(5_000);
    let view = wait_for_status(&status, "o3", Status::Compensated).await;
    assert!(view.reason.unwrap().contains("timed out"));
    assert_eq!(
        executed_for(store.as_ref(), "o3").await,
        ["ProcessPayment", "ReserveStock", "RefundPayment"]
    );
    runner.stop().await.unwrap();
}

#[tokio::test]
async fn more_deadlines_than_the_memory_bound_all_fire_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(START_MS);
    let store = open(dir.path());
    let status = SagaStatus::new(store.clone(), "window");
    let config = SagaConfig {
        deadlines_in_memory_max: 2,
        ..SagaConfig::default()
    };
    let (runner, services) = start(&store, PaymentWindow, &clock, config).await;
    for i in 0..7 {
        place_order(store.as_ref(), &format!("m{i}"), json!({})).await;
        clock.advance(10);
    }
    for i in 0..7 {
        wait_for(&status, &format!("m{i}"), |v| {
            v.pending_deadlines.len() == 1
        })
        .await;
    }
    clock.advance(EXPIRE_AFTER_MS);
    for i in 0..7 {
        let key = format!("m{i}");
        wait_for_status(&status, &key, Status::Failed).await;
    }
    runner.stop().await.unwrap();
    for i in 0..7 {
        assert_eq!(fired(&history(&status, &format!("m{i}")).await), 1);
    }
    assert_eq!(services.executed.lock().unwrap().len(), 7);
    assert!(clock.now_ms() > START_MS);
}
