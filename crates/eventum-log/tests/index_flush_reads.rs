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
