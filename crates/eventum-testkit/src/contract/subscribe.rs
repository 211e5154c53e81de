//! Contract cases for subscriptions: catch-up then live for `$all`, a stream and a
//! category, from the start, the end or the middle; no gap, no duplicate, order kept,
//! even with concurrent writers and a subscriber that stops polling for a while.

use std::sync::Arc;
use std::time::Duration;

use eventum_core::{ExpectedVersion, SubscriptionFrom, SubscriptionTarget};

use super::*;

pub async fn subscribe_all_catch_up_then_live(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    for name in ["s-1", "s-2", "s-1", "t-1", "s-2"] {
        append_ok(s, name, ExpectedVersion::Any, events(1)).await;
    }
    let mut sub = s.subscribe(SubscriptionTarget::All, SubscriptionFrom::Position(0));
    let caught_up = take_events(&mut sub, 5).await;
    assert_eq!(
        caught_up,
        read_all_events(s).await,
        "catch-up delivers the recorded events"
    );
    append_ok(s, "s-3", ExpectedVersion::Any, events(2)).await;
    append_ok(s, "s-1", ExpectedVersion::Any, events(1)).await;
    let live = take_events(&mut sub, 3).await;
    assert_eq!(
        positions(&live),
        vec![5, 6, 7],
        "live events follow in order"
    );
    assert_eq!(
        live,
        read_all_events(s).await[5..],
        "live events equal the recorded ones"
    );
    assert_quiet(&mut sub).await;
}

pub async fn subscribe_from_end(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "e-1", ExpectedVersion::Any, events(3)).await;
    let mut sub = s.subscribe(SubscriptionTarget::All, SubscriptionFrom::End);
    let mut cat = s.subscribe(
        SubscriptionTarget::Category("e".into()),
        SubscriptionFrom::End,
    );
    append_ok(s, "f-1", ExpectedVersion::Any, events(1)).await;
    append_ok(s, "e-1", ExpectedVersion::Any, events(2)).await;
    assert_eq!(
        positions(&take_events(&mut sub, 3).await),
        vec![3, 4, 5],
        "only new events"
    );
    assert_eq!(positions(&take_events(&mut cat, 2).await), vec![4, 5]);
    assert_quiet(&mut sub).await;
    assert_quiet(&mut cat).await;
}

pub async fn subscribe_from_middle(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "m-1", ExpectedVersion::Any, events(6)).await;
    append_ok(s, "m-2", ExpectedVersion::Any, events(4)).await;
    let mut sub = s.subscribe(SubscriptionTarget::All, SubscriptionFrom::Position(4));
    assert_eq!(
        positions(&take_events(&mut sub, 6).await),
        (4..10).collect::<Vec<_>>()
    );
    let mut stream_sub = s.subscribe(
        SubscriptionTarget::Stream(stream("m-1")),
        SubscriptionFrom::Position(3),
    );
    assert_eq!(
        versions(&take_events(&mut stream_sub, 3).await),
        vec![3, 4, 5]
    );
    append_ok(s, "m-1", ExpectedVersion::Exact(5), events(1)).await;
    assert_eq!(positions(&take_events(&mut sub, 1).await), vec![10]);
    assert_eq!(versions(&take_events(&mut stream_sub, 1).await), vec![6]);
    assert_quiet(&mut sub).await;
    assert_quiet(&mut stream_sub).await;
}

pub async fn subscribe_stream(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    for name in ["x-1", "x-2", "x-1", "x-1", "x-2"] {
        append_ok(s, name, ExpectedVersion::Any, events(1)).await;
    }
    let target = SubscriptionTarget::Stream(stream("x-1"));
    let mut sub = s.subscribe(target, SubscriptionFrom::Position(0));
    let caught_up = take_events(&mut sub, 3).await;
    assert_eq!(
        caught_up,
        read_stream_events(s, "x-1").await,
        "only that stream's events"
    );
    append_ok(s, "x-2", ExpectedVersion::Any, events(1)).await;
    append_ok(s, "x-1", ExpectedVersion::Exact(2), events(2)).await;
    let live = take_events(&mut sub, 2).await;
    assert_eq!(versions(&live), vec![3, 4]);
    assert!(live.iter().all(|e| e.stream == "x-1"));
    assert_quiet(&mut sub).await;
}

pub async fn subscribe_category(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    for name in ["c-1", "d-1", "c-2", "cc-1", "c"] {
        append_ok(s, name, ExpectedVersion::Any, events(1)).await;
    }
    let target = SubscriptionTarget::Category("c".into());
    let mut sub = s.subscribe(target, SubscriptionFrom::Position(0));
    assert_eq!(positions(&take_events(&mut sub, 3).await), vec![0, 2, 4]);
    append_ok(s, "cc-2", ExpectedVersion::Any, events(1)).await;
    append_ok(s, "c-9", ExpectedVersion::Any, events(1)).await;
    let live = take_events(&mut sub, 1).await;
    assert_eq!((live[0].position, live[0].stream.as_str()), (6, "c-9"));
    assert_quiet(&mut sub).await;
}

const WRITERS: u64 = 8;

/// Runs `WRITERS` tasks, each appending `per_writer` batches of `batch` events to its own
/// stream (`conc-w` for even writers, `other-w` for odd ones) with exact versions.
async fn concurrent_appends(s: Arc<dyn EventStore>, per_writer: u64, batch: u64) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let name = if w % 2 == 0 {
                format!("conc-{w}")
            } else {
                format!("other-{w}")
            };
            let mut expected = ExpectedVersion::NoStream;
            for _ in 0..per_writer {
                let r = append_ok(&*s, &name, expected, events(batch)).await;
                expected = ExpectedVersion::Exact(r.next_expected_version);
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task panicked");
    }
}

pub async fn subscribe_under_concurrent_appenders(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = t.store.clone();
    let mut all = s.subscribe(SubscriptionTarget::All, SubscriptionFrom::Position(0));
    let mut cat = s.subscribe(
        SubscriptionTarget::Category("conc".into()),
        SubscriptionFrom::Position(0),
    );
    let total = (WRITERS * 200) as usize;
    let writers = tokio::spawn(concurrent_appends(s.clone(), 200, 1));
    // The subscriber runs while the writers write.
    let seen = take_events(&mut all, total).await;
    bounded("writers", writers).await.expect("writers panicked");
    assert_eq!(
        positions(&seen),
        (0..total as u64).collect::<Vec<_>>(),
        "no gap, no duplicate, in order"
    );
    assert_eq!(
        seen,
        read_all_events(&*s).await,
        "delivered events equal the recorded ones"
    );
    let expected_cat: Vec<_> = seen
        .iter()
        .filter(|e| e.category() == "conc")
        .cloned()
        .collect();
    assert_eq!(
        take_events(&mut cat, expected_cat.len()).await,
        expected_cat
    );
    assert_quiet(&mut all).await;
    assert_quiet(&mut cat).await;
}

/// Subscribers that attach while writers write, from the start and from the end: a
/// backend that publishes live events only while someone listens must not lose the ones
/// committed around an attach.
pub async fn subscribers_attaching_mid_stream_miss_nothing(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = t.store.clone();
    // One last event after the writers, so that a subscriber from the end always has
    // something to receive, however fast the writers were.
    let total = WRITERS * 300 + 1;
    let writers = tokio::spawn(concurrent_appends(s.clone(), 300, 1));
    let mut readers = Vec::new();
    for round in 0..6u64 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        let from = if round % 2 == 0 {
            SubscriptionFrom::Position(0)
        } else {
            SubscriptionFrom::End
        };
        let mut sub = s.subscribe(SubscriptionTarget::All, from);
        readers.push(tokio::spawn(async move {
            let first = take_events(&mut sub, 1).await;
            let rest = take_events(&mut sub, (total - 1 - first[0].position) as usize).await;
            assert_quiet(&mut sub).await;
            (round, first.into_iter().chain(rest).collect::<Vec<_>>())
        }));
    }
    bounded("writers", writers).await.expect("writers panicked");
    append_ok(&*s, "last", ExpectedVersion::NoStream, events(1)).await;
    let recorded = read_all_events(&*s).await;
    assert_eq!(recorded.len() as u64, total);
    for reader in readers {
        let (round, seen) = bounded("subscriber", reader)
            .await
            .expect("subscriber panicked");
        let start = seen[0].position as usize;
        if round % 2 == 0 {
            assert_eq!(
                start, 0,
                "subscriber {round} from the start began at {start}"
            );
        }
        assert_eq!(
            seen,
            recorded[start..],
            "subscriber {round} saw a gap, a duplicate or a changed event"
        );
    }
}

pub async fn slow_subscriber_neither_blocks_nor_misses(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = t.store.clone();
    append_ok(&*s, "first", ExpectedVersion::NoStream, events(1)).await;
    let mut sub = s.subscribe(SubscriptionTarget::All, SubscriptionFrom::Position(0));
    // Poll once so the subscription is live, then stop polling while writers run far
    // past any live buffer (more batches than the usual 1024-batch broadcast).
    assert_eq!(positions(&take_events(&mut sub, 1).await), vec![0]);
    let (per_writer, batch) = (160, 2);
    let started = std::time::Instant::now();
    let appends = tokio::time::timeout(WAIT * 2, concurrent_appends(s.clone(), per_writer, batch));
    appends
        .await
        .expect("appends stalled while a subscriber was not polling");
    let total = (WRITERS * per_writer * batch) as usize;
    assert_eq!(
        s.head_position(),
        Some(total as u64),
        "every append was acknowledged"
    );
    eprintln!(
        "{total} events appended in {:?} with an idle subscriber",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let rest = take_events(&mut sub, total).await;
    assert_eq!(
        positions(&rest),
        (1..=total as u64).collect::<Vec<_>>(),
        "resumed without gap"
    );
    assert_eq!(
        rest,
        read_all_events(&*s).await[1..],
        "resumed events equal the recorded ones"
    );
    assert_quiet(&mut sub).await;
}
