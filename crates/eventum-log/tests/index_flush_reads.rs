//! Reads racing the index flusher: with a memtable of a few entries, the flusher thread
//! writes snapshots to the index file while appends go on and readers read. Every read,
//! whenever it lands (before a flush's commit, between the commit and the removal of the
//! flushed entries, after), sees each event exactly once and in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eventum_core::{EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName};
use eventum_log::{LogConfig, LogStore};

const STREAMS: u64 = 12;
const APPENDS: u64 = 1500;

fn name(n: u64) -> StreamName {
    StreamName::new(format!("flush{}-{n}", n % 3)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_during_background_flushes_sees_each_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_memtable_events_max: 5,
        ..LogConfig::default()
    };
    let store = LogStore::open(dir.path(), config).unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let mut readers = Vec::new();
    for r in 0..3u64 {
        let (store, done) = (store.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            let mut n = r;
            while !done.load(Ordering::SeqCst) {
                n = (n + 1) % STREAMS;
                let forward = store
                    .read_stream(&name(n), None, ReadDirection::Forward, 10_000)
                    .await;
                if let Ok(events) = forward {
                    for (i, e) in events.iter().enumerate() {
                        assert_eq!(e.version, i as u64, "stream {} forward: {events:?}", n);
                    }
                }
                let backward = store
                    .read_stream(&name(n), None, ReadDirection::Backward, 10_000)
                    .await;
                if let Ok(events) = backward {
                    let last = events.len() as u64;
                    for (i, e) in events.iter().enumerate() {
                        assert_eq!(e.version, last - 1 - i as u64, "stream {n} backward");
                    }
                }
                let all = store
                    .read_all(None, ReadDirection::Forward, 10_000)
                    .await
                    .unwrap();
                for (i, e) in all.iter().enumerate() {
                    assert_eq!(e.position, i as u64, "$all");
                }
                let category = store
                    .read_category(&format!("flush{}", n % 3), 0, 10_000)
                    .await
                    .unwrap();
                assert!(
                    category.windows(2).all(|w| w[0].position < w[1].position),
                    "category positions strictly increase"
                );
                reads += 1;
            }
            reads
        }));
    }

    for i in 0..APPENDS {
        let events = (0..1 + i % 3)
            .map(|_| NewEvent::from_json("Ping", "{}").unwrap())
            .collect();
        store
            .append(&name(i % STREAMS), ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(
            reader.await.unwrap() > 0,
            "every reader read while appends ran"
        );
    }

    // And at rest, after the last flushes, everything is there exactly once.
    let all = store
        .read_all(None, ReadDirection::Forward, 10_000)
        .await
        .unwrap();
    let expected: u64 = (0..APPENDS).map(|i| 1 + i % 3).sum();
    assert_eq!(all.len() as u64, expected);
    for n in 0..STREAMS {
        let events = store
            .read_stream(&name(n), None, ReadDirection::Forward, 10_000)
            .await
            .unwrap();
        let written: u64 = (0..APPENDS)
            .filter(|i| i % STREAMS == n)
            .map(|i| 1 + i % 3)
            .sum();
        assert_eq!(events.len() as u64, written, "stream {n}");
    }
    store.shutdown();
}

/// A stream, once acknowledged, is found by every later read, whichever layer holds it
/// at that moment (the memtable, the memtable and the file between a commit and the
/// removal, or only the file through the shared view renewed after each commit). Every
/// append creates a new stream, so each read of an older one lands on a row a flush may
/// just have moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_stream_is_found_by_every_later_read_across_flushes() {
    const NEW_STREAMS: u64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_memtable_events_max: 3,
        ..LogConfig::default()
    };
    let store = LogStore::open(dir.path(), config).unwrap();
    let acknowledged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let stream = |n: u64| StreamName::new(format!("fresh-{n}")).unwrap();

    let mut readers = Vec::new();
    for r in 0..2u64 {
        let (store, done, acknowledged) = (store.clone(), done.clone(), acknowledged.clone());
        readers.push(tokio::spawn(async move {
            let mut checked = 0u64;
            let mut step = r;
            while !done.load(Ordering::SeqCst) {
                let count = acknowledged.load(Ordering::SeqCst);
                if count == 0 {
                    tokio::task::yield_now().await;
                    continue;
                }
                // The newest one (most likely mid-flush) and one spread over the rest.
                step = step
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                for n in [count - 1, (step >> 33) % count] {
                    let events = store
                        .read_stream(&stream(n), None, ReadDirection::Forward, 10)
                        .await
                        .unwrap_or_else(|e| panic!("stream {n} of {count} acknowledged: {e}"));
                    assert_eq!(events.len(), 2, "stream {n}");
                    let state = store.stream_state(&stream(n)).await.unwrap();
                    assert_eq!(
                        state.version,
                        eventum_core::ActualVersion::from_option(Some(1)),
                        "stream {n}"
                    );
                    checked += 1;
                }
            }
            checked
        }));
    }

    for n in 0..NEW_STREAMS {
        let events = (0..2)
            .map(|_| NewEvent::from_json("Ping", "{}").unwrap())
            .collect();
        store
            .append(&stream(n), ExpectedVersion::NoStream, events)
            .await
            .unwrap();
        acknowledged.store(n + 1, Ordering::SeqCst);
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "every reader checked streams");
    }
    // After a reopen the writer knows no stream and finds them in the index: creating
    // one again is a conflict.
    store.shutdown();
    drop(store);
    let store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    for n in [0, NEW_STREAMS / 2, NEW_STREAMS - 1] {
        let again = store
            .append(
                &stream(n),
                ExpectedVersion::NoStream,
                vec![NewEvent::from_json("Ping", "{}").unwrap()],
            )
            .await;
        assert!(
            matches!(
                again,
                Err(eventum_core::AppendError::WrongExpectedVersion { .. })
            ),
            "stream {n}: {again:?}"
        );
    }
    store.shutdown();
}
