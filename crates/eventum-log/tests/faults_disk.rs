//! Disk faults injected into the real engine through `FaultyDisk`: a failed fsync, a failed
//! write, a full disk and a torn write followed by a crash. Each test checks what the
//! caller is told, that nothing unacknowledged becomes visible, and that after a reopen
//! every acknowledged event is there and appends continue at the right place.

mod fault_support;

use std::sync::atomic::Ordering;

use eventum_core::{
    ErrorCode, EventStore, ExpectedVersion, ReadDirection, StorageErrorKind, StreamMetadata,
};
use eventum_log::VerifyReport;
use eventum_log::codec::encoded_len;
use fault_support::*;

/// A few acknowledged appends (singles and a batch, two streams) to start from.
async fn seed(store: &eventum_log::LogStore, acked: &mut Vec<Acked>) {
    append_ok(
        store,
        acked,
        "order-1",
        ExpectedVersion::NoStream,
        vec![event("order-1", 0, 40)],
    )
    .await;
    append_ok(
        store,
        acked,
        "order-1",
        ExpectedVersion::Exact(0),
        (1..4).map(|n| event("order-1", n, 40)).collect(),
    )
    .await;
    append_ok(
        store,
        acked,
        "user-7",
        ExpectedVersion::Any,
        vec![event("user-7", 0, 10)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_poisons_the_writer_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1024 * 1024);
    let (store, plan) = open_faulty(dir.path(), &cfg);
    let mut acked = Vec::new();
    seed(&store, &mut acked).await;

    plan.fail_sync.store(true, Ordering::SeqCst);
    let failed = event("order-1", 4, 40);
    let err = storage_error(
        append(
            &store,
            "order-1",
            ExpectedVersion::Exact(3),
            vec![failed.clone()],
        )
        .await,
    );
    assert_eq!(err.kind, StorageErrorKind::WriterFailed, "{err:?}");
    assert_eq!(err.code(), ErrorCode::StorageFailed);

    // After a failed fsync the page cache may hold bytes the disk lost; no later success
    // could be trusted, so even a healthy disk does not un-poison the writer.
    plan.fail_sync.store(false, Ordering::SeqCst);
    for (name, expected) in [
        ("order-1", ExpectedVersion::Exact(3)),
        ("fresh-1", ExpectedVersion::NoStream),
        ("user-7", ExpectedVersion::Any),
    ] {
        let err = storage_error(append(&store, name, expected, vec![event(name, 9, 5)]).await);
        assert_eq!(
            err.kind,
            StorageErrorKind::WriterFailed,
            "append to {name} after the failed fsync: {err:?}"
        );
    }
    let meta = within(
        "set_stream_metadata",
        store.set_stream_metadata(&stream("user-7"), StreamMetadata::default()),
    )
    .await;
    assert!(
        matches!(&meta, Err(eventum_core::AppendError::Storage(e)) if e.kind == StorageErrorKind::WriterFailed),
        "metadata write after the failed fsync: {meta:?}"
    );
    // Reads keep serving what was acknowledged, and nothing else.
    assert_log_is(&store, &acked).await;

    store.shutdown();
    drop(store);
    let store = open(dir.path(), &cfg);
    let events = read_everything(&store).await;
    assert_gap_free(&events);
    // The failed append's outcome is unknown (its bytes reached the page cache before the
    // fsync failed): it is either there whole, right after the acknowledged events, or
    // not at all. Every acknowledged event is there either way.
    assert!(
        events.len() == acked.len() || events.len() == acked.len() + 1,
        "{} events after reopen, {} acknowledged",
        events.len(),
        acked.len()
    );
    for (actual, expected) in events.iter().zip(&acked) {
        assert_event_is(actual, expected);
    }
    if let Some(extra) = events.get(acked.len()) {
        assert_eq!(
            (extra.id, extra.stream.as_str(), extra.version),
            (failed.id(), "order-1", 4)
        );
    }
    // So the caller retries the same append with the same expectation: it succeeds, and
    // the event is stored exactly once.
    append_ok(
        &store,
        &mut acked,
        "order-1",
        ExpectedVersion::Exact(3),
        vec![failed],
    )
    .await;
    append_ok(
        &store,
        &mut acked,
        "order-1",
        ExpectedVersion::Exact(4),
        vec![event("order-1", 5, 40)],
    )
    .await;
    assert_log_is(&store, &acked).await;
    assert_eq!(acked.last().unwrap().position, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_write_is_reported_hides_nothing_and_does_not_poison() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1024 * 1024);
    let (store, plan) = open_faulty(dir.path(), &cfg);
    let mut acked = Vec::new();
    seed(&store, &mut acked).await;
    let head = store.head_position();

    plan.fail_write.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let err = storage_error(
            append(
                &store,
                "order-1",
                ExpectedVersion::Exact(3),
                vec![event("order-1", 4, 40), event("order-1", 5, 40)],
            )
            .await,
        );
        // A plain I/O error, not a poisoned writer: the bytes never reached the file.
        assert_eq!(err.kind, StorageErrorKind::Io, "{err:?}");
        assert_eq!(err.code(), ErrorCode::StorageFailed);
        assert!(
            err.message.contains("writing") && err.message.contains(".seg"),
            "the error should say which write failed: {}",
            err.message
        );
    }
    assert_eq!(store.head_position(), head);
    assert_log_is(&store, &acked).await;
    let state = within("stream_state", store.stream_state(&stream("order-1")))
        .await
        .unwrap();
    assert_eq!(
        state.version.as_option(),
        Some(3),
        "failed events took versions"
    );

    // The disk recovers: the next append succeeds at the versions and positions the
    // failed one would have taken.
    plan.fail_write.store(false, Ordering::SeqCst);
    append_ok(
        &store,
        &mut acked,
        "order-1",
        ExpectedVersion::Exact(3),
        vec![event("order-1", 4, 40)],
    )
    .await;
    assert_eq!(
        (
            acked.last().unwrap().version,
            acked.last().unwrap().position
        ),
        (4, 5)
    );
    assert_log_is(&store, &acked).await;

    // Nothing of the failed appends resurfaces after a reopen, nor after a full rescan.
    store.shutdown();
    drop(store);
    let store = open(dir.path(), &cfg);
    assert_log_is(&store, &acked).await;
    store.shutdown();
    drop(store);
    std::fs::remove_file(dir.path().join("index.redb")).unwrap();
    let store = open(dir.path(), &cfg);
    assert_log_is(&store, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_the_rollover_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(64 * 1024);
    let (store, plan) = open_faulty(dir.path(), &cfg);
    let mut acked = Vec::new();
    seed(&store, &mut acked).await;

    // With no space left, appends that fit the preallocated segment still succeed; the
    // one that needs a new segment fails with `disk_full` and writes nothing.
    plan.disk_full.store(true, Ordering::SeqCst);
    let mut n = 4;
    let err = loop {
        assert!(n < 200, "64 KiB segment never filled up");
        let result = append(
            &store,
            "order-1",
            expected_after(&acked, "order-1"),
            vec![event("order-1", n, 1000)],
        )
        .await;
        match result {
            Ok(events) => acked.extend(events),
            Err(e) => break storage_error(Err(e)),
        }
        n += 1;
    };
    assert_eq!(err.kind, StorageErrorKind::DiskFull, "{err:?}");
    assert_eq!(err.code(), ErrorCode::DiskFull);
    assert_eq!(err.code().as_str(), "disk_full");
    assert!(acked.len() > 40, "only {} events fit 64 KiB", acked.len());
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "a failed rollover left a segment file behind"
    );
    assert_log_is(&store, &acked).await;
    // Still full: refused again the same way (a full disk does not poison the writer).
    let err = storage_error(
        append(
            &store,
            "order-1",
            expected_after(&acked, "order-1"),
            vec![event("order-1", n, 1000)],
        )
        .await,
    );
    assert_eq!(err.kind, StorageErrorKind::DiskFull, "{err:?}");

    // Space is freed: appends continue, in a new segment, right after the acknowledged
    // events.
    plan.disk_full.store(false, Ordering::SeqCst);
    for i in 0..5 {
        let expected = expected_after(&acked, "order-1");
        append_ok(
            &store,
            &mut acked,
            "order-1",
            expected,
            vec![event("order-1", n + i, 1000)],
        )
        .await;
    }
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_log_is(&store, &acked).await;

    store.shutdown();
    drop(store);
    let store = open(dir.path(), &cfg);
    assert_log_is(&store, &acked).await;
}

/// Tears the next write after `torn_bytes` bytes, "crashes" (shuts down without writing
/// again), and checks the reopened store holds exactly the acknowledged events.
async fn torn_write_then_crash(torn_bytes: impl Fn(&[eventum_core::NewEvent]) -> u64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1024 * 1024);
    let (store, plan) = open_faulty(dir.path(), &cfg);
    let mut acked = Vec::new();
    seed(&store, &mut acked).await;
    let segment = segment_files(dir.path()).pop().unwrap();
    let (_, end) = record_offsets(&segment);

    let batch: Vec<_> = (4..7).map(|n| event("order-1", n, 300)).collect();
    plan.torn_write_bytes
        .store(torn_bytes(&batch), Ordering::SeqCst);
    let err = storage_error(append(&store, "order-1", ExpectedVersion::Exact(3), batch).await);
    assert_eq!(err.kind, StorageErrorKind::Io, "{err:?}");
    assert_log_is(&store, &acked).await;
    // The crash: nothing else is written to the log.
    store.shutdown();
    drop(store);

    let report = eventum_log::verify(dir.path(), false).unwrap();
    assert_eq!(
        report,
        VerifyReport {
            segments: 1,
            events: acked.len() as u64,
            head_position: Some(acked.len() as u64 - 1),
            corruption: None,
            torn_tail_at: Some((segment.clone(), end)),
            repaired: false,
        },
        "the torn bytes should be reported as a torn tail right after the last acknowledged record"
    );

    let store = open(dir.path(), &cfg);
    assert_log_is(&store, &acked).await;
    append_ok(
        &store,
        &mut acked,
        "order-1",
        ExpectedVersion::Exact(3),
        vec![event("order-1", 4, 20)],
    )
    .await;
    assert_eq!(
        (
            acked.last().unwrap().version,
            acked.last().unwrap().position
        ),
        (4, 5)
    );
    append_ok(
        &store,
        &mut acked,
        "user-7",
        ExpectedVersion::Exact(0),
        vec![event("user-7", 1, 20)],
    )
    .await;
    store.shutdown();
    drop(store);
    let report = eventum_log::verify(dir.path(), false).unwrap();
    assert!(
        report.torn_tail_at.is_none() && report.is_healthy(),
        "{report:?}"
    );
    let store = open(dir.path(), &cfg);
    assert_log_is(&store, &acked).await;
    let read = within(
        "read_stream",
        store.read_stream(&stream("order-1"), None, ReadDirection::Forward, 100),
    )
    .await
    .unwrap();
    assert_eq!(read.len(), 5);
}

fn record_len(e: &eventum_core::NewEvent) -> u64 {
    encoded_len("order-1", e.event_type(), e.data(), e.metadata()) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_write_inside_the_first_record_is_truncated_on_reopen() {
    torn_write_then_crash(|batch| record_len(&batch[0]) / 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_write_after_whole_records_of_a_batch_drops_the_whole_batch() {
    // The first two records of the failed batch reached the file whole; keeping them
    // would make half of a failed append visible.
    torn_write_then_crash(|batch| record_len(&batch[0]) + record_len(&batch[1]) + 50).await;
}
