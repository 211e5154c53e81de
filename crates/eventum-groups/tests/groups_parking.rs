//! Dead letters: in ordered mode later events of a stream are parked behind a parked one,
//! in unordered mode they proceed; replay re-delivers through the group in order and
//! resolves each dead letter once its redelivery is acked.

mod common;

use std::time::Duration;

use common::*;
use eventum_groups::{GroupSettings, GroupTarget, NackAction, ReplayError};

fn one_attempt(ordered: bool) -> GroupSettings {
    GroupSettings {
        max_attempts: 1,
        ..settings(GroupTarget::All, ordered)
    }
}

fn keys(ds: &[eventum_groups::Delivery]) -> Vec<String> {
    let mut k: Vec<String> = ds
        .iter()
        .map(|d| format!("{}@{}", d.event.stream, d.event.version))
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn ordered_holds_later_events_behind_a_parked_one_until_replayed() {
    let env = env().await;
    let a0 = append(&env.store, "a", 0).await;
    append(&env.store, "a", 1).await;
    append(&env.store, "b", 0).await;
    append(&env.store, "a", 2).await;
    let svc = &env.svc;
    svc.create("g", one_attempt(true)).await.unwrap();

    let d = receive_n(svc, "g", "c", 2, Duration::from_secs(5)).await;
    assert_eq!(keys(&d), ["a@0", "b@0"]);
    let a = d.iter().find(|d| d.event.stream == "a").unwrap();
    let b = d.iter().find(|d| d.event.stream == "b").unwrap();
    svc.nack("g", a.token, NackAction::Retry, "db down")
        .await
        .unwrap();
    svc.ack("g", &[b.token]).await.unwrap();
    // a@1 and a@2 are held; a later b event still flows.
    append(&env.store, "b", 1).await;
    let d = receive_n(svc, "g", "c", 5, Duration::from_millis(500)).await;
    assert_eq!(keys(&d), ["b@1"]);
    svc.ack("g", &[d[0].token]).await.unwrap();
    let parked = svc.parked("g", 0, 100).unwrap();
    let summary: Vec<(u64, u32, String)> = parked
        .iter()
        .map(|p| (p.event.version, p.attempts, p.reason.clone()))
        .collect();
    let held = format!("held behind parked event at position {a0}");
    assert_eq!(
        summary,
        [
            (0, 1, "db down".to_owned()),
            (1, 0, held.clone()),
            (2, 0, held.clone())
        ]
    );
    assert_eq!(parked[1].held_behind, Some(a0));
    // Everything is settled or parked, so the checkpoint passes the last user event and
    // (once the reader has seen the dead letters it skips) the lag is zero.
    let last_user = append(&env.store, "c", 0).await;
    let d = receive_n(svc, "g", "c", 1, Duration::from_secs(2)).await;
    svc.ack("g", &[d[0].token]).await.unwrap();
    assert_eq!(svc.info("g").unwrap().checkpoint, last_user + 1);
    let mut lag = u64::MAX;
    for _ in 0..100 {
        lag = svc.info("g").unwrap().lag_events;
        if lag == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lag, 0, "head {}", env.store_head());

    // A new event of the blocked stream is held too.
    append(&env.store, "a", 3).await;
    assert!(
        receive_n(svc, "g", "c", 1, Duration::from_millis(400))
            .await
            .is_empty()
    );
    assert_eq!(svc.parked("g", 0, 100).unwrap().len(), 4);

    // Replay all: the stream's events come back one at a time, in order.
    assert_eq!(svc.replay("g", None).unwrap(), 4);
    for v in 0..4 {
        let d = receive_n(svc, "g", "c", 1, Duration::from_secs(2)).await;
        assert_eq!(keys(&d), [format!("a@{v}")]);
        assert!(
            svc.receive("g", "c", 10, 0).await.unwrap().is_empty(),
            "one at a time"
        );
        assert!(d[0].replay_of.is_some());
        svc.ack("g", &[d[0].token]).await.unwrap();
    }
    assert!(svc.parked("g", 0, 100).unwrap().is_empty());
    // Unblocked: the next event of `a` is delivered normally.
    append(&env.store, "a", 4).await;
    let d = receive_n(svc, "g", "c", 1, Duration::from_secs(2)).await;
    assert_eq!(keys(&d), ["a@4"]);
    assert_eq!(d[0].replay_of, None);
    // The store records four resolutions.
    let resolved = read_stream(&env.store, "$dlq-g")
        .await
        .iter()
        .filter(|e| e.event_type == "$parked-resolved")
        .count();
    assert_eq!(resolved, 4);
}

#[tokio::test]
async fn unordered_lets_later_events_proceed() {
    let env = env().await;
    append(&env.store, "a", 0).await;
    append(&env.store, "a", 1).await;
    append(&env.store, "a", 2).await;
    let svc = &env.svc;
    svc.create("g", one_attempt(false)).await.unwrap();
    let d = receive_n(svc, "g", "c", 3, Duration::from_secs(5)).await;
    assert_eq!(
        keys(&d),
        ["a@0", "a@1", "a@2"],
        "unordered hands out a stream at once"
    );
    svc.nack("g", d[0].token, NackAction::Park, "bad payload")
        .await
        .unwrap();
    svc.ack("g", &[d[1].token, d[2].token]).await.unwrap();
    append(&env.store, "a", 3).await;
    let more = receive_n(svc, "g", "c", 1, Duration::from_secs(2)).await;
    assert_eq!(keys(&more), ["a@3"]);
    let parked = svc.parked("g", 0, 10).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].reason.as_str(), parked[0].attempts),
        ("bad payload", 1)
    );
}

#[tokio::test]
async fn replay_one_and_failed_replays_park_again() {
    let env = env().await;
    append(&env.store, "a", 0).await;
    append(&env.store, "b", 0).await;
    let svc = &env.svc;
    svc.create("g", one_attempt(false)).await.unwrap();
    let d = receive_n(svc, "g", "c", 2, Duration::from_secs(5)).await;
    for x in &d {
        svc.nack("g", x.token, NackAction::Park, "nope")
            .await
            .unwrap();
    }
    let parked = svc.parked("g", 0, 10).unwrap();
    assert_eq!(parked.len(), 2);
    let (first, second) = (parked[0].clone(), parked[1].clone());

    assert!(matches!(
        svc.replay("g", Some(999)),
        Err(ReplayError::UnknownParkedId { id: 999, .. })
    ));
    assert_eq!(svc.replay("g", Some(first.id)).unwrap(), 1);
    let r = receive_n(svc, "g", "c", 5, Duration::from_secs(2)).await;
    assert_eq!(r.len(), 1, "only the replayed one");
    assert_eq!(r[0].event.id, first.event.id);
    assert_eq!(r[0].replay_of, Some(first.id));
    // It fails again: parked anew, replacing the old dead letter.
    svc.nack("g", r[0].token, NackAction::Park, "still nope")
        .await
        .unwrap();
    let parked = svc.parked("g", 0, 10).unwrap();
    assert_eq!(parked.len(), 2);
    assert!(parked.iter().any(|p| p.id == second.id));
    let again = parked
        .iter()
        .find(|p| p.event.id == first.event.id)
        .unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(again.reason, "still nope");
    // Skipping a replay resolves it too.
    svc.replay("g", Some(second.id)).unwrap();
    let r = receive_n(svc, "g", "c", 1, Duration::from_secs(2)).await;
    svc.nack("g", r[0].token, NackAction::Skip, "")
        .await
        .unwrap();
    let left: Vec<_> = svc
        .parked("g", 0, 10)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(left, [again.id]);
}

trait Head {
    fn store_head(&self) -> u64;
}

impl Head for Env {
    /// The newest position of a user event: system records (checkpoints, dead letters)
    /// come after it, so compare with the group's own figures instead where needed.
    fn store_head(&self) -> u64 {
        use eventum_core::EventStore;
        self.store.head_position().unwrap()
    }
}
