//! The saga and reactor runners work on many instances (streams) at once against the real
//! `LogStore`: a stuck one does not hold up the others, its event stays behind the
//! durable checkpoint, and after a crash it is handled (once) while finished work is not
//! redone.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use eventum_core::{
    CommandAccepted, CommandEnvelope, CommandSender, EventStore, ReadDirection, SendError,
};
use eventum_sagas::records::checkpoint_stream;
use eventum_sagas::{
    Choreography, CommandSpec, ReactorConfig, ReactorRunner, SagaConfig, SagaStatus, Status,
};
use serde_json::json;
use tokio::sync::Semaphore;

/// Holds every command of one order until the gate opens; the rest pass straight on.
struct Gated {
    inner: Arc<Services>,
    order_id: &'static str,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl CommandSender for Gated {
    async fn send(&self, command: CommandEnvelope) -> Result<CommandAccepted, SendError> {
        if command.payload["order_id"] == self.order_id {
            let _permit = self.gate.acquire().await.expect("gate open");
        }
        self.inner.send(command).await
    }
}

async fn last_checkpoint(store: &dyn EventStore, kind: &str, name: &str) -> u64 {
    let page = store
        .read_stream(
            &checkpoint_stream(kind, name).unwrap(),
            None,
            ReadDirection::Backward,
            1,
        )
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&page[0].data).unwrap();
    record["next_position"].as_u64().unwrap()
}

/// Appends an `OrderNoted` event (which no flow reacts to) to `order_id`'s stream.
async fn note_order(store: &dyn EventStore, order_id: &str) -> eventum_core::RecordedEvent {
    let stream = eventum_core::StreamName::new(format!("{CATEGORY}-{order_id}")).unwrap();
    let event = eventum_core::NewEvent::new("OrderNoted", &json!({"order_id": order_id})).unwrap();
    let appended = store
        .append(&stream, eventum_core::ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
    store
        .read_all(Some(appended.position), ReadDirection::Forward, 1)
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_stuck_instance_holds_up_no_other_and_stays_behind_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let status = SagaStatus::new(store.clone(), "order");
    let services = Services::new(store.clone());
    let config = SagaConfig {
        checkpoint_every_events: 1,
        instances_in_flight_max: 8,
        ..SagaConfig::default()
    };
    let gated = Arc::new(Gated {
        inner: services.clone(),
        order_id: "stuck",
        gate: Arc::new(Semaphore::new(0)),
    });
    let runner = start_order_saga(store.clone(), gated, config.clone()).await;
    let stuck = place_order(store.as_ref(), "stuck", json!({})).await;
    let others: Vec<String> = (0..40).map(|i| format!("o{i}")).collect();
    for id in &others {
        place_order(store.as_ref(), id, json!({})).await;
    }
    // More orders than instance tasks: they proceed past the stuck one all the same.
    for id in &others {
        wait_for_status(&status, id, Status::Completed).await;
    }
    let stuck_view = status.instance("stuck").await.unwrap().unwrap();
    assert_eq!(stuck_view.status, Status::Running);
    assert_eq!(
        stuck_view.steps, 1,
        "the stuck order's first command never returned"
    );
    // The checkpoint moved with the finished work but never past the stuck event.
    let checkpoint = wait_until_checkpoint_moves(store.as_ref(), "saga", "order").await;
    assert_eq!(checkpoint, stuck.position);

    // A crash with the stuck command in hand; the restart redelivers from the checkpoint.
    runner.abort().await;
    let executed_before = services.executed_types().len();
    let runner = start_order_saga(store.clone(), services.clone(), config).await;
    wait_for_status(&status, "stuck", Status::Completed).await;
    runner.stop().await.unwrap();
    // Only the stuck order's three commands ran after the restart; the others' steps were
    // recognised as handled.
    let after: Vec<String> = services.executed_types()[executed_before..].to_vec();
    assert_eq!(
        after,
        ["ProcessPayment", "ReserveStock", "ScheduleShipment"],
        "after the restart"
    );
    for id in others.iter().map(String::as_str).chain(["stuck"]) {
        assert_steps_once(id, &history(&status, id).await);
        assert_eq!(
            executed_for(store.as_ref(), id).await,
            ["ProcessPayment", "ReserveStock", "ScheduleShipment"],
            "{id}"
        );
    }
}

/// The checkpoint is written in the background: waits until it records a position.
async fn wait_until_checkpoint_moves(store: &dyn EventStore, kind: &str, name: &str) -> u64 {
    let started = std::time::Instant::now();
    loop {
        let checkpoint = last_checkpoint(store, kind, name).await;
        if checkpoint > 0 || started.elapsed() > WAIT {
            return checkpoint;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn one_instance_at_a_time_gives_the_same_outcomes() {
    // instances_in_flight_max = 1 is the sequential runner: a baseline for the pipeline.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let status = SagaStatus::new(store.clone(), "order");
    let services = Services::new(store.clone());
    let config = SagaConfig {
        instances_in_flight_max: 1,
        events_in_flight_max: 2,
        ..SagaConfig::default()
    };
    let runner = start_order_saga(store.clone(), services.clone(), config).await;
    for i in 0..10 {
        let fail = if i % 2 == 0 {
            json!({})
        } else {
            json!({"fail_at": "ScheduleShipment"})
        };
        place_order(store.as_ref(), &format!("s{i}"), fail).await;
    }
    for i in 0..10 {
        let expected = if i % 2 == 0 {
            Status::Completed
        } else {
            Status::Compensated
        };
        let key = format!("s{i}");
        wait_for_status(&status, &key, expected).await;
        assert_steps_once(&key, &history(&status, &key).await);
    }
    runner.stop().await.unwrap();
}

#[tokio::test]
async fn a_stuck_stream_holds_up_no_other_reaction_and_stays_behind_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = open(dir.path());
    let services = Services::new(store.clone());
    let flow = || {
        Choreography::new(
            "payments",
            eventum_core::SubscriptionTarget::Category(CATEGORY.into()),
        )
        .on("OrderPlaced", |e| {
            let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
            vec![CommandSpec::new("ProcessPayment", data)]
        })
    };
    let config = ReactorConfig {
        checkpoint_every_events: 1,
        streams_in_flight_max: 4,
        ..ReactorConfig::default()
    };
    let gated = Arc::new(Gated {
        inner: services.clone(),
        order_id: "stuck",
        gate: Arc::new(Semaphore::new(0)),
    });
    let reactor = ReactorRunner::start(store.clone(), gated, flow(), config.clone())
        .await
        .unwrap();
    let stuck = place_order(store.as_ref(), "stuck", json!({})).await;
    for i in 0..20 {
        place_order(store.as_ref(), &format!("r{i}"), json!({})).await;
    }
    // Events the reactor ignores are done at once, even one queued behind the stuck
    // reaction in its own stream, but they never carry the checkpoint past it.
    note_order(store.as_ref(), "stuck").await;
    let last = note_order(store.as_ref(), "r0").await;
    let started = std::time::Instant::now();
    while services.executed_types().len() < 20 {
        assert!(started.elapsed() < WAIT, "{:?}", services.executed_types());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let checkpoint = wait_until_checkpoint_moves(store.as_ref(), "reactor", "payments").await;
    assert_eq!(checkpoint, stuck.position);

    reactor.abort().await;
    let reactor = ReactorRunner::start(store.clone(), services.clone(), flow(), config)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while executed_for(store.as_ref(), "stuck").await.is_empty() {
        assert!(started.elapsed() < WAIT, "the stuck reaction never ran");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The ignored events after the stuck one are covered once it is done.
    let started = std::time::Instant::now();
    while last_checkpoint(store.as_ref(), "reactor", "payments").await <= last.position {
        assert!(
            started.elapsed() < WAIT,
            "the checkpoint never passed the last event"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    reactor.stop().await.unwrap();
    // Redelivered from the checkpoint: the others' commands were duplicates, run once.
    for id in (0..20).map(|i| format!("r{i}")).chain(["stuck".to_owned()]) {
        assert_eq!(
            executed_for(store.as_ref(), &id).await,
            ["ProcessPayment"],
            "{id}"
        );
    }
}
