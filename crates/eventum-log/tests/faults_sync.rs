//! The window between writing a group and syncing it, held open through `FaultyDisk`:
//! nothing written is acknowledged or visible before the sync that covers it (not even a
//! retry of it), and a failed sync fails every group written before it.

mod fault_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use eventum_core::{EventStore, ExpectedVersion, ReadDirection, ReadError, StorageErrorKind};
use eventum_log::LogStore;
use eventum_log::disk::FaultPlan;
use fault_support::*;

/// Time for the writer to write what it was given and hand it to the (held) syncer.
const SETTLE: Duration = Duration::from_millis(200);

fn spawn_append(
    store: &Arc<LogStore>,
    name: &'static str,
    expected: ExpectedVersion,
    events: Vec<eventum_core::NewEvent>,
) -> tokio::task::JoinHandle<Result<Vec<Acked>, eventum_core::AppendError>> {
    let store = store.clone();
    tokio::spawn(async move { append(&store, name, expected, events).await })
}

async fn held(dir: &std::path::Path) -> (Arc<LogStore>, Arc<FaultPlan>, Vec<Acked>) {
    let (store, plan) = open_faulty(dir, &config(1024 * 1024));
    let mut acked = Vec::new();
    append_ok(
        &store,
        &mut acked,
        "order-1",
        ExpectedVersion::NoStream,
        vec![event("order-1", 0, 40)],
    )
    .await;
    plan.hold_sync.store(true, Ordering::SeqCst);
    (store, plan, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_or_visible_before_the_sync_that_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan, mut acked) = held(dir.path()).await;

    let first = vec![event("order-2", 0, 40), event("order-2", 1, 40)];
    let original = spawn_append(&store, "order-2", ExpectedVersion::NoStream, first.clone());
    tokio::time::sleep(SETTLE).await;
    // The same append again (a client retrying after a lost acknowledgement) while the
    // original is written but not durable, and an unrelated append behind both.
    let retry = spawn_append(&store, "order-2", ExpectedVersion::NoStream, first);
    let other = spawn_append(
        &store,
        "user-7",
        ExpectedVersion::Any,
        vec![event("user-7", 0, 10)],
    );
    tokio::time::sleep(SETTLE).await;
    assert!(
        !original.is_finished() && !retry.is_finished() && !other.is_finished(),
        "an append was answered before its sync"
    );
    let unsynced = store
        .read_stream(&stream("order-2"), None, ReadDirection::Forward, 10)
        .await;
    assert!(
        matches!(unsynced, Err(ReadError::StreamNotFound { .. })),
        "a written, unsynced stream must not be visible: {unsynced:?}"
    );

    plan.hold_sync.store(false, Ordering::SeqCst);
    let original = original.await.unwrap().expect("the original append");
    let retry = retry.await.unwrap().expect("the retry");
    assert_eq!(
        retry, original,
        "the retry returns the original result and writes nothing"
    );
    acked.extend(original);
    acked.extend(other.await.unwrap().expect("the unrelated append"));
    assert_log_is(&store, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_fails_every_group_written_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan, acked) = held(dir.path()).await;

    let first = spawn_append(
        &store,
        "order-1",
        ExpectedVersion::Exact(0),
        vec![event("order-1", 1, 40)],
    );
    tokio::time::sleep(SETTLE).await;
    let second = spawn_append(
        &store,
        "user-7",
        ExpectedVersion::NoStream,
        vec![event("user-7", 0, 10)],
    );
    tokio::time::sleep(SETTLE).await;
    plan.fail_sync.store(true, Ordering::SeqCst);
    plan.hold_sync.store(false, Ordering::SeqCst);
    for (what, task) in [("first", first), ("second", second)] {
        let err = storage_error(task.await.unwrap());
        assert_eq!(err.kind, StorageErrorKind::WriterFailed, "{what}: {err:?}");
    }
    // Reads serve what was acknowledged, and nothing written after it.
    assert_log_is(&store, &acked).await;

    // After a reopen, the acknowledged events are there, positions are gap-free, and
    // appends continue (the failed groups' fate is unknown: their bytes reached the page
    // cache before the sync failed).
    store.shutdown();
    drop(store);
    plan.fail_sync.store(false, Ordering::SeqCst);
    let store = open(dir.path(), &config(1024 * 1024));
    let events = read_everything(&store).await;
    assert_gap_free(&events);
    assert_event_is(&events[0], &acked[0]);
    let next = events.iter().filter(|e| e.stream == "order-1").count() as u64;
    let appended = append(
        &store,
        "order-1",
        ExpectedVersion::Exact(next - 1),
        vec![event("order-1", next, 40)],
    )
    .await
    .expect("appends continue after the reopen");
    assert_eq!(appended[0].position, events.len() as u64);
}
