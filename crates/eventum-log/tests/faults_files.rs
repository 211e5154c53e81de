//! Damage done to a data directory's files between a shutdown and a reopen: a torn tail,
//! a flipped bit (with and without the index), a second open of a locked directory and a
//! deleted index. Each test checks that damage is reported precisely, that no corrupt
//! event is ever served, and what survives.

mod fault_support;

use eventum_core::{
    AppendError, EventStore, ExpectedVersion, ReadDirection, ReadError, StorageError,
    StreamMetadata, StreamName,
};
use eventum_log::codec::RECORD_HEADER_BYTES;
use eventum_log::{LogConfig, LogStore, OpenError};
use fault_support::*;

/// Appends `count` events round-robin over `streams`, in singles and small batches.
async fn fill(store: &LogStore, acked: &mut Vec<Acked>, streams: &[&str], count: u64, pad: usize) {
    let mut n = 0;
    while n < count {
        let name = streams[(n as usize / 3) % streams.len()];
        let size = (1 + n % 3).min(count - n);
        let expected = expected_after(acked, name);
        let events = (n..n + size).map(|i| event(name, i, pad)).collect();
        append_ok(store, acked, name, expected, events).await;
        n += size;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_reported_by_verify_and_truncated_on_open() {
    // Two kinds of remains a crash mid-write leaves: the start of a record (a valid
    // length, then nothing) and bytes that are no record at all.
    for garbage in ["partial record", "noise"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(1024 * 1024);
        let store = open(dir.path(), &cfg);
        let mut acked = Vec::new();
        fill(&store, &mut acked, &["order-1", "order-2"], 30, 50).await;
        store.shutdown();
        drop(store);

        let segment = segment_files(dir.path()).pop().unwrap();
        let (offsets, end) = record_offsets(&segment);
        assert_eq!(offsets.len(), 30);
        let bytes = match garbage {
            "partial record" => {
                let last = std::fs::read(&segment).unwrap()
                    [*offsets.last().unwrap() as usize..end as usize]
                    .to_vec();
                last[..RECORD_HEADER_BYTES + 7].to_vec()
            }
            _ => vec![0xA5; 37],
        };
        write_at(&segment, end, &bytes);

        let report = eventum_log::verify(dir.path(), false).unwrap();
        assert_eq!(
            report.torn_tail_at,
            Some((segment.clone(), end)),
            "{garbage}"
        );
        assert!(
            report.corruption.is_none() && report.is_healthy(),
            "{report:?}"
        );
        assert_eq!(report.events, 30);

        let store = open(dir.path(), &cfg);
        assert_log_is(&store, &acked).await;
        let expected = expected_after(&acked, "order-1");
        append_ok(
            &store,
            &mut acked,
            "order-1",
            expected,
            vec![event("order-1", 99, 10)],
        )
        .await;
        assert_eq!(acked.last().unwrap().position, 30, "{garbage}");
        store.shutdown();
        drop(store);
        let report = eventum_log::verify(dir.path(), false).unwrap();
        assert_eq!(report.torn_tail_at, None, "{garbage}: truncated on open");
        assert_eq!(report.events, 31);
        let store = open(dir.path(), &cfg);
        assert_log_is(&store, &acked).await;
    }
}

/// Fills a store with small segments, shuts it down and flips a bit in the data of the
/// event at `victim`. Returns the acknowledged events, the segment and the record offset.
async fn corrupt_one(
    dir: &std::path::Path,
    cfg: &LogConfig,
    victim: u64,
) -> (Vec<Acked>, std::path::PathBuf, u64) {
    let store = open(dir, cfg);
    let mut acked = Vec::new();
    fill(
        &store,
        &mut acked,
        &["order-1", "order-2", "user-1"],
        200,
        900,
    )
    .await;
    store.shutdown();
    drop(store);
    let segments = segment_files(dir);
    assert!(segments.len() >= 3, "only {} segments", segments.len());
    let segment = segments[0].clone();
    let (offsets, _) = record_offsets(&segment);
    let offset = offsets[victim as usize];
    let a = &acked[victim as usize];
    let data_at = offset
        + (RECORD_HEADER_BYTES + a.stream.len() + a.event_type.len()) as u64
        + a.data.len() as u64 / 2;
    flip_bit(&segment, data_at, 3);
    (acked, segment, offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bit_mid_log_refuses_open_and_verify_repairs() {
    // `fill` appends {0}, {1,2}, {3}, {4,5}, ...: event 21 starts its append, event 20 is
    // the second of the append {19,20}. An append is atomic, so a repair keeps the events
    // before the append holding the corrupt event.
    for (victim, kept_events) in [(21u64, 21usize), (20, 19)] {
        flipped_bit_mid_log(victim, kept_events).await;
    }
}

async fn flipped_bit_mid_log(victim: u64, kept_events: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(64 * 1024);
    let (acked, segment, offset) = corrupt_one(dir.path(), &cfg, victim).await;
    // Without the index, open scans the whole log and meets the damage.
    std::fs::remove_file(dir.path().join("index.redb")).unwrap();

    match LogStore::open(dir.path(), cfg.clone()) {
        Err(OpenError::Corrupt {
            file,
            offset: at,
            reason,
        }) => {
            assert_eq!((file.as_path(), at), (segment.as_path(), offset));
            assert!(reason.contains("checksum"), "{reason}");
        }
        Err(other) => panic!("expected OpenError::Corrupt, got {other}"),
        Ok(_) => panic!("a log with a corrupt record in the middle opened"),
    }

    let report = eventum_log::verify(dir.path(), false).unwrap();
    let (file, at, _) = report
        .corruption
        .clone()
        .expect("verify finds the corruption");
    assert_eq!((file, at), (segment.clone(), offset), "victim {victim}");
    assert!(!report.is_healthy());
    assert!(!report.repaired);
    assert_eq!(report.events, kept_events as u64, "victim {victim}");

    let report = eventum_log::verify(dir.path(), true).unwrap();
    assert!(report.repaired && report.is_healthy(), "{report:?}");
    assert_eq!(segment_files(dir.path()), vec![segment.clone()]);
    let report = eventum_log::verify(dir.path(), false).unwrap();
    assert_eq!((report.corruption, report.torn_tail_at), (None, None));
    assert_eq!(report.events, kept_events as u64);

    // Exactly the events before the corrupt one's append survive, and appends continue
    // right after them.
    let store = open(dir.path(), &cfg);
    let mut kept = acked[..kept_events].to_vec();
    assert_log_is(&store, &kept).await;
    let expected = expected_after(&kept, "user-1");
    append_ok(
        &store,
        &mut kept,
        "user-1",
        expected,
        vec![event("user-1", 1000, 10)],
    )
    .await;
    assert_eq!(kept.last().unwrap().position, kept_events as u64);
    assert_log_is(&store, &kept).await;
}

fn read_storage_error<T: std::fmt::Debug>(result: Result<T, ReadError>) -> StorageError {
    match result {
        Err(ReadError::Storage(e)) => e,
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bit_with_index_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    // A small dedupe window: open reads only the newest events to fill it, so the old
    // corrupt record is first met by a read.
    let cfg = LogConfig {
        dedupe_window_events: 8,
        ..config(64 * 1024)
    };
    let victim = 20u64;
    let (acked, segment, offset) = corrupt_one(dir.path(), &cfg, victim).await;
    let a = acked[victim as usize].clone();
    let name = stream(&a.stream);

    let store = open(dir.path(), &cfg);
    let all = |from, direction, limit| store.read_all(from, direction, limit);
    let err =
        read_storage_error(within("read_all", all(Some(0), ReadDirection::Forward, 100)).await);
    assert_corrupt_at(&err, &segment, offset);
    let err =
        read_storage_error(within("read_all", all(Some(victim), ReadDirection::Forward, 1)).await);
    assert_corrupt_at(&err, &segment, offset);
    let err =
        read_storage_error(within("read_all", all(None, ReadDirection::Backward, 1000)).await);
    assert_corrupt_at(&err, &segment, offset);
    // What lies before it is still served.
    let before = within(
        "read_all",
        all(Some(0), ReadDirection::Forward, victim as usize),
    )
    .await
    .unwrap();
    assert_eq!(before.len(), victim as usize);

    let err = read_storage_error(
        within(
            "read_stream",
            store.read_stream(&name, Some(a.version), ReadDirection::Forward, 1),
        )
        .await,
    );
    assert_corrupt_at(&err, &segment, offset);
    let err = read_storage_error(
        within(
            "read_stream",
            store.read_stream(&name, None, ReadDirection::Forward, 1000),
        )
        .await,
    );
    assert_corrupt_at(&err, &segment, offset);
    let err =
        read_storage_error(within("read_category", store.read_category("order", 0, 1000)).await);
    assert_corrupt_at(&err, &segment, offset);
    // The rest of the stream, read by version through the index, is unharmed.
    let after = within(
        "read_stream",
        store.read_stream(&name, Some(a.version + 1), ReadDirection::Forward, 1000),
    )
    .await
    .unwrap();
    let expected: Vec<_> = acked
        .iter()
        .filter(|e| e.stream == a.stream && e.version > a.version)
        .collect();
    assert_eq!(after.len(), expected.len());
    for (actual, expected) in after.iter().zip(expected) {
        assert_event_is(actual, expected);
    }
    store.shutdown();
    drop(store);

    // With the whole log in the dedupe window, open itself reads the corrupt record and
    // refuses, naming it.
    let err = LogStore::open(dir.path(), config(64 * 1024))
        .err()
        .expect("open with the corrupt record in the dedupe window");
    let message = err.to_string();
    assert!(
        message.contains(&segment.display().to_string())
            && message.contains(&format!("byte offset {offset}")),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_is_locked_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1024 * 1024);
    let store = open(dir.path(), &cfg);
    let mut acked = Vec::new();
    fill(&store, &mut acked, &["order-1"], 5, 10).await;

    match LogStore::open(dir.path(), cfg.clone()) {
        Err(OpenError::Locked { dir: locked }) => assert_eq!(locked, dir.path()),
        Err(other) => panic!("expected OpenError::Locked, got {other}"),
        Ok(_) => panic!("a second store opened a directory already in use"),
    }
    // verify must not read a log a store is writing.
    assert!(matches!(
        eventum_log::verify(dir.path(), false),
        Err(OpenError::Locked { .. })
    ));

    // `shutdown` alone releases the directory, even while the handle is still held.
    store.shutdown();
    let again = LogStore::open(dir.path(), cfg.clone()).expect("open after shutdown");
    assert_log_is(&again, &acked).await;
    // The old handle refuses work instead of writing beside the new one.
    let old = append(
        &store,
        "order-1",
        ExpectedVersion::Any,
        vec![event("order-1", 9, 1)],
    )
    .await;
    assert!(
        matches!(&old, Err(AppendError::Storage(e)) if e.kind == eventum_core::StorageErrorKind::Unavailable),
        "{old:?}"
    );
    drop(store);
    assert_log_is(&again, &acked).await;
}

/// Everything a reader can ask of the store about the streams of this test.
async fn snapshot(store: &LogStore) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["order-1", "order-2", "user-1", "never-1"] {
        let s = stream(name);
        out.push(format!("{name} state {:?}", store.stream_state(&s).await));
        for dir in [ReadDirection::Forward, ReadDirection::Backward] {
            out.push(format!(
                "{name} {dir:?} {:?}",
                store.read_stream(&s, None, dir, 100).await
            ));
        }
    }
    for name in ["$$order-1", "$$order-2"] {
        let s = StreamName::system(name).unwrap();
        out.push(format!("{name} state {:?}", store.stream_state(&s).await));
        out.push(format!(
            "{name} {:?}",
            store
                .read_stream(&s, None, ReadDirection::Forward, 100)
                .await
        ));
    }
    for category in ["order", "user", "$$order"] {
        out.push(format!(
            "category {category} {:?}",
            store.read_category(category, 0, 100).await
        ));
    }
    out.push(format!(
        "all {:?}",
        store.read_all(None, ReadDirection::Forward, 1000).await
    ));
    out.push(format!("head {:?}", store.head_position()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_index_is_rebuilt_with_metadata_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(64 * 1024);
    let store = open(dir.path(), &cfg);
    let mut acked = Vec::new();
    fill(
        &store,
        &mut acked,
        &["order-1", "order-2", "user-1"],
        90,
        900,
    )
    .await;
    within(
        "set_stream_metadata",
        store.set_stream_metadata(
            &stream("order-1"),
            StreamMetadata {
                max_count: Some(4),
                max_age_s: None,
            },
        ),
    )
    .await
    .unwrap();
    let expected = expected_after(&acked, "order-2");
    let ExpectedVersion::Exact(_) = expected else {
        panic!("order-2 has events")
    };
    within(
        "delete_stream",
        store.delete_stream(&stream("order-2"), expected),
    )
    .await
    .unwrap();
    let before = within("snapshot", snapshot(&store)).await;
    assert!(segment_files(dir.path()).len() >= 2);
    store.shutdown();
    drop(store);

    std::fs::remove_file(dir.path().join("index.redb")).unwrap();
    let store = open(dir.path(), &cfg);
    assert!(dir.path().join("index.redb").exists());
    let after = within("snapshot", snapshot(&store)).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
    assert_eq!(before.len(), after.len());

    // The rebuilt index drives the writer too: the deleted stream stays closed, the
    // others continue at their versions.
    let deleted = append(
        &store,
        "order-2",
        ExpectedVersion::Any,
        vec![event("order-2", 500, 1)],
    )
    .await;
    assert!(
        matches!(deleted, Err(AppendError::StreamDeleted { .. })),
        "{deleted:?}"
    );
    let expected = expected_after(&acked, "order-1");
    let head = store.head_position().unwrap();
    let appended = append(&store, "order-1", expected, vec![event("order-1", 501, 1)])
        .await
        .unwrap();
    assert_eq!(appended[0].position, head + 1);
}
