//! Contract cases for reads: streams forward and backward from a version, `$all` from a
//! position, categories in global order, and missing streams.

use eventum_core::{ExpectedVersion, ReadDirection, ReadError};

use super::*;

async fn read_versions(
    s: &dyn EventStore,
    name: &str,
    from: Option<u64>,
    direction: ReadDirection,
    limit: usize,
) -> Vec<u64> {
    let evs = s
        .read_stream(&stream(name), from, direction, limit)
        .await
        .unwrap_or_else(|e| panic!("read {name} from {from:?} {direction:?}: {e:?}"));
    assert!(
        evs.iter().all(|e| e.stream == name),
        "only events of {name}"
    );
    versions(&evs)
}

async fn ten_events_interleaved(s: &dyn EventStore) {
    // Interleave another stream so stream versions and global positions differ.
    for i in 0..10 {
        append_ok(s, "rs-1", ExpectedVersion::Any, vec![event("T", i)]).await;
        append_ok(s, "noise-1", ExpectedVersion::Any, vec![event("N", i)]).await;
    }
}

pub async fn read_stream_forward(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    ten_events_interleaved(s).await;
    let fwd = ReadDirection::Forward;
    assert_eq!(
        read_versions(s, "rs-1", None, fwd, 100).await,
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        read_versions(s, "rs-1", Some(0), fwd, 3).await,
        vec![0, 1, 2]
    );
    assert_eq!(
        read_versions(s, "rs-1", Some(3), fwd, 4).await,
        vec![3, 4, 5, 6]
    );
    assert_eq!(read_versions(s, "rs-1", Some(8), fwd, 5).await, vec![8, 9]);
    assert!(
        read_versions(s, "rs-1", Some(10), fwd, 5).await.is_empty(),
        "past the end"
    );
    assert!(
        read_versions(s, "rs-1", Some(1_000), fwd, 5)
            .await
            .is_empty()
    );
    let evs = read_stream_events(s, "rs-1").await;
    assert_eq!(positions(&evs), (0..10).map(|i| 2 * i).collect::<Vec<_>>());
}

pub async fn read_stream_backward(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    ten_events_interleaved(s).await;
    let bwd = ReadDirection::Backward;
    assert_eq!(read_versions(s, "rs-1", None, bwd, 3).await, vec![9, 8, 7]);
    assert_eq!(
        read_versions(s, "rs-1", Some(4), bwd, 10).await,
        vec![4, 3, 2, 1, 0]
    );
    assert_eq!(read_versions(s, "rs-1", Some(6), bwd, 2).await, vec![6, 5]);
    assert_eq!(read_versions(s, "rs-1", Some(0), bwd, 2).await, vec![0]);
    assert_eq!(
        read_versions(s, "rs-1", Some(1_000), bwd, 2).await,
        vec![9, 8],
        "a start past the end reads from the last event"
    );
    let mut fwd = read_stream_events(s, "rs-1").await;
    fwd.reverse();
    let back = s
        .read_stream(&stream("rs-1"), None, bwd, 100)
        .await
        .unwrap();
    assert_eq!(back, fwd, "backward is forward reversed");
}

/// Reads longer than a store's internal page (the embedded store reads the first events
/// on the caller's task and the rest in the blocking pool) are whole and in order.
pub async fn read_long_stream_across_pages(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    for _ in 0..3 {
        append_ok(s, "long-1", ExpectedVersion::Any, events(100)).await;
    }
    let (fwd, bwd) = (ReadDirection::Forward, ReadDirection::Backward);
    assert_eq!(
        read_versions(s, "long-1", Some(5), fwd, 250).await,
        (5..255).collect::<Vec<_>>()
    );
    assert_eq!(
        read_versions(s, "long-1", Some(290), fwd, 250).await,
        (290..300).collect::<Vec<_>>()
    );
    assert_eq!(
        read_versions(s, "long-1", None, bwd, 200).await,
        (100..300).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        read_versions(s, "long-1", Some(70), bwd, 100).await,
        (0..=70).rev().collect::<Vec<_>>()
    );
}

pub async fn read_missing_stream(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "present-1", ExpectedVersion::Any, events(1)).await;
    for direction in [ReadDirection::Forward, ReadDirection::Backward] {
        match s
            .read_stream(&stream("absent-1"), None, direction, 10)
            .await
        {
            Err(ReadError::StreamNotFound { stream }) => assert_eq!(stream, "absent-1"),
            other => panic!("reading a missing stream: expected StreamNotFound, got {other:?}"),
        }
    }
    let state = s.stream_state(&stream("absent-1")).await.unwrap();
    assert_eq!(state.version, eventum_core::ActualVersion::NoStream);
    assert!(!state.deleted);
    assert_eq!(state.metadata, eventum_core::StreamMetadata::default());
}

pub async fn read_all_forward_and_backward(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    for direction in [ReadDirection::Forward, ReadDirection::Backward] {
        let empty = s.read_all(None, direction, 10).await.unwrap();
        assert!(empty.is_empty(), "an empty store reads empty {direction:?}");
    }
    ten_events_interleaved(s).await;
    let all = read_all_events(s).await;
    assert_eq!(positions(&all), (0..20).collect::<Vec<_>>());
    let read = |from, direction, limit| async move {
        positions(&s.read_all(from, direction, limit).await.unwrap())
    };
    let (fwd, bwd) = (ReadDirection::Forward, ReadDirection::Backward);
    assert_eq!(read(None, fwd, 3).await, vec![0, 1, 2]);
    assert_eq!(read(Some(2), fwd, 3).await, vec![2, 3, 4]);
    assert_eq!(read(Some(18), fwd, 10).await, vec![18, 19]);
    assert!(read(Some(20), fwd, 10).await.is_empty(), "past the head");
    assert_eq!(read(None, bwd, 2).await, vec![19, 18]);
    assert_eq!(read(Some(3), bwd, 10).await, vec![3, 2, 1, 0]);
    assert_eq!(
        read(Some(500), bwd, 1).await,
        vec![19],
        "clamped to the head"
    );
    let mut back = s.read_all(None, bwd, 100).await.unwrap();
    back.reverse();
    assert_eq!(back, all, "backward is forward reversed");
}

pub async fn read_category_in_global_order(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    // "cart" (no dash) belongs to category "cart"; "cartx-1" and "user-1" do not.
    let plan = [
        "cart-1", "user-1", "cart-2", "cartx-1", "cart", "cart-1", "user-1", "cart-2",
    ];
    for (i, name) in plan.iter().enumerate() {
        append_ok(s, name, ExpectedVersion::Any, vec![event("T", i as u64)]).await;
    }
    let cat = s.read_category("cart", 0, 100).await.unwrap();
    assert_eq!(
        positions(&cat),
        vec![0, 2, 4, 5, 7],
        "only the category, in global order"
    );
    assert!(cat.iter().all(|e| e.category() == "cart"));
    let all = read_all_events(s).await;
    for e in &cat {
        assert_eq!(
            e, &all[e.position as usize],
            "category reads return the recorded event"
        );
    }
    assert_eq!(
        positions(&s.read_category("cart", 3, 100).await.unwrap()),
        vec![4, 5, 7]
    );
    assert_eq!(
        positions(&s.read_category("cart", 1, 2).await.unwrap()),
        vec![2, 4]
    );
    assert_eq!(
        positions(&s.read_category("cart", 5, 1).await.unwrap()),
        vec![5]
    );
    assert!(
        s.read_category("cart", 8, 10).await.unwrap().is_empty(),
        "past the head"
    );
    assert_eq!(
        positions(&s.read_category("user", 0, 10).await.unwrap()),
        vec![1, 6]
    );
    assert_eq!(
        positions(&s.read_category("cartx", 0, 10).await.unwrap()),
        vec![3]
    );
    assert!(s.read_category("nothing", 0, 10).await.unwrap().is_empty());
}
