//! Consumer groups (`eventum-groups`, their checkpoints in the PostgreSQL store) feeding
//! PostgreSQL handlers: competing consumers handle each event once, a redelivery of a
//! committed batch whose ack was lost is dropped by the inbox and acked, and a poison
//! event is parked in the dead-letter stream without holding the others.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use eventum_core::EventStore;
use eventum_groups::{GroupService, GroupSettings, GroupTarget, GroupsConfig};
use eventum_postgres_projections::{GroupConsumerConfig, PgGroupConsumer, handle_delivered};

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn quick() -> GroupConsumerConfig {
    GroupConsumerConfig {
        receive_events_max: 10,
        receive_wait_ms: 100,
        ..GroupConsumerConfig::default()
    }
}

async fn groups(env: &Env, settings: GroupSettings) -> Arc<GroupService> {
    let store: Arc<dyn EventStore> = env.store.clone();
    let service = GroupService::open(store, GroupsConfig::default())
        .await
        .unwrap();
    service.create("g", settings).await.unwrap();
    service
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_handle_each_event_once() {
    let env = env().await;
    for s in 0..5 {
        append_n(&*env.store, &format!("s-{s}"), "Happened", 12).await;
    }
    let service = groups(&env, GroupSettings::new(GroupTarget::All)).await;
    let handler = Arc::new(Ledger::default());
    let one = PgGroupConsumer::start(
        env.models.clone(),
        service.clone(),
        "g",
        "c1",
        handler.clone(),
        quick(),
    );
    let two = PgGroupConsumer::start(
        env.models.clone(),
        service.clone(),
        "g",
        "c2",
        handler,
        quick(),
    );
    wait_until("60 events handled", async || ledger(&env).await.len() == 60).await;
    let (a, b) = (one.stop().await, two.stop().await);
    assert_eq!(a.handled + b.handled, 60, "{a:?} {b:?}");
    assert_eq!(a.acked + b.acked, 60);
    assert_eq!(ledger(&env).await, (0..60).collect::<Vec<_>>());
    assert_eq!(inbox_len(&env, "g").await, 60);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_a_lost_ack_is_dropped_by_the_inbox() {
    let env = env().await;
    // Six streams: an ordered group has one event per stream in flight.
    for s in 0..6 {
        append_n(&*env.store, &format!("s-{s}"), "Happened", 1).await;
    }
    let settings = GroupSettings {
        ack_timeout_ms: 300,
        ..GroupSettings::new(GroupTarget::All)
    };
    let service = groups(&env, settings).await;
    // A consumer that commits its batch, then dies before acking it.
    let mut got = Vec::new();
    wait_until("the first deliveries", async || {
        got.extend(service.receive("g", "dies", 10, 100).await.unwrap());
        got.len() == 6
    })
    .await;
    let events: Vec<_> = got.iter().map(|d| (*d.event).clone()).collect();
    let handled = handle_delivered(&env.models, "g", &Ledger::default(), &events)
        .await
        .unwrap();
    assert_eq!(handled.new, 6);
    // After the ack timeout the group hands the same events to the next consumer.
    let next = PgGroupConsumer::start(
        env.models.clone(),
        service.clone(),
        "g",
        "next",
        Arc::new(Ledger::default()),
        quick(),
    );
    let mut watch = next.watch();
    tokio::time::timeout(Duration::from_secs(30), async {
        while watch.borrow_and_update().acked < 6 {
            watch.changed().await.unwrap();
        }
    })
    .await
    .expect("the redelivered events were acked within 30 s");
    let status = next.stop().await;
    assert_eq!(status.handled, 0, "nothing handled twice");
    assert_eq!(status.duplicates_dropped, 6);
    assert_eq!(ledger(&env).await, (0..6).collect::<Vec<_>>());
    assert_eq!(service.info("g").unwrap().in_flight, 0);
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_parked_and_the_others_are_handled() {
    let env = env().await;
    append_n(&*env.store, "s-1", "Happened", 3).await;
    let poison = append_n(&*env.store, "s-2", "Poison", 1).await;
    append_n(&*env.store, "s-3", "Happened", 3).await;
    let service = groups(&env, GroupSettings::new(GroupTarget::All)).await;
    let consumer = PgGroupConsumer::start(
        env.models.clone(),
        service.clone(),
        "g",
        "c1",
        Arc::new(Ledger::default()),
        quick(),
    );
    wait_until("the poison parked", async || {
        service.parked("g", 0, 10).unwrap().len() == 1
    })
    .await;
    wait_until("6 events handled", async || ledger(&env).await.len() == 6).await;
    let status = consumer.stop().await;
    let parked = service.parked("g", 0, 10).unwrap();
    assert_eq!(parked[0].event.position, poison);
    assert!(parked[0].reason.contains("poison"), "{}", parked[0].reason);
    assert_eq!(status.nacked, 1);
    assert_eq!(ledger(&env).await, vec![0, 1, 2, 4, 5, 6]);
    service.shutdown().await;
}
