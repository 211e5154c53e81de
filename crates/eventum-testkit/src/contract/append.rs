//! Contract cases for appending: what is recorded, optimistic concurrency through every
//! `ExpectedVersion`, all-or-nothing batches and idempotent retries.

use eventum_core::{ActualVersion, AppendError, ExpectedVersion, NewEvent, ReadDirection};
use serde_json::json;
use uuid::Uuid;

use super::*;

/// Asserts `err` is a version conflict on `name` reporting `actual`.
pub fn assert_conflict(
    err: &AppendError,
    name: &str,
    expected: ExpectedVersion,
    actual: ActualVersion,
) {
    match err {
        AppendError::WrongExpectedVersion {
            stream,
            expected: e,
            actual: a,
        } => {
            assert_eq!(stream, name, "conflict names the stream");
            assert_eq!(*e, expected, "conflict repeats the expectation");
            assert_eq!(*a, actual, "conflict carries the actual version");
        }
        other => panic!("expected WrongExpectedVersion on {name}, got {other:?}"),
    }
}

pub async fn append_round_trip(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let correlation = Uuid::now_v7();
    let causation = Uuid::now_v7();
    // Unusual whitespace and key order: the data must come back byte for byte.
    let with_ids = NewEvent::from_json("OrderPlaced", r#"{ "b": 1,  "a": [1, 2] }"#)
        .unwrap()
        .with_metadata(json!({"tenant": "t1", "correlation_id": correlation.to_string()}))
        .unwrap()
        .with_causation_id(causation);
    let plain = NewEvent::from_json("Ünïcode type", "[1,\"x\"]").unwrap();
    let sent = vec![with_ids.clone(), plain.clone()];
    let before = now_us();
    let result = append_ok(s, "order-1", ExpectedVersion::NoStream, sent.clone()).await;
    let after = now_us();
    assert_eq!(
        result.next_expected_version, 1,
        "result names the last version"
    );
    assert_eq!(result.position, 1, "result names the last position");

    let read = read_stream_events(s, "order-1").await;
    assert_eq!(read.len(), 2);
    for (i, (r, e)) in read.iter().zip(&sent).enumerate() {
        assert_eq!(r.stream, "order-1");
        assert_eq!(r.version, i as u64, "versions are 0-based");
        assert_eq!(r.position, i as u64, "positions start at 0");
        assert_eq!(r.id, e.id());
        assert_eq!(r.event_type, e.event_type());
        assert_eq!(r.data, e.data(), "data bytes are kept exactly");
        assert_eq!(
            r.metadata,
            e.metadata(),
            "user metadata bytes are kept exactly"
        );
        // Allow a second of slack for clock granularity, but catch wrong units or zero.
        assert!(
            r.recorded_at_us >= before - 1_000_000 && r.recorded_at_us <= after + 1_000_000,
            "recorded_at_us {} outside [{before}, {after}]",
            r.recorded_at_us
        );
    }
    assert_eq!(
        read[0].correlation_id, correlation,
        "given correlation id kept"
    );
    assert_eq!(read[0].causation_id, causation, "given causation id kept");
    assert_eq!(&read[0].metadata[..], br#"{"tenant":"t1"}"#);
    assert_eq!(
        read[1].correlation_id,
        plain.id(),
        "correlation id defaults to own id"
    );
    assert_eq!(
        read[1].causation_id,
        plain.id(),
        "causation id defaults to own id"
    );
    assert!(read[1].metadata.is_empty(), "no metadata stays empty");
    let merged = read[0].metadata_json();
    assert_eq!(merged["tenant"], json!("t1"));
    assert_eq!(merged["correlation_id"], json!(correlation.to_string()));

    // `$all` returns the very same records.
    assert_eq!(read_all_events(s).await, read);
    assert_eq!(s.head_position(), Some(1));
    let state = s.stream_state(&stream("order-1")).await.unwrap();
    assert_eq!(state.version, ActualVersion::Version(1));
    assert!(!state.deleted);
}

pub async fn positions_are_gap_free_across_streams(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    assert_eq!(s.head_position(), None, "a new store is empty");
    let plan = [("a-1", 2), ("b-1", 1), ("a-1", 3), ("c", 1), ("b-1", 2)];
    let mut next_position = 0;
    for (name, n) in plan {
        let r = append_ok(s, name, ExpectedVersion::Any, events(n)).await;
        next_position += n;
        assert_eq!(r.position, next_position - 1);
        assert_eq!(
            s.head_position(),
            Some(r.position),
            "head follows acknowledged appends"
        );
    }
    let all = read_all_events(s).await;
    assert_eq!(positions(&all), (0..next_position).collect::<Vec<_>>());
    for name in ["a-1", "b-1", "c"] {
        let evs = read_stream_events(s, name).await;
        assert_eq!(versions(&evs), (0..evs.len() as u64).collect::<Vec<_>>());
        assert!(evs.windows(2).all(|w| w[0].position < w[1].position));
        let from_all: Vec<_> = all.iter().filter(|e| e.stream == name).cloned().collect();
        assert_eq!(evs, from_all, "stream {name} agrees with $all");
    }
}

pub async fn expected_version_any(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let r = append_ok(s, "any-1", ExpectedVersion::Any, events(1)).await;
    assert_eq!(r.next_expected_version, 0, "any creates a missing stream");
    let r = append_ok(s, "any-1", ExpectedVersion::Any, events(2)).await;
    assert_eq!(
        r.next_expected_version, 2,
        "any appends to an existing stream"
    );
}

pub async fn expected_version_no_stream(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let r = append_ok(s, "ns-1", ExpectedVersion::NoStream, events(2)).await;
    assert_eq!(r.next_expected_version, 1);
    let e = append_err(s, "ns-1", ExpectedVersion::NoStream, events(1)).await;
    assert_conflict(
        &e,
        "ns-1",
        ExpectedVersion::NoStream,
        ActualVersion::Version(1),
    );
    assert_eq!(
        read_all_events(s).await.len(),
        2,
        "the conflict wrote nothing"
    );
}

pub async fn expected_version_stream_exists(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let e = append_err(s, "ex-1", ExpectedVersion::StreamExists, events(1)).await;
    assert_conflict(
        &e,
        "ex-1",
        ExpectedVersion::StreamExists,
        ActualVersion::NoStream,
    );
    assert_eq!(s.head_position(), None, "the conflict wrote nothing");
    append_ok(s, "ex-1", ExpectedVersion::NoStream, events(1)).await;
    let r = append_ok(s, "ex-1", ExpectedVersion::StreamExists, events(1)).await;
    assert_eq!(r.next_expected_version, 1);
}

pub async fn expected_version_exact(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let e = append_err(s, "exact-1", ExpectedVersion::Exact(0), events(1)).await;
    assert_conflict(
        &e,
        "exact-1",
        ExpectedVersion::Exact(0),
        ActualVersion::NoStream,
    );
    append_ok(s, "exact-1", ExpectedVersion::NoStream, events(1)).await;
    let r = append_ok(s, "exact-1", ExpectedVersion::Exact(0), events(2)).await;
    assert_eq!(r.next_expected_version, 2);
    let r = append_ok(s, "exact-1", ExpectedVersion::Exact(2), events(1)).await;
    assert_eq!(r.next_expected_version, 3);
    for stale in [ExpectedVersion::Exact(2), ExpectedVersion::Exact(0)] {
        let e = append_err(s, "exact-1", stale, events(1)).await;
        assert_conflict(&e, "exact-1", stale, ActualVersion::Version(3));
    }
    for ahead in [ExpectedVersion::Exact(4), ExpectedVersion::Exact(u64::MAX)] {
        let e = append_err(s, "exact-1", ahead, events(1)).await;
        assert_conflict(&e, "exact-1", ahead, ActualVersion::Version(3));
    }
    assert_eq!(read_all_events(s).await.len(), 4, "conflicts wrote nothing");
}

pub async fn multi_event_append_is_atomic(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "other", ExpectedVersion::Any, events(1)).await;
    let r = append_ok(s, "atom-1", ExpectedVersion::NoStream, events(5)).await;
    assert_eq!((r.next_expected_version, r.position), (4, 5));
    let evs = read_stream_events(s, "atom-1").await;
    assert_eq!(
        positions(&evs),
        vec![1, 2, 3, 4, 5],
        "a batch is contiguous in $all"
    );

    let rejected = events(3);
    let ids: Vec<_> = rejected.iter().map(NewEvent::id).collect();
    let e = append_err(s, "atom-1", ExpectedVersion::Exact(1), rejected).await;
    assert_conflict(
        &e,
        "atom-1",
        ExpectedVersion::Exact(1),
        ActualVersion::Version(4),
    );
    let all = read_all_events(s).await;
    assert_eq!(
        all.len(),
        6,
        "a conflicting batch writes none of its events"
    );
    assert!(all.iter().all(|e| !ids.contains(&e.id)));
    let state = s.stream_state(&stream("atom-1")).await.unwrap();
    assert_eq!(state.version, ActualVersion::Version(4));
    let backward = s
        .read_stream(&stream("atom-1"), None, ReadDirection::Backward, 1)
        .await
        .unwrap();
    assert_eq!(backward[0].version, 4);
}

/// Appends `batch`, retries it verbatim, and checks the retry changed nothing.
async fn assert_retry_is_noop(
    s: &dyn EventStore,
    name: &str,
    expected: ExpectedVersion,
    batch: Vec<NewEvent>,
) {
    let first = append_ok(s, name, expected, batch.clone()).await;
    let len = read_all_events(s).await.len();
    let retry = append_ok(s, name, expected, batch).await;
    assert_eq!(retry, first, "a retry returns the original result");
    assert_eq!(
        read_all_events(s).await.len(),
        len,
        "a retry writes nothing"
    );
}

pub async fn idempotent_retry_exact(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "idem-1", ExpectedVersion::Any, events(2)).await;
    let batch = events(2);
    assert_retry_is_noop(s, "idem-1", ExpectedVersion::Exact(1), batch.clone()).await;
    // Exact retries are recognised at any age, even after the stream moved on.
    append_ok(s, "idem-1", ExpectedVersion::Exact(3), events(1)).await;
    let r = append_ok(s, "idem-1", ExpectedVersion::Exact(1), batch).await;
    assert_eq!((r.next_expected_version, r.position), (3, 3));
    assert_eq!(read_all_events(s).await.len(), 5);
    assert_eq!(
        versions(&read_stream_events(s, "idem-1").await),
        vec![0, 1, 2, 3, 4]
    );
}

pub async fn idempotent_retry_no_stream(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let batch = events(3);
    assert_retry_is_noop(s, "idem-2", ExpectedVersion::NoStream, batch.clone()).await;
    append_ok(s, "idem-2", ExpectedVersion::Any, events(1)).await;
    let r = append_ok(s, "idem-2", ExpectedVersion::NoStream, batch).await;
    assert_eq!((r.next_expected_version, r.position), (2, 2));
    assert_eq!(read_all_events(s).await.len(), 4);
}

pub async fn idempotent_retry_any_and_exists(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    assert_retry_is_noop(s, "idem-3", ExpectedVersion::Any, events(2)).await;
    assert_retry_is_noop(s, "idem-3", ExpectedVersion::Any, events(1)).await;
    assert_retry_is_noop(s, "idem-3", ExpectedVersion::StreamExists, events(2)).await;
    // Within a small recent window, an `any` retry is still recognised after other writes.
    let batch = events(1);
    let first = append_ok(s, "idem-3", ExpectedVersion::Any, batch.clone()).await;
    append_ok(s, "idem-4", ExpectedVersion::Any, events(2)).await;
    let retry = append_ok(s, "idem-3", ExpectedVersion::Any, batch).await;
    assert_eq!(retry, first);
    assert_eq!(read_all_events(s).await.len(), 8);
    let evs = read_stream_events(s, "idem-3").await;
    assert_eq!(
        versions(&evs),
        (0..6).collect::<Vec<_>>(),
        "no duplicate in the stream"
    );
}

pub async fn different_ids_are_not_a_retry(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "idem-5", ExpectedVersion::NoStream, events(1)).await;
    // Same shape, new ids: a genuine second writer, so it must conflict.
    let e = append_err(s, "idem-5", ExpectedVersion::NoStream, events(1)).await;
    assert_conflict(
        &e,
        "idem-5",
        ExpectedVersion::NoStream,
        ActualVersion::Version(0),
    );
    let r = append_ok(s, "idem-5", ExpectedVersion::Any, events(1)).await;
    assert_eq!(
        r.next_expected_version, 1,
        "new ids under `any` append again"
    );
}
