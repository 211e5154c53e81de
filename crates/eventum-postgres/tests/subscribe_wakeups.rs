//! How subscribers learn of commits made by another process: through LISTEN/NOTIFY within
//! well under the poll interval, and through polling alone when notifications are off
//! (standing in for a lost notification).

mod common;

use std::time::{Duration, Instant};

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, StreamName, SubscriptionFrom, SubscriptionTarget,
};
use futures::StreamExt;

/// Appends through `writer` and measures how long a subscriber on `reader` (another
/// instance on the same schema) takes to see it.
async fn delivery_delay(listen: bool, poll_interval_ms: u64) -> Duration {
    let mut config = common::fresh_config();
    let guard = common::Guard {
        store: None,
        config: config.clone(),
    };
    config.listen = listen;
    config.poll_interval_ms = poll_interval_ms;
    let writer = common::open(config.clone()).await;
    let reader = common::open(config).await;
    let mut sub = reader.subscribe(SubscriptionTarget::All, SubscriptionFrom::Position(0));
    // Let the reader's follower finish its first poll and block.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stream = StreamName::new("wake-1").unwrap();
    let started = Instant::now();
    writer
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![NewEvent::from_json("T", "1").unwrap()],
        )
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("delivered")
        .unwrap()
        .unwrap();
    let delay = started.elapsed();
    assert_eq!((e.stream.as_str(), e.position), ("wake-1", 0));
    drop(sub);
    drop((writer, reader));
    drop(guard);
    delay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_another_instance_long_before_the_poll() {
    let delay = delivery_delay(true, 10_000).await;
    assert!(
        delay < Duration::from_secs(5),
        "with LISTEN/NOTIFY the subscriber waited {delay:?}, as if it had polled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_alone_delivers_when_notifications_are_lost() {
    let delay = delivery_delay(false, 300).await;
    assert!(
        delay < Duration::from_secs(10),
        "polling every 300 ms took {delay:?}"
    );
}
