//! Contract cases for input limits: a rejected request is `InvalidInput` and writes
//! nothing; input exactly at a limit is accepted. Sizes come from the store's own
//! [`eventum_core::Limits`], so every backend is held to the limits it advertises.

use eventum_core::{
    AppendError, ExpectedVersion, InvalidInput, NewEvent, ReadDirection, ReadError,
};

use super::*;

/// An event of type `T` whose size against the limits is exactly `size_bytes` (>= 3).
pub fn event_of_size(size_bytes: usize) -> NewEvent {
    // Type "T" (1 byte) + a JSON string: 2 quotes + the payload.
    let payload = "x".repeat(size_bytes - 3);
    let e = NewEvent::from_json("T", format!("\"{payload}\"")).expect("valid JSON");
    assert_eq!(e.size_bytes(), size_bytes);
    e
}

fn invalid(err: AppendError) -> InvalidInput {
    match err {
        AppendError::InvalidInput(i) => i,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

async fn assert_nothing_written(s: &dyn EventStore) {
    assert_eq!(s.head_position(), None, "a rejected append wrote nothing");
    assert!(
        read_all_events(s).await.is_empty(),
        "a rejected append wrote nothing"
    );
    let state = s.stream_state(&stream("lim-1")).await.unwrap();
    assert_eq!(state.version, eventum_core::ActualVersion::NoStream);
}

pub async fn rejects_empty_batch(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let e = invalid(append_err(s, "lim-1", ExpectedVersion::Any, vec![]).await);
    assert_eq!(e, InvalidInput::EmptyBatch);
    assert_nothing_written(s).await;
}

pub async fn rejects_too_many_events(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let max = s.limits().batch_events_max;
    let e = invalid(append_err(s, "lim-1", ExpectedVersion::Any, events(max as u64 + 1)).await);
    assert!(
        matches!(e, InvalidInput::BatchTooManyEvents { events, max_events } if events == max + 1 && max_events == max),
        "got {e:?}"
    );
    assert_nothing_written(s).await;
}

pub async fn rejects_too_large_event(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let max = s.limits().event_bytes_max;
    let batch = vec![event("T", 0), event_of_size(max + 1)];
    let e = invalid(append_err(s, "lim-1", ExpectedVersion::Any, batch).await);
    assert!(
        matches!(e, InvalidInput::EventTooLarge { index: 1, size_bytes, max_bytes } if size_bytes == max + 1 && max_bytes == max),
        "got {e:?}"
    );
    assert_nothing_written(s).await;
}

pub async fn rejects_too_large_batch(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let l = *s.limits();
    // Events at the per-event limit, just enough of them to pass the batch byte limit.
    let count = l.batch_bytes_max / l.event_bytes_max + 1;
    assert!(
        count <= l.batch_events_max,
        "limits make a too-large batch unreachable: {l:?}"
    );
    let batch: Vec<_> = (0..count)
        .map(|_| event_of_size(l.event_bytes_max))
        .collect();
    let e = invalid(append_err(s, "lim-1", ExpectedVersion::Any, batch).await);
    assert!(
        matches!(e, InvalidInput::BatchTooLarge { size_bytes, max_bytes } if size_bytes == count * l.event_bytes_max && max_bytes == l.batch_bytes_max),
        "got {e:?}"
    );
    assert_nothing_written(s).await;
}

pub async fn rejects_duplicate_ids(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let dup = event("T", 1);
    let batch = vec![event("T", 0), dup.clone(), event("T", 2), dup.clone()];
    let e = invalid(append_err(s, "lim-1", ExpectedVersion::Any, batch).await);
    assert_eq!(e, InvalidInput::DuplicateEventId(dup.id()));
    assert_nothing_written(s).await;
}

pub async fn accepts_input_at_the_limits(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    let l = *s.limits();
    let big = event_of_size(l.event_bytes_max);
    append_ok(s, "lim-1", ExpectedVersion::NoStream, vec![big.clone()]).await;
    let read = read_stream_events(s, "lim-1").await;
    assert_eq!(read[0].data, big.data(), "a maximal event round-trips");
    let r = append_ok(
        s,
        "lim-1",
        ExpectedVersion::Exact(0),
        events(l.batch_events_max as u64),
    )
    .await;
    assert_eq!(r.next_expected_version, l.batch_events_max as u64);
    let page = s
        .read_all(Some(0), ReadDirection::Forward, l.read_events_max)
        .await
        .expect("a read at the limit is accepted");
    assert_eq!(page.len(), l.read_events_max.min(l.batch_events_max + 1));
}

pub async fn rejects_bad_read_limits(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "lim-1", ExpectedVersion::Any, events(2)).await;
    let max = s.limits().read_events_max;
    for limit in [0, max + 1] {
        let expect = |r: Result<Vec<_>, ReadError>, what: &str| match r {
            Err(ReadError::InvalidInput(InvalidInput::ReadLimitOutOfRange {
                limit: l,
                max: m,
            })) => {
                assert_eq!((l, m), (limit, max), "{what}");
            }
            other => {
                panic!("{what} with limit {limit}: expected ReadLimitOutOfRange, got {other:?}")
            }
        };
        let name = stream("lim-1");
        expect(
            s.read_stream(&name, None, ReadDirection::Forward, limit)
                .await,
            "read_stream",
        );
        expect(
            s.read_stream(&name, None, ReadDirection::Backward, limit)
                .await,
            "read_stream backward",
        );
        expect(
            s.read_all(None, ReadDirection::Forward, limit).await,
            "read_all",
        );
        expect(
            s.read_all(None, ReadDirection::Backward, limit).await,
            "read_all backward",
        );
        expect(s.read_category("lim", 0, limit).await, "read_category");
    }
}
