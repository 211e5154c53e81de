//! The consumer's promise, against the real PostgreSQL: the handler's writes, the
//! checkpoint and the inbox rows commit together or not at all (a handler error, a
//! failure injected at the checkpoint write, a connection cut mid-batch), a repeated
//! event id is dropped, and a restarted consumer resumes right after its last committed
//! batch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, StreamMetadata, StreamName, SubscriptionTarget,
};
use eventum_postgres_projections::{
    ConsumerConfig, ConsumerError, ConsumerState, PgConsumer, inbox,
};

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 30 s"))
}

async fn start(env: &Env, name: &str, config: ConsumerConfig) -> PgConsumer {
    PgConsumer::start(
        env.models.clone(),
        env.store.clone(),
        name,
        SubscriptionTarget::All,
        Arc::new(Ledger::default()),
        config,
    )
    .await
    .unwrap()
}

/// Waits until the consumer stops by itself and returns its error.
async fn failure(consumer: &PgConsumer) -> ConsumerError {
    let mut rx = consumer.watch();
    within("the failure", async {
        loop {
            if let ConsumerState::Failed(e) = &rx.borrow_and_update().state {
                return e.clone();
            }
            rx.changed().await.unwrap();
        }
    })
    .await
}

#[tokio::test]
async fn handler_writes_checkpoint_and_inbox_commit_together() {
    let env = env().await;
    for s in ["a-1", "b-1", "b-2"] {
        append_n(&*env.store, s, "Happened", 10).await;
    }
    let consumer = start(&env, "ledger", consumer_config()).await;
    within("catch-up", consumer.wait_for_position(29))
        .await
        .unwrap();
    assert_eq!(ledger(&env).await, (0..30).collect::<Vec<_>>());
    assert_eq!(env.models.checkpoint("ledger").await.unwrap(), Some(30));
    assert_eq!(inbox_len(&env, "ledger").await, 30);
    // Live events are handled too, in batches of at most 8.
    let last = append_n(&*env.store, "a-1", "Happened", 12).await;
    let status = within("live", consumer.wait_for_position(last))
        .await
        .unwrap();
    assert_eq!(status.events_handled, 42);
    assert_eq!(ledger(&env).await, (0..42).collect::<Vec<_>>());
    let totals = env
        .admin
        .query_one(
            &format!(
                "SELECT n FROM {}.rm_totals WHERE stream = 'a-1'",
                env.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(totals, 22);
    assert!(status.batches_committed >= 42 / 8);
    consumer.stop().await.unwrap();
}

#[tokio::test]
async fn a_fatal_handler_error_rolls_back_the_whole_batch() {
    let env = env().await;
    append_n(&*env.store, "a-1", "Happened", 5).await;
    let poison = append_n(&*env.store, "a-1", "Poison", 1).await;
    append_n(&*env.store, "a-1", "Happened", 3).await;
    let config = ConsumerConfig {
        batch_events_max: 100,
        batch_latency_ms_max: 300,
        ..consumer_config()
    };
    let consumer = start(&env, "ledger", config).await;
    let error = failure(&consumer).await;
    let ConsumerError::Batch {
        first,
        last,
        attempts,
        source,
        ..
    } = &error
    else {
        panic!("expected a batch failure, got {error}");
    };
    assert!(
        *first < poison && *last >= poison,
        "the batch {first}..={last} holds good events before the poison at {poison}"
    );
    assert_eq!(*attempts, 1, "a fatal error is not tried again");
    assert!(!source.transient);
    assert!(source.message.contains("poison"), "{source}");
    // Nothing of the failed batch: no handler rows (not even the good events before the
    // poison), no inbox ids, the checkpoint where the batch started.
    let checkpoint = env.models.checkpoint("ledger").await.unwrap().unwrap();
    assert_eq!(checkpoint, *first);
    assert_eq!(ledger(&env).await, (0..*first).collect::<Vec<_>>());
    assert_eq!(inbox_len(&env, "ledger").await, *first as i64);
    assert!(consumer.stop().await.is_err(), "stop reports the failure");
}

#[tokio::test]
async fn a_failure_injected_at_the_checkpoint_write_rolls_back_handler_writes_and_inbox() {
    let env = env().await;
    append_n(&*env.store, "a-1", "Happened", 20).await;
    // The checkpoint write is the batch's last statement: make it fail beyond position 8.
    env.admin
        .batch_execute(&format!(
            "CREATE FUNCTION {s}.refuse() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'injected checkpoint failure'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {s}.consumer_checkpoints
                 FOR EACH ROW WHEN (NEW.position_next > 8) EXECUTE FUNCTION {s}.refuse();",
            s = env.schema
        ))
        .await
        .unwrap();
    let consumer = start(&env, "ledger", consumer_config()).await;
    let error = failure(&consumer).await;
    assert!(
        error.to_string().contains("injected checkpoint failure"),
        "{error}"
    );
    // Batches of 8: the first committed whole; the second's handler rows and inbox ids
    // were rolled back with its checkpoint.
    assert_eq!(env.models.checkpoint("ledger").await.unwrap(), Some(8));
    assert_eq!(ledger(&env).await, (0..8).collect::<Vec<_>>());
    assert_eq!(inbox_len(&env, "ledger").await, 8);
    let _ = consumer.stop().await;

    env.admin
        .batch_execute(&format!(
            "DROP TRIGGER refuse ON {}.consumer_checkpoints",
            env.schema
        ))
        .await
        .unwrap();
    let consumer = start(&env, "ledger", consumer_config()).await;
    within("resume", consumer.wait_for_position(19))
        .await
        .unwrap();
    assert_eq!(ledger(&env).await, (0..20).collect::<Vec<_>>());
    assert_eq!(inbox_len(&env, "ledger").await, 20);
    consumer.stop().await.unwrap();
}

#[tokio::test]
async fn a_connection_cut_mid_batch_is_tried_again_and_applied_once() {
    let env = env().await;
    append_n(&*env.store, "a-1", "Happened", 4).await;
    let cut = append_n(&*env.store, "a-1", "CutConnection", 1).await;
    let last = append_n(&*env.store, "a-1", "Happened", 10).await;
    let consumer = start(&env, "ledger", consumer_config()).await;
    let status = within("catch-up", consumer.wait_for_position(last))
        .await
        .unwrap();
    // The batch with the cut was rolled back and tried again on a new connection; the
    // ledger's primary key would have refused a second application of any event.
    assert_eq!(ledger(&env).await, (0..=last).collect::<Vec<_>>());
    assert_eq!(status.events_handled, last + 1);
    assert!(cut <= last);
    assert!(
        status.retries >= 1,
        "the cut batch was tried again: {status:?}"
    );
    assert_eq!(inbox_len(&env, "ledger").await, (last + 1) as i64);
    consumer.stop().await.unwrap();
}

#[tokio::test]
async fn an_event_id_seen_before_is_dropped() {
    let env = env().await;
    let twice = NewEvent::from_json("Happened", "{}").unwrap();
    let a = StreamName::new("a-1").unwrap();
    let b = StreamName::new("b-1").unwrap();
    env.store
        .append(&a, ExpectedVersion::Any, vec![twice.clone()])
        .await
        .unwrap();
    append_n(&*env.store, "a-1", "Happened", 3).await;
    // The same event id again, in another stream: the log holds it twice (as after a
    // broker redelivery appended again, or a retry beyond the store's dedupe window).
    let again = env
        .store
        .append(&b, ExpectedVersion::Any, vec![twice.clone()])
        .await
        .unwrap();
    assert_eq!(again.position, 4, "the store appended the id a second time");
    let consumer = start(&env, "ledger", consumer_config()).await;
    let status = within("catch-up", consumer.wait_for_position(4))
        .await
        .unwrap();
    assert_eq!(
        ledger(&env).await,
        vec![0, 1, 2, 3],
        "position 4 repeats id of 0"
    );
    assert_eq!(status.duplicates_dropped, 1);
    assert_eq!(status.events_handled, 4);
    assert_eq!(env.models.checkpoint("ledger").await.unwrap(), Some(5));
    consumer.stop().await.unwrap();

    // The inbox on its own, as a broker or group consumer uses it: repeats within one
    // call and across committed transactions are not new; a rolled-back record is gone.
    let fresh = uuid::Uuid::now_v7();
    let mut client = env.models.client().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let new = inbox::record(&tx, "other", &[fresh, twice.id(), fresh])
        .await
        .unwrap();
    assert_eq!(new, vec![true, true, false]);
    tx.rollback().await.unwrap();
    let tx = client.transaction().await.unwrap();
    assert_eq!(
        inbox::record(&tx, "other", &[fresh]).await.unwrap(),
        vec![true],
        "the rolled-back record left nothing"
    );
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    assert_eq!(
        inbox::record(&tx, "other", &[fresh]).await.unwrap(),
        vec![false]
    );
    tx.commit().await.unwrap();
    assert!(inbox::contains(&client, "other", fresh).await.unwrap());
}

#[tokio::test]
async fn a_restarted_consumer_resumes_right_after_its_last_committed_batch() {
    let env = env().await;
    let first_run = append_n(&*env.store, "a-1", "Happened", 13).await;
    let consumer = start(&env, "ledger", consumer_config()).await;
    within("first run", consumer.wait_for_position(first_run))
        .await
        .unwrap();
    consumer.stop().await.unwrap();
    assert_eq!(
        env.models.checkpoint("ledger").await.unwrap(),
        Some(first_run + 1)
    );
    let second_run = append_n(&*env.store, "b-1", "Happened", 9).await;
    let consumer = start(&env, "ledger", consumer_config()).await;
    let status = within("second run", consumer.wait_for_position(second_run))
        .await
        .unwrap();
    // Handled exactly the events after the checkpoint (the ledger's key refuses replays).
    assert_eq!(status.events_handled, 9);
    assert_eq!(status.duplicates_dropped, 0);
    assert_eq!(ledger(&env).await, (0..=second_run).collect::<Vec<_>>());
    consumer.stop().await.unwrap();
}

#[tokio::test]
async fn two_runners_of_one_consumer_handle_each_event_once() {
    let env = env().await;
    let writer = {
        let store = env.store.clone();
        tokio::spawn(async move { append_n(&*store, "a-1", "Happened", 150).await })
    };
    let one = start(&env, "ledger", consumer_config()).await;
    let two = start(&env, "ledger", consumer_config()).await;
    let last = writer.await.unwrap();
    within("one", one.wait_for_position(last)).await.unwrap();
    within("two", two.wait_for_position(last)).await.unwrap();
    assert_eq!(ledger(&env).await, (0..=last).collect::<Vec<_>>());
    let handled = one.status().events_handled + two.status().events_handled;
    assert_eq!(
        handled,
        last + 1,
        "each event handled by exactly one runner"
    );
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}

#[tokio::test]
async fn a_category_consumer_skips_other_categories_and_system_streams() {
    let env = env().await;
    append_n(&*env.store, "order-1", "Happened", 3).await;
    append_n(&*env.store, "user-1", "Happened", 3).await;
    env.store
        .set_stream_metadata(
            &StreamName::new("order-1").unwrap(),
            StreamMetadata {
                max_count: Some(100),
                max_age_s: None,
            },
        )
        .await
        .unwrap();
    let last = append_n(&*env.store, "order-2", "Happened", 2).await;
    let orders = PgConsumer::start(
        env.models.clone(),
        env.store.clone(),
        "orders",
        SubscriptionTarget::Category("order".into()),
        Arc::new(Ledger::default()),
        consumer_config(),
    )
    .await
    .unwrap();
    within("orders", orders.wait_for_position(last))
        .await
        .unwrap();
    assert_eq!(ledger(&env).await, vec![0, 1, 2, 7, 8]);
    orders.stop().await.unwrap();
    // An $all consumer skips the `$$order-1` metadata event (position 6) by default, but
    // its checkpoint moves past it.
    env.admin
        .batch_execute(&format!("TRUNCATE {}.rm_ledger", env.schema))
        .await
        .unwrap();
    let all = start(&env, "all", consumer_config()).await;
    within("all", all.wait_for_position(last)).await.unwrap();
    assert_eq!(ledger(&env).await, vec![0, 1, 2, 3, 4, 5, 7, 8]);
    assert_eq!(env.models.checkpoint("all").await.unwrap(), Some(9));
    all.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_names_are_refused() {
    let env = env().await;
    for name in ["", "a\nb"] {
        let r = PgConsumer::start(
            env.models.clone(),
            env.store.clone(),
            name,
            SubscriptionTarget::All,
            Arc::new(Ledger::default()),
            consumer_config(),
        )
        .await;
        assert!(
            matches!(r, Err(ConsumerError::Invalid { .. })),
            "{name:?} refused"
        );
    }
}
