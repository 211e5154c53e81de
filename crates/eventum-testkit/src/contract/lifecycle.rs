//! Contract cases for a stream's lifecycle beyond appends: soft deletion (a marker in
//! `$${stream}`) and retention metadata (`$metadata` events) that hides old events from
//! stream reads but never from `$all`.

use std::time::Duration;

use eventum_core::{
    ActualVersion, AppendError, ExpectedVersion, ReadDirection, ReadError, StreamMetadata,
};

use super::*;

pub use eventum_core::stream::{METADATA_TYPE, STREAM_DELETED_TYPE as DELETED_TYPE};

fn assert_deleted_append(r: Result<eventum_core::AppendResult, AppendError>, name: &str) {
    match r {
        Err(AppendError::StreamDeleted { stream }) => assert_eq!(stream, name),
        other => panic!("writing to deleted {name}: expected StreamDeleted, got {other:?}"),
    }
}

fn assert_deleted_read<T: std::fmt::Debug>(r: Result<T, ReadError>, name: &str) {
    match r {
        Err(ReadError::StreamDeleted { stream }) => assert_eq!(stream, name),
        other => panic!("reading deleted {name}: expected StreamDeleted, got {other:?}"),
    }
}

pub async fn soft_delete(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "del-1", ExpectedVersion::NoStream, events(3)).await;
    append_ok(s, "keep-1", ExpectedVersion::NoStream, events(1)).await;
    let before = read_all_events(s).await;
    let name = stream("del-1");

    let r = bounded("delete", s.delete_stream(&name, ExpectedVersion::Exact(2)))
        .await
        .unwrap();
    assert_eq!(r.position, 4, "the marker takes the next global position");
    for direction in [ReadDirection::Forward, ReadDirection::Backward] {
        assert_deleted_read(s.read_stream(&name, None, direction, 10).await, "del-1");
    }
    let all = read_all_events(s).await;
    assert_eq!(
        all[..4],
        before[..],
        "deleted events stay in $all unchanged"
    );
    assert_eq!(all.len(), 5);
    assert_eq!(
        all[4].stream, "$$del-1",
        "the marker lives in the metadata stream"
    );
    assert_eq!(all[4].event_type, DELETED_TYPE);

    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::Exact(2),
        ExpectedVersion::NoStream,
    ] {
        assert_deleted_append(s.append(&name, expected, events(1)).await, "del-1");
    }
    assert_deleted_append(s.delete_stream(&name, ExpectedVersion::Any).await, "del-1");
    assert_deleted_append(
        s.set_stream_metadata(&name, StreamMetadata::default())
            .await,
        "del-1",
    );
    assert_eq!(
        read_all_events(s).await.len(),
        5,
        "refused writes wrote nothing"
    );

    let state = s.stream_state(&name).await.unwrap();
    assert!(state.deleted, "stream_state reports the deletion");
    assert_eq!(state.version, ActualVersion::Version(2));
    assert!(!s.stream_state(&stream("keep-1")).await.unwrap().deleted);
    assert_eq!(
        read_stream_events(s, "keep-1").await.len(),
        1,
        "other streams unaffected"
    );
    // The category and $all still show the history.
    assert_eq!(s.read_category("del", 0, 10).await.unwrap().len(), 3);
}

pub async fn delete_conflicts_and_missing_streams(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "del-2", ExpectedVersion::NoStream, events(2)).await;
    let name = stream("del-2");
    for wrong in [ExpectedVersion::Exact(0), ExpectedVersion::NoStream] {
        let e = s.delete_stream(&name, wrong).await.unwrap_err();
        assert_conflict(&e, "del-2", wrong, ActualVersion::Version(1));
    }
    assert_eq!(
        read_all_events(s).await.len(),
        2,
        "a refused delete wrote nothing"
    );
    assert_eq!(
        read_stream_events(s, "del-2").await.len(),
        2,
        "still readable"
    );
    let e = s
        .delete_stream(&stream("ghost-1"), ExpectedVersion::StreamExists)
        .await
        .unwrap_err();
    assert_conflict(
        &e,
        "ghost-1",
        ExpectedVersion::StreamExists,
        ActualVersion::NoStream,
    );
    s.delete_stream(&name, ExpectedVersion::StreamExists)
        .await
        .unwrap();
    assert_deleted_read(
        s.read_stream(&name, None, ReadDirection::Forward, 1).await,
        "del-2",
    );

    // A stream that never existed can be deleted (reserving the name).
    let ghost = stream("ghost-2");
    s.delete_stream(&ghost, ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert_deleted_read(
        s.read_stream(&ghost, None, ReadDirection::Forward, 1).await,
        "ghost-2",
    );
    let state = s.stream_state(&ghost).await.unwrap();
    assert!(state.deleted);
    assert_eq!(state.version, ActualVersion::NoStream);
    assert_deleted_append(
        s.append(&ghost, ExpectedVersion::Any, events(1)).await,
        "ghost-2",
    );
}

pub async fn metadata_max_count(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "meta-1", ExpectedVersion::NoStream, events(5)).await;
    let name = stream("meta-1");
    let meta = StreamMetadata {
        max_count: Some(2),
        max_age_s: None,
    };
    let r = s.set_stream_metadata(&name, meta.clone()).await.unwrap();
    assert_eq!(
        r.position, 5,
        "the metadata event takes the next global position"
    );
    assert_eq!(
        r.next_expected_version, 0,
        "first event of the metadata stream"
    );
    let state = s.stream_state(&name).await.unwrap();
    assert_eq!(state.metadata, meta, "stream_state returns the metadata");
    assert_eq!(
        state.version,
        ActualVersion::Version(4),
        "retention does not change the version"
    );

    assert_eq!(versions(&read_stream_events(s, "meta-1").await), vec![3, 4]);
    let back = s
        .read_stream(&name, None, ReadDirection::Backward, 10)
        .await
        .unwrap();
    assert_eq!(versions(&back), vec![4, 3]);
    let from0 = s
        .read_stream(&name, Some(0), ReadDirection::Forward, 1)
        .await
        .unwrap();
    assert_eq!(
        versions(&from0),
        vec![3],
        "hidden events do not count against the limit"
    );
    let all = read_all_events(s).await;
    assert_eq!(all.len(), 6, "$all keeps every event");
    assert_eq!(
        (all[5].stream.as_str(), all[5].event_type.as_str()),
        ("$$meta-1", METADATA_TYPE)
    );

    append_ok(s, "meta-1", ExpectedVersion::Exact(4), events(1)).await;
    assert_eq!(
        versions(&read_stream_events(s, "meta-1").await),
        vec![4, 5],
        "the window slides"
    );

    s.set_stream_metadata(&name, StreamMetadata::default())
        .await
        .unwrap();
    assert_eq!(
        s.stream_state(&name).await.unwrap().metadata,
        StreamMetadata::default()
    );
    assert_eq!(
        read_stream_events(s, "meta-1").await.len(),
        6,
        "clearing shows all again"
    );
}

pub async fn metadata_max_age(f: &dyn StoreFactory) {
    let t = f.create().await;
    let s = &*t.store;
    append_ok(s, "age-1", ExpectedVersion::NoStream, events(2)).await;
    let name = stream("age-1");
    let meta = StreamMetadata {
        max_count: None,
        max_age_s: Some(1),
    };
    s.set_stream_metadata(&name, meta.clone()).await.unwrap();
    assert_eq!(s.stream_state(&name).await.unwrap().metadata, meta);
    assert_eq!(
        read_stream_events(s, "age-1").await.len(),
        2,
        "young events are visible"
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    append_ok(s, "age-1", ExpectedVersion::Exact(1), events(1)).await;
    let visible = read_stream_events(s, "age-1").await;
    assert_eq!(
        versions(&visible),
        vec![2],
        "events older than max_age are hidden"
    );
    assert_eq!(read_all_events(s).await.len(), 4, "$all keeps aged events");
    assert_eq!(
        s.stream_state(&name).await.unwrap().version,
        ActualVersion::Version(2)
    );
}
