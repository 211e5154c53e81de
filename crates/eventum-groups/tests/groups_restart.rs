//! Durability: definitions, checkpoints and dead letters survive reopening the store and
//! the service; lag figures; delete and re-create starts afresh.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use eventum_core::EventStore;
use eventum_groups::{GroupSettings, GroupTarget, NackAction};

fn long_timeout(target: GroupTarget, ordered: bool) -> GroupSettings {
    GroupSettings {
        ack_timeout_ms: 600_000,
        ..settings(target, ordered)
    }
}

/// Receives 60 of 100 events, acks those at positions < 50, leaves the rest in flight.
async fn ack_first_fifty(env: &Env) {
    fill(&env.store, "s", 10, 10).await;
    let s = long_timeout(GroupTarget::All, false);
    env.svc.create("g", s.clone()).await.unwrap();
    let mut got = receive_n(&env.svc, "g", "c", 60, Duration::from_secs(5)).await;
    got.sort_by_key(|d| d.event.position);
    assert_eq!(got.len(), 60);
    let tokens: Vec<u64> = got
        .iter()
        .filter(|d| d.event.position < 50)
        .map(|d| d.token)
        .collect();
    assert_eq!(env.svc.ack("g", &tokens).await.unwrap().acked, 50);
    assert_eq!(env.svc.info("g").unwrap().checkpoint, 50);
}

async fn assert_resumes_at_fifty(env: &Env) {
    let list = env.svc.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].settings, long_timeout(GroupTarget::All, false));
    assert_eq!(list[0].checkpoint, 50);
    let got = receive_n(&env.svc, "g", "c2", 100, Duration::from_secs(2)).await;
    let positions: BTreeSet<u64> = got.iter().map(|d| d.event.position).collect();
    assert_eq!(
        positions,
        (50..100).collect::<BTreeSet<u64>>(),
        "acked events stay acked, the rest come again"
    );
    assert!(got.iter().all(|d| d.attempt == 1));
}

#[tokio::test]
async fn checkpoint_survives_a_clean_restart() {
    let mut env = env().await;
    ack_first_fifty(&env).await;
    env.restart(fast_config()).await;
    assert_resumes_at_fifty(&env).await;
    // The checkpoint stream stays short however often it is written.
    let cps = read_stream(&env.store, "$groups-g-checkpoint").await;
    assert!(
        !cps.is_empty() && cps.len() <= 2,
        "{} checkpoint events visible",
        cps.len()
    );
}

#[tokio::test]
async fn checkpoint_written_by_the_interval_survives_an_abandoned_service() {
    let mut env = env().await;
    ack_first_fifty(&env).await;
    // No shutdown: only the periodic (50 ms) checkpoint can have reached the store.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (store, svc) = (env.store.clone(), env.svc.clone());
    drop(svc);
    store.shutdown();
    let (store, svc) = open_at(env.dir.path(), fast_config()).await;
    env.store = store;
    env.svc = svc;
    assert_resumes_at_fifty(&env).await;
}

#[tokio::test]
async fn dead_letters_keep_blocking_their_stream_after_restart() {
    let mut env = env().await;
    append(&env.store, "a", 0).await;
    let s = GroupSettings {
        max_attempts: 1,
        ..settings(GroupTarget::All, true)
    };
    env.svc.create("g", s).await.unwrap();
    let d = receive_n(&env.svc, "g", "c", 1, Duration::from_secs(5)).await;
    env.svc
        .nack("g", d[0].token, NackAction::Retry, "broken")
        .await
        .unwrap();
    env.restart(fast_config()).await;

    let parked = env.svc.parked("g", 0, 10).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].reason.as_str(), parked[0].attempts),
        ("broken", 1)
    );
    append(&env.store, "a", 1).await;
    append(&env.store, "b", 0).await;
    let got = receive_n(&env.svc, "g", "c", 2, Duration::from_millis(600)).await;
    let streams: Vec<&str> = got.iter().map(|d| d.event.stream.as_str()).collect();
    assert_eq!(streams, ["b"], "a is still blocked by its dead letter");
    assert_eq!(env.svc.parked("g", 0, 10).unwrap().len(), 2);

    env.svc.replay("g", None).unwrap();
    env.restart(fast_config()).await;
    // A replay not acked before the restart leaves the dead letters in place.
    assert_eq!(env.svc.parked("g", 0, 10).unwrap().len(), 2);
}

#[tokio::test]
async fn lag_figures() {
    let env = env().await;
    fill(&env.store, "s", 4, 25).await;
    let s = GroupSettings {
        retry_delay_ms_base: 60_000,
        retry_delay_ms_max: 60_000,
        ..long_timeout(GroupTarget::All, false)
    };
    env.svc.create("g", s).await.unwrap();
    // Nothing settled yet: every position is lag (the 100 events and the group's own
    // creation records).
    let info = env.svc.info("g").unwrap();
    let head = env.store.head_position().unwrap();
    assert_eq!(info.head_position, Some(head));
    assert_eq!(info.lag_events, head + 1);
    assert!(head >= 99);
    let mut d = receive_n(&env.svc, "g", "c", 10, Duration::from_secs(5)).await;
    d.sort_by_key(|d| d.event.position);
    let info = env.svc.info("g").unwrap();
    assert_eq!((info.in_flight, info.consumers), (10, 1));
    let tokens: Vec<u64> = d[..8].iter().map(|d| d.token).collect();
    env.svc.ack("g", &tokens).await.unwrap();
    env.svc
        .nack("g", d[8].token, NackAction::Retry, "later")
        .await
        .unwrap();
    env.svc
        .nack("g", d[9].token, NackAction::Park, "never")
        .await
        .unwrap();
    let info = env.svc.info("g").unwrap();
    assert_eq!(info.checkpoint, 8, "held by the event scheduled for retry");
    assert_eq!(info.lag_events, info.head_position.unwrap() + 1 - 8);
    assert_eq!(
        (info.in_flight, info.retry_scheduled, info.parked),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn start_from_end_and_recreate_after_delete_start_afresh() {
    let env = env().await;
    let p0 = append(&env.store, "a", 0).await;
    let s = GroupSettings {
        from: eventum_groups::StartFrom::End,
        ..settings(GroupTarget::All, true)
    };
    let info = env.svc.create("g", s).await.unwrap();
    assert_eq!(info.start_position, p0 + 1);
    let p1 = append(&env.store, "a", 1).await;
    let d = receive_n(&env.svc, "g", "c", 5, Duration::from_millis(500)).await;
    assert_eq!(d.iter().map(|d| d.event.position).collect::<Vec<_>>(), [p1]);
    env.svc.ack("g", &[d[0].token]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.svc.delete("g").await.unwrap();
    assert!(env.svc.info("g").is_err());
    // Re-created from the start: the old checkpoint is not inherited.
    env.svc
        .create("g", settings(GroupTarget::All, true))
        .await
        .unwrap();
    let d = receive_n(&env.svc, "g", "c", 1, Duration::from_secs(2)).await;
    assert_eq!(d[0].event.version, 0);
    assert_eq!(d[0].event.stream, "a");
}
