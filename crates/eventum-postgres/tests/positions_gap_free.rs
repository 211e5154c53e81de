//! Proves global positions are gap-free and in commit order under concurrency: many
//! writers on two store instances (as two processes would be) append to the same schema
//! while live subscribers and a polling `$all` reader on both instances must see every
//! position exactly once, in order, never a later position before an earlier one.

mod common;

use std::sync::Arc;
use std::time::Duration;

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName, SubscriptionFrom,
    SubscriptionTarget,
};
use futures::StreamExt;

const WRITERS: usize = 24;
const APPENDS_PER_WRITER: usize = 40;

/// Follows `$all` by reading forward from its cursor, asserting each page continues the
/// previous one exactly; returns once `total` events were seen.
async fn poll_all(store: Arc<dyn EventStore>, total: u64) {
    let mut next = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while next < total {
        assert!(
            std::time::Instant::now() < deadline,
            "the $all reader saw only {next} of {total} positions within 60 s"
        );
        let page = store
            .read_all(Some(next), ReadDirection::Forward, 500)
            .await
            .expect("read $all");
        for e in &page {
            assert_eq!(
                e.position, next,
                "a reader saw position {} while {next} was not yet visible (a sequence gap)",
                e.position
            );
            next += 1;
        }
        if page.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Consumes a subscription from 0 and asserts positions 0..total arrive exactly once.
async fn follow(store: Arc<dyn EventStore>, total: u64) {
    let mut sub = store.subscribe(SubscriptionTarget::All, SubscriptionFrom::Position(0));
    for expected in 0..total {
        let e = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription stalled before position {expected}"))
            .expect("subscription ended")
            .expect("subscription failed");
        assert_eq!(e.position, expected, "subscription skipped or repeated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_live_subscribers_see_every_position_once_in_order() {
    let config = common::fresh_config();
    let guard = common::Guard {
        store: None,
        config: config.clone(),
    };
    let a: Arc<dyn EventStore> = common::open(config.clone()).await;
    let b: Arc<dyn EventStore> = common::open(config.clone()).await;
    // Batches of 1..=4 events: sum over writers of (i % 4 + 1) per append.
    let total: u64 = (0..WRITERS)
        .map(|w| {
            (0..APPENDS_PER_WRITER)
                .map(|i| ((w + i) % 4 + 1) as u64)
                .sum::<u64>()
        })
        .sum();

    // Subscribers start before the writers so that most of the run is live, not catch-up.
    let mut checks = Vec::new();
    for store in [a.clone(), b.clone()] {
        checks.push(tokio::spawn(follow(store.clone(), total)));
        checks.push(tokio::spawn(poll_all(store, total)));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        writers.push(tokio::spawn(async move {
            for i in 0..APPENDS_PER_WRITER {
                // Mostly disjoint streams, as different aggregates are: nothing but the
                // position assignment orders these transactions, which is where a
                // sequence lets commits overtake each other. Every fourth append goes to a
                // shared stream so stream-row contention is covered too.
                let stream = if i % 4 == 3 {
                    StreamName::new(format!("gap-shared-{}", i % 3)).unwrap()
                } else {
                    StreamName::new(format!("gap-{w}")).unwrap()
                };
                let batch = (0..(w + i) % 4 + 1)
                    .map(|n| NewEvent::from_json("T", format!("{{\"w\":{w},\"n\":{n}}}")).unwrap())
                    .collect();
                store
                    .append(&stream, ExpectedVersion::Any, batch)
                    .await
                    .expect("append");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    for c in checks {
        tokio::time::timeout(Duration::from_secs(60), c)
            .await
            .expect("checker finished")
            .expect("checker passed");
    }
    assert_eq!(a.head_position(), Some(total - 1));
    drop((a, b));
    drop(guard);
}
