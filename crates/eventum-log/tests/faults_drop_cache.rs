//! Dropping written pages from the page cache (`SegmentFile::drop_cached`): the writer
//! drops only pages far behind its offset, scans drop only the old parts of sealed
//! segments, and every event still reads back byte for byte, from the disk.

mod fault_support;

use eventum_log::LogConfig;
use fault_support::*;

const SEGMENT_BYTES: u64 = 2 * 1024 * 1024;
const KEEP_BYTES: u64 = 256 * 1024;

/// Small segments, a small cached tail and small steps, so that a few thousand events
/// cross several steps and rollovers.
fn dropping_config() -> LogConfig {
    LogConfig {
        cache_behind_bytes: KEEP_BYTES,
        cache_drop_chunk_bytes: 64 * 1024,
        ..config(SEGMENT_BYTES)
    }
}

fn dropped(plan: &eventum_log::disk::FaultPlan) -> Vec<(u64, u64)> {
    plan.dropped_ranges.lock().unwrap().clone()
}

#[tokio::test]
async fn the_writer_drops_only_whole_pages_far_behind_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open_faulty(dir.path(), &dropping_config());
    let mut acked = Vec::new();
    // ~8 MiB in all.
    append_varied(&store, &mut acked, 240, None).await;
    assert!(segment_files(dir.path()).len() >= 3, "too few rollovers");
    let by_writer = dropped(&plan);
    assert!(
        by_writer.iter().map(|(_, len)| len).sum::<u64>() >= 2 * 1024 * 1024,
        "the writer dropped too little to prove anything: {by_writer:?}"
    );
    // Before any read, only the writer dropped: whole pages, never within the cached
    // tail of a segment, and never within the active segment's tail.
    let (_, active_end) = record_offsets(segment_files(dir.path()).last().unwrap());
    for &(from, len) in &by_writer {
        assert_eq!(from % 4096, 0, "{from} is not on a page boundary");
        assert_eq!(len % 4096, 0, "{len} is not whole pages");
        assert!(
            from + len <= SEGMENT_BYTES - KEEP_BYTES,
            "dropped into a tail"
        );
    }
    let last = by_writer.last().unwrap();
    assert!(
        last.0 + last.1 <= active_end.saturating_sub(KEEP_BYTES) || last.0 + last.1 > active_end,
        "the last drop {last:?} reached into the active segment's cached tail (records end at {active_end})"
    );
    assert_log_is(&store, &acked).await;
    store.shutdown();
    drop(store);
    let store = open(dir.path(), &dropping_config());
    assert_log_is(&store, &acked).await;
}

#[tokio::test]
async fn a_scan_drops_the_old_parts_of_sealed_segments_and_reads_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open_faulty(dir.path(), &dropping_config());
    let mut acked = Vec::new();
    // ~8 MiB in all.
    append_varied(&store, &mut acked, 240, None).await;
    let before = dropped(&plan).len();
    // Twice: the second scan reads what the first one dropped.
    assert_log_is(&store, &acked).await;
    assert_log_is(&store, &acked).await;
    let by_scans = dropped(&plan).split_off(before);
    assert!(!by_scans.is_empty(), "the scans dropped nothing");
    for &(from, len) in &by_scans {
        assert_eq!(from % 4096, 0, "{from} is not on a page boundary");
        assert!(
            from + len <= SEGMENT_BYTES - KEEP_BYTES,
            "dropped into a tail"
        );
    }
}

#[tokio::test]
async fn keeping_zero_bytes_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cache_behind_bytes: 0,
        ..dropping_config()
    };
    let (store, plan) = open_faulty(dir.path(), &config);
    let mut acked = Vec::new();
    // ~8 MiB in all.
    append_varied(&store, &mut acked, 240, None).await;
    assert_log_is(&store, &acked).await;
    assert_eq!(dropped(&plan), vec![]);
}
