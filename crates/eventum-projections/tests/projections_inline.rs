//! Inline projections: once `append` returns, the read model has the event (also under
//! concurrent appends); events stored but not projected before a crash are caught up on
//! open; a failing inline projection turns the acknowledgement into a typed error.

mod common;

use std::sync::Arc;

use common::*;
use eventum_core::{AppendError, EventStore, ExpectedVersion, ReadDirection};
use eventum_log::LogStore;
use eventum_projections::{InlineProjections, Projection, RunnerConfig};
use serde_json::json;

async fn open_inline(
    log: &Arc<LogStore>,
    models: &eventum_projections::ReadModelStore,
) -> InlineProjections<LogStore> {
    let projections: Vec<Arc<dyn Projection>> =
        vec![Arc::new(Orders { version: 1 }), Arc::new(Counter)];
    InlineProjections::open(
        log.clone(),
        models.clone(),
        projections,
        RunnerConfig::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_append_returns_the_read_model_already_has_the_event() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    let store = Arc::new(open_inline(&log, &models).await);
    for i in 0..40u64 {
        let position = append(
            &*store,
            "order-7",
            vec![event("OrderPlaced", json!({"amount": i}))],
        )
        .await;
        let doc = models.get("orders", "order-7").unwrap().unwrap();
        assert_eq!(doc["amount"], json!(i));
        let counter = models.get("counter", "order-7").unwrap().unwrap();
        assert_eq!(counter["count"], json!(i + 1));
        assert_eq!(counter["last"], json!(position));
    }

    // Concurrent appenders: each sees its own event in the read model on return.
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let (store, models) = (store.clone(), models.clone());
            tokio::spawn(async move {
                for i in 0..25u64 {
                    let name = format!("conc-{t}");
                    let position = store
                        .append(
                            &stream(&name),
                            ExpectedVersion::Any,
                            vec![event("E", json!({"i": i}))],
                        )
                        .await
                        .unwrap()
                        .position;
                    let doc = models.get("counter", &name).unwrap().unwrap();
                    assert_eq!(doc["count"], json!(i + 1), "{name}");
                    assert!(doc["last"].as_u64().unwrap() >= position);
                }
            })
        })
        .collect();
    for t in tasks {
        within("appender", t).await.unwrap();
    }
    let history = read_log(&*log).await;
    assert_eq!(read_model(&models, "counter"), fold_counter(&history));
    assert_eq!(read_model(&models, "orders"), fold_orders(&history, 1));

    // Reads go to the inner store.
    let a = store
        .read_all(Some(0), ReadDirection::Forward, 100)
        .await
        .unwrap();
    let b = log
        .read_all(Some(0), ReadDirection::Forward, 100)
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(store.head_position(), log.head_position());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_but_not_projected_are_caught_up_on_open() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    {
        let store = open_inline(&log, &models).await;
        append_orders(&store, 0, 60).await;
    }
    // As after a crash between the durable append and the projection commit: these
    // events reach the log without the inline projections.
    append_orders(&*log, 60, 40).await;
    let history = read_log(&*log).await;
    assert_ne!(read_model(&models, "counter"), fold_counter(&history));
    let _store = open_inline(&log, &models).await;
    assert_eq!(read_model(&models, "counter"), fold_counter(&history));
    assert_eq!(read_model(&models, "orders"), fold_orders(&history, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_inline_projection_reports_a_storage_error_after_the_durable_append() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    let store = open_inline(&log, &models).await;
    let good = append(
        &store,
        "order-1",
        vec![event("OrderPlaced", json!({"amount": 5}))],
    )
    .await;
    let err = store
        .append(
            &stream("order-2"),
            ExpectedVersion::Any,
            vec![event("OrderPlaced", json!({"poison": true}))],
        )
        .await
        .unwrap_err();
    match &err {
        AppendError::Storage(e) => assert!(e.message.contains("inline projection"), "{e}"),
        other => panic!("unexpected {other:?}"),
    }
    // The event is stored; the projection stays at the last good batch.
    assert_eq!(log.head_position(), Some(good + 1));
    let info = models.model_info("orders").unwrap().unwrap();
    assert_eq!(info.position_next, good + 1);
    assert_eq!(models.get("orders", "order-2").unwrap(), None);
}
