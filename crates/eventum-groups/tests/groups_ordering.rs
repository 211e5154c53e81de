//! Competing consumers share a group's work while each stream is processed in order; the
//! targets (stream, category, `$all`) deliver what they match and never system streams.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use eventum_groups::{GroupTarget, NackAction};

/// Per stream, every (version, attempt) in the order consumers processed them.
type ProcessingLog = HashMap<String, Vec<(u64, u32)>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_keep_each_stream_in_order() {
    let env = env().await;
    const STREAMS: usize = 40;
    const PER_STREAM: u64 = 25;
    fill(&env.store, "acct", STREAMS, PER_STREAM).await;
    env.svc
        .create(
            "ledger",
            settings(GroupTarget::Category("acct".into()), true),
        )
        .await
        .unwrap();

    // Streams being processed right now, the processing log per stream (every attempt),
    // and what each consumer handled.
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let log: Arc<Mutex<ProcessingLog>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..4 {
        let svc = env.svc.clone();
        let active = active.clone();
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let consumer = format!("c{c}");
            let mut handled = 0usize;
            let mut idle_rounds = 0;
            while idle_rounds < 5 {
                let batch = svc.receive("ledger", &consumer, 8, 100).await.unwrap();
                if batch.is_empty() {
                    idle_rounds += 1;
                    continue;
                }
                idle_rounds = 0;
                for d in &batch {
                    assert!(
                        active.lock().unwrap().insert(d.event.stream.clone()),
                        "stream {} handed out twice at once",
                        d.event.stream
                    );
                    log.lock()
                        .unwrap()
                        .entry(d.event.stream.clone())
                        .or_default()
                        .push((d.event.version, d.attempt));
                }
                // Work takes a while, so that the other consumers compete for streams.
                tokio::time::sleep(Duration::from_millis(1)).await;
                for d in batch {
                    active.lock().unwrap().remove(&d.event.stream);
                    // Fail every 7th event once: the retry must still come before the next.
                    if d.event.version % 7 == 3 && d.attempt == 1 {
                        svc.nack("ledger", d.token, NackAction::Retry, "transient")
                            .await
                            .unwrap();
                    } else {
                        let r = svc.ack("ledger", &[d.token]).await.unwrap();
                        assert_eq!(r.acked, 1);
                    }
                    handled += 1;
                }
            }
            handled
        }));
    }
    let mut per_consumer = Vec::new();
    for t in tasks {
        per_consumer.push(t.await.unwrap());
    }
    assert!(
        per_consumer.iter().filter(|&&n| n > 0).count() >= 2,
        "work was not shared: {per_consumer:?}"
    );
    let log = log.lock().unwrap();
    assert_eq!(log.len(), STREAMS);
    for (stream, entries) in log.iter() {
        let versions: Vec<u64> = entries.iter().map(|e| e.0).collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{stream} processed out of order: {versions:?}"
        );
        let acked: Vec<u64> = entries
            .iter()
            .filter(|(v, a)| !(v % 7 == 3 && *a == 1))
            .map(|e| e.0)
            .collect();
        assert_eq!(acked, (0..PER_STREAM).collect::<Vec<_>>(), "{stream}");
    }
    let info = env.svc.info("ledger").unwrap();
    assert_eq!(info.in_flight, 0);
    assert_eq!(info.parked, 0);
    assert_eq!(info.checkpoint, STREAMS as u64 * PER_STREAM);
}

#[tokio::test]
async fn targets_deliver_what_they_match() {
    let env = env().await;
    append(&env.store, "order-1", 0).await;
    append(&env.store, "user-1", 0).await;
    append(&env.store, "order-2", 0).await;
    append(&env.store, "order-1", 1).await;
    let svc = &env.svc;
    svc.create("one", settings(GroupTarget::Stream("order-1".into()), true))
        .await
        .unwrap();
    svc.create(
        "orders",
        settings(GroupTarget::Category("order".into()), true),
    )
    .await
    .unwrap();
    svc.create("everything", settings(GroupTarget::All, false))
        .await
        .unwrap();

    let streams = |ds: &[eventum_groups::Delivery]| -> Vec<String> {
        ds.iter()
            .map(|d| format!("{}@{}", d.event.stream, d.event.version))
            .collect()
    };
    let one = receive_n(svc, "one", "c", 10, Duration::from_millis(400)).await;
    assert_eq!(
        streams(&one),
        ["order-1@0"],
        "ordered: one at a time per stream"
    );
    svc.ack("one", &[one[0].token]).await.unwrap();
    let one = receive_n(svc, "one", "c", 10, Duration::from_millis(400)).await;
    assert_eq!(streams(&one), ["order-1@1"]);

    let mut orders = receive_n(svc, "orders", "c", 10, Duration::from_millis(400)).await;
    orders.sort_by_key(|d| d.event.position);
    assert_eq!(streams(&orders), ["order-1@0", "order-2@0"]);

    // `$all` skips system streams: the other groups' checkpoints and definitions exist
    // by now, yet only the four user events arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = receive_n(svc, "everything", "c", 10, Duration::from_millis(400)).await;
    assert_eq!(
        streams(&all),
        ["order-1@0", "user-1@0", "order-2@0", "order-1@1"]
    );
    assert!(!read_stream(&env.store, "$groups").await.is_empty());
}
