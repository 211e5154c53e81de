//! Appends that share a group-commit transaction keep their own semantics: a concurrent
//! duplicate of a batch is recognised as a retry (written once), a refused append in a
//! busy group writes nothing while the others commit, and one stream's concurrent exact
//! appends get one winner per version.

mod common;

use std::sync::Arc;

use eventum_core::{
    ActualVersion, AppendError, EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName,
};

fn batch(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent::from_json("T", format!("{i}")).unwrap())
        .collect()
}

async fn all_events(s: &dyn EventStore) -> Vec<eventum_core::RecordedEvent> {
    s.read_all(Some(0), ReadDirection::Forward, 10_000)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_of_one_batch_are_written_once() {
    let t = common::PgFactory.create_store().await;
    let s: Arc<dyn EventStore> = t.0.clone();
    let stream = StreamName::new("dup-1").unwrap();
    let events = batch(3);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, stream, events) = (s.clone(), stream.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            s.append(&stream, ExpectedVersion::Any, events).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(
            task.await
                .unwrap()
                .expect("a duplicate is a retry, not an error"),
        );
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
    assert_eq!(all_events(&*s).await.len(), 3, "written exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_in_a_busy_group_writes_nothing() {
    let t = common::PgFactory.create_store().await;
    let s: Arc<dyn EventStore> = t.0.clone();
    s.append(
        &StreamName::new("taken-1").unwrap(),
        ExpectedVersion::NoStream,
        batch(1),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            if w == 16 {
                // Conflicts: the stream exists. Its events must not appear anywhere.
                let refused = batch(2);
                let ids: Vec<_> = refused.iter().map(NewEvent::id).collect();
                let e = s
                    .append(
                        &StreamName::new("taken-1").unwrap(),
                        ExpectedVersion::NoStream,
                        refused,
                    )
                    .await
                    .unwrap_err();
                assert!(matches!(
                    e,
                    AppendError::WrongExpectedVersion {
                        actual: ActualVersion::Version(0),
                        ..
                    }
                ));
                // A conflict on a stream that does not exist leaves no trace either.
                let e = s
                    .append(
                        &StreamName::new("ghost-1").unwrap(),
                        ExpectedVersion::Exact(3),
                        batch(1),
                    )
                    .await
                    .unwrap_err();
                assert!(matches!(
                    e,
                    AppendError::WrongExpectedVersion {
                        actual: ActualVersion::NoStream,
                        ..
                    }
                ));
                Some(ids)
            } else {
                s.append(
                    &StreamName::new(format!("ok-{w}")).unwrap(),
                    ExpectedVersion::NoStream,
                    batch(1),
                )
                .await
                .unwrap();
                None
            }
        }));
    }
    let mut refused_ids = Vec::new();
    for task in tasks {
        if let Some(ids) = task.await.unwrap() {
            refused_ids = ids;
        }
    }
    let all = all_events(&*s).await;
    assert_eq!(all.len(), 1 + 31, "every accepted append, nothing refused");
    assert!(all.iter().all(|e| !refused_ids.contains(&e.id)));
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (0..32).collect::<Vec<_>>()
    );
    let ghost = s
        .stream_state(&StreamName::new("ghost-1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        (ghost.version, ghost.deleted),
        (ActualVersion::NoStream, false)
    );
    assert!(matches!(
        s.read_stream(
            &StreamName::new("ghost-1").unwrap(),
            None,
            ReadDirection::Forward,
            1
        )
        .await,
        Err(eventum_core::ReadError::StreamNotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exact_appends_on_one_stream_keep_version_order() {
    let t = common::PgFactory.create_store().await;
    let s: Arc<dyn EventStore> = t.0.clone();
    let stream = StreamName::new("race-1").unwrap();
    // 16 writers race for each of 10 versions; each retries with the version it saw.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (s, stream) = (s.clone(), stream.clone());
        tasks.push(tokio::spawn(async move {
            let mut wins = 0;
            loop {
                let state = s.stream_state(&stream).await.unwrap();
                let expected = match state.version {
                    ActualVersion::NoStream => ExpectedVersion::NoStream,
                    ActualVersion::Version(v) if v >= 9 => return wins,
                    ActualVersion::Version(v) => ExpectedVersion::Exact(v),
                };
                match s.append(&stream, expected, batch(1)).await {
                    Ok(_) => wins += 1,
                    Err(AppendError::WrongExpectedVersion { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += task.await.unwrap();
    }
    assert_eq!(wins, 10, "one winner per version");
    let events = s
        .read_stream(&stream, None, ReadDirection::Forward, 100)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
}
