//! Contract cases for concurrent writers and durability: optimistic concurrency picks
//! exactly one winner per version, and (for durable backends) everything acknowledged
//! survives a reopen byte for byte.

use std::sync::Arc;

use eventum_core::{
    ActualVersion, AppendError, ExpectedVersion, NewEvent, ReadDirection, StreamMetadata,
};
use tokio::sync::Barrier;

use super::*;

pub async fn concurrent_exact_appends_one_winner_per_version(f: &dyn StoreFactory) {
    const TASKS: usize = 8;
    const ROUNDS: u64 = 25;
    let t = f.create().await;
    let s = t.store.clone();
    // Every round, all tasks race to append the next version; a barrier lines them up.
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (s, barrier) = (s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for round in 0..ROUNDS {
                let expected = match round {
                    0 => ExpectedVersion::NoStream,
                    r => ExpectedVersion::Exact(r - 1),
                };
                let e = event("Race", task as u64);
                let id = e.id();
                barrier.wait().await;
                let r = bounded(
                    "racing append",
                    s.append(&stream("race-1"), expected, vec![e]),
                )
                .await;
                outcomes.push((round, id, r));
            }
            outcomes
        }));
    }
    let mut winners = vec![Vec::new(); ROUNDS as usize];
    for task in tasks {
        for (round, id, r) in task.await.expect("racing task panicked") {
            match r {
                Ok(r) => {
                    assert_eq!(
                        r.next_expected_version, round,
                        "the winner writes the next version"
                    );
                    winners[round as usize].push(id);
                }
                Err(AppendError::WrongExpectedVersion { actual, .. }) => {
                    assert_eq!(
                        actual,
                        ActualVersion::Version(round),
                        "losers see the winner's version"
                    );
                }
                Err(other) => panic!("round {round}: unexpected error {other:?}"),
            }
        }
    }
    for (round, w) in winners.iter().enumerate() {
        assert_eq!(w.len(), 1, "round {round} had {} winners", w.len());
    }
    let evs = read_stream_events(&*s, "race-1").await;
    assert_eq!(
        versions(&evs),
        (0..ROUNDS).collect::<Vec<_>>(),
        "gap-free versions"
    );
    let ids: Vec<_> = evs.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        winners.concat(),
        "the stream holds exactly the winners, in order"
    );
    assert_eq!(
        read_all_events(&*s).await.len(),
        ROUNDS as usize,
        "losers wrote nothing"
    );
}

pub async fn durability_across_reopen(f: &dyn StoreFactory) {
    if !f.supports_reopen() {
        eprintln!("durability_across_reopen: skipped, the factory does not support reopen");
        return;
    }
    let t = f.create().await;
    let s = &*t.store;
    let big =
        NewEvent::from_json("Big", format!("{{ \"pad\": \"{}\" }}", "z".repeat(100_000))).unwrap();
    append_ok(
        s,
        "dur-1",
        ExpectedVersion::NoStream,
        vec![big, event("T", 1)],
    )
    .await;
    let exact_batch = events(2);
    let exact_result = append_ok(s, "dur-1", ExpectedVersion::Exact(1), exact_batch.clone()).await;
    append_ok(s, "dur-2", ExpectedVersion::Any, events(3)).await;
    append_ok(s, "gone-1", ExpectedVersion::Any, events(2)).await;
    s.delete_stream(&stream("gone-1"), ExpectedVersion::Exact(1))
        .await
        .unwrap();
    let meta = StreamMetadata {
        max_count: Some(2),
        max_age_s: None,
    };
    s.set_stream_metadata(&stream("dur-2"), meta.clone())
        .await
        .unwrap();
    let before = read_all_events(s).await;
    let head = s.head_position();
    let names = ["dur-1", "dur-2", "gone-1", "never-1"];
    let mut states = Vec::new();
    for name in names {
        states.push(s.stream_state(&stream(name)).await.unwrap());
    }

    let t = bounded("reopen", f.reopen(t)).await;
    let s = &*t.store;
    assert_eq!(s.head_position(), head, "the head survives");
    assert_eq!(
        read_all_events(s).await,
        before,
        "every acknowledged event survives byte for byte"
    );
    for (name, state) in names.iter().zip(&states) {
        assert_eq!(
            &s.stream_state(&stream(name)).await.unwrap(),
            state,
            "state of {name}"
        );
    }
    assert_eq!(
        versions(&read_stream_events(s, "dur-2").await),
        vec![1, 2],
        "metadata survives"
    );
    let deleted = s
        .read_stream(&stream("gone-1"), None, ReadDirection::Forward, 10)
        .await;
    assert!(
        matches!(deleted, Err(eventum_core::ReadError::StreamDeleted { .. })),
        "got {deleted:?}"
    );
    let retry = append_ok(s, "dur-1", ExpectedVersion::Exact(1), exact_batch).await;
    assert_eq!(
        retry, exact_result,
        "an exact retry is recognised after reopen"
    );

    let r = append_ok(s, "dur-1", ExpectedVersion::Exact(3), events(1)).await;
    let next = before.len() as u64;
    assert_eq!(
        (r.next_expected_version, r.position),
        (4, next),
        "versions and positions continue"
    );
    let r = append_ok(s, "new-1", ExpectedVersion::NoStream, events(1)).await;
    assert_eq!(r.position, next + 1);
    let e = append_err(s, "dur-1", ExpectedVersion::Exact(3), events(1)).await;
    assert_conflict(
        &e,
        "dur-1",
        ExpectedVersion::Exact(3),
        ActualVersion::Version(4),
    );
    let gone = s
        .append(&stream("gone-1"), ExpectedVersion::Any, events(1))
        .await;
    assert!(
        matches!(gone, Err(AppendError::StreamDeleted { .. })),
        "got {gone:?}"
    );
    let all = read_all_events(s).await;
    assert_eq!(
        positions(&all),
        (0..next + 2).collect::<Vec<_>>(),
        "gap-free after reopen"
    );

    // A second reopen keeps what was written after the first.
    let t = bounded("second reopen", f.reopen(t)).await;
    assert_eq!(read_all_events(&*t.store).await, all);
}
