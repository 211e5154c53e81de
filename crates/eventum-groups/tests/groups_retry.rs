//! Retries back off exponentially up to `max_attempts`, then the event is parked in
//! `$dlq-{group}` with the error text and attempt count; ack timeouts redeliver and count
//! as attempts; skip settles without parking.

mod common;

use std::time::{Duration, Instant};

use common::*;
use eventum_groups::{GroupSettings, GroupTarget, NackAction};

#[tokio::test]
async fn retries_back_off_then_park_with_the_error_and_attempts() {
    let env = env().await;
    let pos = append(&env.store, "pay-1", 7).await;
    let s = GroupSettings {
        max_attempts: 4,
        retry_delay_ms_base: 60,
        retry_delay_ms_max: 150,
        ..settings(GroupTarget::Stream("pay-1".into()), true)
    };
    env.svc.create("pay", s).await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..4 {
        let d = receive_n(&env.svc, "pay", "c", 1, Duration::from_secs(5)).await;
        assert_eq!(d.len(), 1);
        let d = &d[0];
        seen.push((Instant::now(), d.attempt));
        env.svc
            .nack(
                "pay",
                d.token,
                NackAction::Retry,
                &format!("boom {}", d.attempt),
            )
            .await
            .unwrap();
    }
    let attempts: Vec<u32> = seen.iter().map(|s| s.1).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    // Delays 60, 120, then capped at 150 ms.
    for (i, min_ms) in [60u128, 120, 150].into_iter().enumerate() {
        let gap = seen[i + 1].0.duration_since(seen[i].0).as_millis();
        // Due times are kept in whole milliseconds of the wall clock (`now_ms() + delay`),
        // so a retry may fire up to 1 ms before `delay` has passed on this finer clock:
        // a nack at 1000.9 ms is due at 1150 ms, 149.1 ms later.
        assert!(
            gap + 1 >= min_ms,
            "retry {} came after {gap} ms, before {min_ms}",
            i + 1
        );
        assert!(gap < min_ms + 1_000, "retry {} came after {gap} ms", i + 1);
    }
    // The fourth failure parks it: nothing more is delivered.
    assert!(
        env.svc
            .receive("pay", "c", 1, 300)
            .await
            .unwrap()
            .is_empty()
    );
    let parked = env.svc.parked("pay", 0, 10).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, "boom 4");
    assert_eq!(parked[0].attempts, 4);
    assert_eq!(parked[0].event.position, pos);
    assert_eq!(data_i(&parked[0].event), 7);
    // The dead letter is in the store, with the original stream, position and data.
    let dlq = read_stream(&env.store, "$dlq-pay").await;
    assert_eq!(dlq.len(), 1);
    let record: serde_json::Value = serde_json::from_slice(&dlq[0].data).unwrap();
    assert_eq!(record["reason"], "boom 4");
    assert_eq!(record["attempts"], 4);
    assert_eq!(record["stream"], "pay-1");
    assert_eq!(record["position"], pos);
    assert_eq!(record["data"]["i"], 7);
    let info = env.svc.info("pay").unwrap();
    assert_eq!(
        (info.parked, info.in_flight, info.retry_scheduled),
        (1, 0, 0)
    );
    assert_eq!(
        info.checkpoint,
        pos + 1,
        "a parked event no longer holds the checkpoint"
    );
}

#[tokio::test]
async fn ack_timeout_redelivers_and_counts_as_an_attempt() {
    let env = env().await;
    append(&env.store, "job-1", 1).await;
    let s = GroupSettings {
        ack_timeout_ms: 150,
        max_attempts: 2,
        retry_delay_ms_base: 1,
        retry_delay_ms_max: 1,
        ..settings(GroupTarget::Category("job".into()), true)
    };
    env.svc.create("jobs", s).await.unwrap();
    let first = receive_n(&env.svc, "jobs", "slow", 1, Duration::from_secs(5)).await;
    assert_eq!(first[0].attempt, 1);
    let t0 = Instant::now();
    // Another consumer gets it again once the first one's time is up.
    let second = env.svc.receive("jobs", "fast", 1, 2_000).await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(140),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].event.id, first[0].event.id);
    assert_eq!(second[0].attempt, 2);
    // The late ack of the first delivery is reported, not applied.
    let late = env.svc.ack("jobs", &[first[0].token]).await.unwrap();
    assert_eq!(
        (late.acked, late.unknown.clone()),
        (0, vec![first[0].token])
    );
    // Timing out the second (last) attempt parks it with the timeout as its reason.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        env.svc
            .receive("jobs", "fast", 1, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let parked = env.svc.parked("jobs", 0, 10).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].attempts, 2);
    assert!(
        parked[0].reason.contains("ack timeout"),
        "{}",
        parked[0].reason
    );
}

#[tokio::test]
async fn skip_settles_without_parking_and_nack_of_unknown_token_fails() {
    let env = env().await;
    append(&env.store, "x-1", 0).await;
    append(&env.store, "x-1", 1).await;
    env.svc
        .create("g", settings(GroupTarget::All, true))
        .await
        .unwrap();
    let d = receive_n(&env.svc, "g", "c", 1, Duration::from_secs(5)).await;
    env.svc
        .nack("g", d[0].token, NackAction::Skip, "not for us")
        .await
        .unwrap();
    let next = receive_n(&env.svc, "g", "c", 1, Duration::from_secs(5)).await;
    assert_eq!(
        next[0].event.version, 1,
        "skip releases the stream's next event"
    );
    assert!(env.svc.parked("g", 0, 10).unwrap().is_empty());
    assert!(read_stream(&env.store, "$dlq-g").await.is_empty());
    let err = env
        .svc
        .nack("g", d[0].token, NackAction::Retry, "again")
        .await
        .unwrap_err();
    assert!(matches!(err, eventum_groups::NackError::UnknownToken(t) if t == d[0].token));
    assert_eq!(err.code(), eventum_core::ErrorCode::NotFound);
}
