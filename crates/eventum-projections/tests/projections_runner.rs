//! The async runner against the real `LogStore`: read models equal a fold over the log,
//! a restart resumes from the checkpoint without applying anything twice, an `apply`
//! error stops the projection with a typed error at the last good batch, status and lag,
//! and one runner per projection.

mod common;

use std::sync::Arc;

use common::*;
use eventum_core::{ErrorCode, EventStore};
use eventum_projections::{ProjectionError, ProjectionRunner, RunError, RunState, RunnerConfig};
use serde_json::json;

fn small_batches() -> RunnerConfig {
    RunnerConfig {
        batch_events_max: 7,
        catch_up_batch_events_max: 13,
        ..RunnerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_equal_a_fold_over_the_log_in_catch_up_and_live() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    // Some history before the runners start (catch-up), more after (live).
    append_orders(&*log, 0, 120).await;
    let events: Arc<dyn EventStore> = log.clone();
    let orders = ProjectionRunner::start(
        models.clone(),
        events.clone(),
        Arc::new(Orders { version: 1 }),
        small_batches(),
    )
    .await
    .unwrap();
    let counter = ProjectionRunner::start(
        models.clone(),
        events.clone(),
        Arc::new(Counter),
        small_batches(),
    )
    .await
    .unwrap();
    let last = append_orders(&*log, 120, 200).await;
    within("orders", orders.wait_for_position(last))
        .await
        .unwrap();
    within("counter", counter.wait_for_position(last))
        .await
        .unwrap();

    let history = read_log(&*log).await;
    assert_eq!(read_model(&models, "orders"), fold_orders(&history, 1));
    assert_eq!(read_model(&models, "counter"), fold_counter(&history));
    let status = counter.status();
    assert_eq!(status.position_next, last + 1);
    assert_eq!(status.lag_events(), 0);
    assert_eq!(status.state, RunState::Live);
    assert_eq!(status.events_applied, history.len() as u64);
    // The category projection's checkpoint also moved past the noise at the end.
    assert_eq!(orders.status().position_next, last + 1);
    orders.stop().await.unwrap();
    counter.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_checkpoint_without_applying_twice() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for round in 0..3u64 {
        let log = open_log(log_dir.path());
        let models = open_models(rm_dir.path());
        let runner = ProjectionRunner::start(
            models.clone(),
            log.clone(),
            Arc::new(Counter),
            small_batches(),
        )
        .await
        .unwrap();
        let last = append_orders(&*log, round * 100, 100).await;
        within("counter", runner.wait_for_position(last))
            .await
            .unwrap();
        runner.stop().await.unwrap();
        // Events appended while no runner runs are caught up by the next one.
        append(&*log, "gap-1", vec![event("Gap", json!({"round": round}))]).await;
        let history = read_log(&*log).await;
        let info = models.model_info("counter").unwrap().unwrap();
        assert_eq!(info.position_next, last + 1, "round {round}");
        drop(models);
        log.shutdown();
        // Reopen both and check that the fold matches after catching up the gap.
        let log = open_log(log_dir.path());
        let models = open_models(rm_dir.path());
        let runner = ProjectionRunner::start(
            models.clone(),
            log.clone(),
            Arc::new(Counter),
            small_batches(),
        )
        .await
        .unwrap();
        let head = log.head_position().unwrap();
        within("counter", runner.wait_for_position(head))
            .await
            .unwrap();
        assert_eq!(
            read_model(&models, "counter"),
            fold_counter(&history),
            "round {round}"
        );
        runner.stop().await.unwrap();
        log.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_error_stops_the_projection_at_the_last_good_batch() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    let good = append_orders(&*log, 0, 30).await;
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Orders { version: 1 }),
        small_batches(),
    )
    .await
    .unwrap();
    within("orders", runner.wait_for_position(good))
        .await
        .unwrap();
    let poison = append(
        &*log,
        "order-x",
        vec![event("OrderPlaced", json!({"poison": true}))],
    )
    .await;
    let err = within("failure", runner.wait_for_position(poison))
        .await
        .unwrap_err();
    match &err {
        RunError::Apply {
            model,
            position,
            source: ProjectionError::Rejected { .. },
            ..
        } => {
            assert_eq!(model, "orders");
            assert_eq!(*position, poison);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), ErrorCode::DomainRejected);
    assert!(matches!(runner.status().state, RunState::Failed(_)));
    // The checkpoint is at the last good batch; the read model is the fold before it.
    let info = models.model_info("orders").unwrap().unwrap();
    assert_eq!(info.position_next, good + 1);
    let history = read_log(&*log).await;
    assert_eq!(
        read_model(&models, "orders"),
        fold_orders(&history[..=good as usize], 1)
    );
    assert_eq!(runner.stop().await.unwrap_err(), err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_runner_per_projection_and_invalid_projections_are_refused() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    let first = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Counter),
        RunnerConfig::default(),
    )
    .await
    .unwrap();
    let second = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Counter),
        RunnerConfig::default(),
    )
    .await;
    assert!(matches!(second, Err(RunError::Busy { .. })));
    first.stop().await.unwrap();
    // Once stopped, the projection can run again.
    let again = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Counter),
        RunnerConfig::default(),
    )
    .await
    .unwrap();
    again.stop().await.unwrap();

    struct BadName;
    impl eventum_projections::Projection for BadName {
        fn name(&self) -> &str {
            "bad/name"
        }
        fn version(&self) -> u64 {
            1
        }
        fn target(&self) -> eventum_core::SubscriptionTarget {
            eventum_core::SubscriptionTarget::All
        }
        fn apply(
            &self,
            _: &mut eventum_projections::ProjectionTx<'_>,
            _: &eventum_core::RecordedEvent,
        ) -> Result<(), ProjectionError> {
            Ok(())
        }
    }
    let bad =
        ProjectionRunner::start(models, log, Arc::new(BadName), RunnerConfig::default()).await;
    match bad {
        Err(e @ RunError::InvalidProjection { .. }) => {
            assert_eq!(e.code(), ErrorCode::InvalidInput)
        }
        Err(other) => panic!("unexpected {other:?}"),
        Ok(_) => panic!("a projection with an invalid name started"),
    }
}

/// Writes one document whose size grows with the event's `pad`.
struct Padded;

impl eventum_projections::Projection for Padded {
    fn name(&self) -> &str {
        "padded"
    }
    fn version(&self) -> u64 {
        1
    }
    fn target(&self) -> eventum_core::SubscriptionTarget {
        eventum_core::SubscriptionTarget::Category("pad".into())
    }
    fn apply(
        &self,
        tx: &mut eventum_projections::ProjectionTx<'_>,
        e: &eventum_core::RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
        tx.put(&e.stream, data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_over_the_size_bound_stops_the_projection_with_a_typed_error() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models_with(
        rm_dir.path(),
        eventum_projections::StoreConfig {
            doc_bytes_max: 200,
            ..eventum_projections::StoreConfig::default()
        },
    );
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Padded),
        RunnerConfig::default(),
    )
    .await
    .unwrap();
    let ok = append(&*log, "pad-1", vec![event("P", json!({"pad": "x"}))]).await;
    within("small", runner.wait_for_position(ok)).await.unwrap();
    let big = append(
        &*log,
        "pad-2",
        vec![event("P", json!({"pad": "x".repeat(300)}))],
    )
    .await;
    let err = within("big", runner.wait_for_position(big))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RunError::Apply {
                source: ProjectionError::InvalidInput(
                    eventum_projections::InvalidRequest::DocTooLarge { .. }
                ),
                position,
                ..
            } if *position == big
        ),
        "{err:?}"
    );
    assert_eq!(models.get("padded", "pad-2").unwrap(), None);
    assert_eq!(
        models.get("padded", "pad-1").unwrap(),
        Some(json!({"pad": "x"}))
    );
    assert_eq!(
        models.model_info("padded").unwrap().unwrap().position_next,
        ok + 1
    );
}
