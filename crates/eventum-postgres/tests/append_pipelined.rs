//! Groups written at predicted positions while the previous group commits: every append
//! gets exactly the positions its events hold, `$all` stays gap-free with each stream's
//! versions in order, and with two store instances (two processes) predicting the same
//! positions, the loser's groups are written again rather than failing.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use eventum_core::{EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName};
use eventum_postgres::{GroupCommitStats, PgConfig, PgStore};

const WRITERS: usize = 24;
const APPENDS: usize = 25;

/// Small groups, so that a second group starts while the first commits.
fn small_groups(mut config: PgConfig) -> PgConfig {
    config.group_events_max = 3;
    config.committers_max = 2;
    config
}

/// Each writer appends `APPENDS` batches of 1–3 events to its own stream; returns every
/// append's (result position, event ids).
async fn write(stores: &[Arc<PgStore>]) -> Vec<(u64, Vec<uuid::Uuid>)> {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = stores[w % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamName::new(format!("p-{w}")).unwrap();
            let mut done = Vec::new();
            for i in 0..APPENDS {
                let events: Vec<NewEvent> = (0..(w + i) % 3 + 1)
                    .map(|n| NewEvent::from_json("T", format!("{n}")).unwrap())
                    .collect();
                let ids = events.iter().map(NewEvent::id).collect();
                let result = store
                    .append(&stream, ExpectedVersion::Any, events)
                    .await
                    .expect("no append fails");
                done.push((result.position, ids));
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Checks the log against what the appends were told.
async fn check(store: &dyn EventStore, appended: &[(u64, Vec<uuid::Uuid>)]) {
    let log = store
        .read_all(Some(0), ReadDirection::Forward, 10_000)
        .await
        .unwrap();
    let total: usize = appended.iter().map(|(_, ids)| ids.len()).sum();
    assert_eq!(log.len(), total, "every event once");
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.position, i as u64, "gap-free");
        let next = versions.entry(e.stream.as_str()).or_insert(0);
        assert_eq!(
            e.version, *next,
            "versions in position order in {}",
            e.stream
        );
        *next += 1;
    }
    for (last, ids) in appended {
        let first = *last as usize + 1 - ids.len();
        let at: Vec<uuid::Uuid> = log[first..=*last as usize].iter().map(|e| e.id).collect();
        assert_eq!(&at, ids, "the append told {last} holds its events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_written_while_the_previous_one_commits_keep_every_position() {
    let config = small_groups(common::fresh_config());
    let guard = common::Guard {
        store: None,
        config: config.clone(),
    };
    let store = common::open(config).await;
    let appended = write(std::slice::from_ref(&store)).await;
    check(&*store, &appended).await;
    let stats = store.group_commit_stats();
    assert!(stats.predicted > 0, "some groups were predicted: {stats:?}");
    assert_eq!(
        stats.rewritten, 0,
        "one process never mispredicts: {stats:?}"
    );
    eprintln!("{stats:?}");
    drop(store);
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_predicting_the_same_positions_write_everything_once() {
    let config = small_groups(common::fresh_config());
    let guard = common::Guard {
        store: None,
        config: config.clone(),
    };
    let a = common::open(config.clone()).await;
    let b = common::open(config).await;
    let appended = write(&[a.clone(), b.clone()]).await;
    check(&*a, &appended).await;
    let sum =
        |x: GroupCommitStats, y: GroupCommitStats| (x.groups + y.groups, x.rewritten + y.rewritten);
    let (groups, rewritten) = sum(a.group_commit_stats(), b.group_commit_stats());
    eprintln!("{groups} groups, {rewritten} written again");
    drop((a, b));
    drop(guard);
}
