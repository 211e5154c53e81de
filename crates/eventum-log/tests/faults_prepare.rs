//! Readying the active segment ahead of the writer (zeros written over the allocated
//! range past the last record, `SegmentFile::prepare`): it never touches a record, it
//! leaves nothing but zeros past the tail, and a failure to do it costs only speed.

mod fault_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use eventum_core::ExpectedVersion;
use eventum_log::LogConfig;
use fault_support::*;

/// Small segments and chunks, so that a few thousand events cross several chunks and a
/// rollover.
fn readying_config() -> LogConfig {
    LogConfig {
        prepare_ahead_bytes: 256 * 1024,
        prepare_chunk_bytes: 64 * 1024,
        ..config(2 * 1024 * 1024)
    }
}

/// Asserts that every byte of every segment past its last whole record is zero.
fn assert_zeros_past_the_tail(dir: &std::path::Path) {
    for segment in segment_files(dir) {
        let (_, end) = record_offsets(&segment);
        let bytes = std::fs::read(&segment).expect("read segment");
        if let Some(i) = bytes[end as usize..].iter().position(|b| *b != 0) {
            panic!(
                "{} holds a non-zero byte at {} past its last record (which ends at {end})",
                segment.display(),
                end as usize + i
            );
        }
    }
}

#[tokio::test]
async fn readying_ahead_never_touches_a_record_and_leaves_zeros_past_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open_faulty(dir.path(), &readying_config());
    let mut acked = Vec::new();
    append_varied(&store, &mut acked, 80, Some(4)).await;
    assert!(
        plan.prepared_bytes.load(Ordering::SeqCst) >= 256 * 1024,
        "the writer readied nothing ahead: the test proves nothing"
    );
    assert!(segment_files(dir.path()).len() >= 2, "no rollover happened");
    assert_log_is(&store, &acked).await;
    store.shutdown();
    drop(store);
    assert_zeros_past_the_tail(dir.path());
    let store = open(dir.path(), &readying_config());
    assert_log_is(&store, &acked).await;
    // Appends go on after the reopen, readying from the recovered tail.
    let mut more = acked.clone();
    append_ok(
        &store,
        &mut more,
        "order-0",
        expected_after(&acked, "order-0"),
        vec![event("order-0", 0, 50)],
    )
    .await;
    assert_log_is(&store, &more).await;
}

#[tokio::test]
async fn a_failed_readying_only_costs_speed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open_faulty(dir.path(), &readying_config());
    // The idle writer readies the fresh segment at once; let that finish, then fail
    // every later attempt (the rollovers below make new ones).
    tokio::time::sleep(Duration::from_millis(100)).await;
    plan.fail_prepare.store(true, Ordering::SeqCst);
    let readied = plan.prepared_bytes.load(Ordering::SeqCst);
    let mut acked = Vec::new();
    append_varied(&store, &mut acked, 80, Some(4)).await;
    assert!(segment_files(dir.path()).len() >= 2, "no rollover happened");
    assert_eq!(plan.prepared_bytes.load(Ordering::SeqCst), readied);
    assert_log_is(&store, &acked).await;
    append_ok(
        &store,
        &mut acked,
        "order-9",
        ExpectedVersion::NoStream,
        vec![event("order-9", 0, 10)],
    )
    .await;
    store.shutdown();
    drop(store);
    let store = open(dir.path(), &readying_config());
    assert_log_is(&store, &acked).await;
}
