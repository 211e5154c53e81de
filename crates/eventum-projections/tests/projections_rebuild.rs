//! Rebuilds: a new generation is built from position 0 while the old one keeps serving,
//! switched in atomically once it has caught up, the old one dropped; progress is
//! reported; a version bump rebuilds on start; an interrupted rebuild resumes.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use eventum_core::EventStore;
use eventum_projections::{ProjectionRunner, RunnerConfig, Status, rebuild};
use redb::{ReadableDatabase, TableHandle};

fn tiny_batches() -> RunnerConfig {
    RunnerConfig {
        batch_events_max: 5,
        catch_up_batch_events_max: 10,
        rebuild_batch_events_max: 25,
        rebuild_durable_every_batches: 3,
        ..RunnerConfig::default()
    }
}

/// Table names in the database file (the store must be closed).
fn table_names(dir: &std::path::Path) -> Vec<String> {
    let db = redb::Database::open(dir.join(eventum_projections::store::DB_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    txn.list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect()
}

async fn build_v1(log: &Arc<eventum_log::LogStore>, models: &eventum_projections::ReadModelStore) {
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Orders { version: 1 }),
        RunnerConfig::default(),
    )
    .await
    .unwrap();
    within("v1", runner.wait_for_position(log.head_position().unwrap()))
        .await
        .unwrap();
    runner.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_serves_the_old_generation_until_the_switch() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    append_orders(&*log, 0, 400).await;
    build_v1(&log, &models).await;
    let history = read_log(&*log).await;
    let v1 = fold_orders(&history, 1);
    let v2 = fold_orders(&history, 2);
    assert_ne!(v1, v2);

    let seen: Arc<Mutex<Vec<Status>>> = Arc::default();
    let report = {
        let (models, seen) = (models.clone(), seen.clone());
        rebuild(
            models.clone(),
            log.clone(),
            Arc::new(Orders { version: 2 }),
            tiny_batches(),
            move |s: &Status| {
                if s.rebuilding {
                    // Queries still read generation 1, whole and unchanged.
                    let info = models.model_info("orders").unwrap().unwrap();
                    assert_eq!((info.generation, info.version), (1, 1));
                    assert_eq!(info.building, Some((2, 2)));
                    assert_eq!(read_model(&models, "orders"), v1);
                }
                seen.lock().unwrap().push(s.clone());
            },
        )
        .await
        .unwrap()
    };
    assert_eq!(report.generation, 2);
    assert_eq!(report.position_next, history.len() as u64);
    let order_events = history.iter().filter(|e| e.category() == "order").count();
    assert_eq!(report.events_applied, order_events as u64);
    assert_eq!(read_model(&models, "orders"), v2, "equals a fresh fold");
    let info = models.model_info("orders").unwrap().unwrap();
    assert_eq!((info.generation, info.version, info.building), (2, 2, None));

    let seen = seen.lock().unwrap();
    let during: Vec<_> = seen.iter().filter(|s| s.rebuilding).collect();
    assert!(during.len() >= 5, "progress was reported batch by batch");
    assert!(
        during
            .windows(2)
            .all(|w| w[0].position_next <= w[1].position_next
                && w[0].events_applied <= w[1].events_applied)
    );
    assert!(
        seen.iter()
            .all(|s| s.head == Some(history.len() as u64 - 1))
    );
    assert!(!seen.last().unwrap().rebuilding);

    // The old generation's tables are gone.
    drop(models);
    let names = table_names(rm_dir.path());
    assert!(names.contains(&"docs/orders/2".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("orders/1")), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_bump_rebuilds_on_start_and_an_interrupted_rebuild_resumes() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    append_orders(&*log, 0, 600).await;
    build_v1(&log, &models).await;
    let history = read_log(&*log).await;
    let v1 = fold_orders(&history, 1);

    // Start v2 and stop it in the middle of its rebuild.
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Orders { version: 2 }),
        tiny_batches(),
    )
    .await
    .unwrap();
    let mut watch = runner.watch();
    within(
        "rebuild progress",
        watch.wait_for(|s| s.rebuilding && s.events_applied >= 20),
    )
    .await
    .unwrap();
    runner.stop().await.unwrap();
    let info = models.model_info("orders").unwrap().unwrap();
    assert_eq!((info.generation, info.version), (1, 1), "old serves");
    assert_eq!(info.building, Some((2, 2)));
    assert_eq!(read_model(&models, "orders"), v1);

    // Restart: the rebuild resumes into generation 2 and switches when caught up; live
    // appends after that land in the new generation.
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Orders { version: 2 }),
        tiny_batches(),
    )
    .await
    .unwrap();
    let last = append_orders(&*log, 600, 50).await;
    within("v2", runner.wait_for_position(last)).await.unwrap();
    let history = read_log(&*log).await;
    assert_eq!(read_model(&models, "orders"), fold_orders(&history, 2));
    let info = models.model_info("orders").unwrap().unwrap();
    assert_eq!((info.generation, info.version, info.building), (2, 2, None));
    runner.stop().await.unwrap();

    // Same version again: no rebuild.
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Orders { version: 2 }),
        tiny_batches(),
    )
    .await
    .unwrap();
    assert!(!runner.status().rebuilding);
    assert_eq!(runner.status().generation, 2);
    runner.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_projection_rebuilds_on_request_and_keeps_following() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Counter),
        tiny_batches(),
    )
    .await
    .unwrap();
    let last = append_orders(&*log, 0, 200).await;
    within("counter", runner.wait_for_position(last))
        .await
        .unwrap();
    assert_eq!(runner.status().generation, 1);
    runner.rebuild().await.unwrap();
    // Appends during the rebuild are covered too.
    let last = append_orders(&*log, 200, 50).await;
    let status = within("rebuilt", runner.wait_for_position(last))
        .await
        .unwrap();
    assert_eq!(status.generation, 2);
    assert_eq!(
        read_model(&models, "counter"),
        fold_counter(&read_log(&*log).await)
    );
    // A standalone rebuild of a running projection is refused.
    let busy = rebuild(
        models.clone(),
        log.clone(),
        Arc::new(Counter),
        tiny_batches(),
        |_: &Status| {},
    )
    .await;
    assert!(matches!(
        busy,
        Err(eventum_projections::RunError::Busy { .. })
    ));
    runner.stop().await.unwrap();
}
