//! Crash test with real processes: this test binary re-executes itself as a child that
//! appends to the PostgreSQL store while a `PgConsumer` follows it, writing a ledger row
//! per event and a row per batch in the batch's transaction. The parent kills the child
//! with SIGKILL at a random moment, then checks in the database, before anything runs
//! again, that the handler's writes, the checkpoint and the inbox agree exactly (every
//! position below the checkpoint handled once, nothing at or above it), and at the end
//! that the batches of all runs tile the log without gap or overlap: each restarted
//! consumer resumed right after the last batch committed before the kill.
//! `EVENTUM_CRASH_CYCLES` sets the number of cycles (default 12), `EVENTUM_CRASH_SEED`
//! replays the kill times of an earlier run.

mod common;

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use eventum_core::{EventStore, ExpectedVersion, RecordedEvent, StreamName, SubscriptionTarget};
use eventum_postgres_projections::{
    ConsumerConfig, HandlerError, PgConsumer, PgHandler, Transaction,
};
use eventum_testkit::crash::{Child, Rng, count_from_env, say_ready, seed_from_env};

const SCHEMA_ENV: &str = "EVENTUM_PGP_CRASH_SCHEMA";
const CYCLE_ENV: &str = "EVENTUM_PGP_CRASH_CYCLE";
const CHILD_TEST: &str = "crash_child";
const CONSUMER: &str = "ledger";

/// The ledger plus one `rm_batches` row per batch, with a pause between the two so that
/// kills often land inside a transaction.
struct BatchLedger {
    ledger: Ledger,
    run: i64,
}

#[async_trait]
impl PgHandler for BatchLedger {
    async fn handle(
        &self,
        tx: &mut Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        self.ledger.handle(tx, events).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let first = events.first().map_or(0, |e| e.position as i64);
        let last = events.last().map_or(0, |e| e.position as i64);
        tx.execute(
            "INSERT INTO rm_batches (first, last, run) VALUES ($1, $2, $3)",
            &[&first, &last, &self.run],
        )
        .await?;
        Ok(())
    }
}

fn consumer_settings() -> ConsumerConfig {
    ConsumerConfig {
        batch_events_max: 16,
        batch_latency_ms_max: 2,
        // Large enough never to prune during the test: the inbox is checked exactly.
        inbox_ids_max: 10_000_000,
        retry_delay_ms_min: 10,
        retry_delay_ms_max: 100,
        ..ConsumerConfig::default()
    }
}

fn store_config(schema: &str) -> eventum_postgres::PgConfig {
    let mut c = eventum_postgres::PgConfig::new(pg::test_url()).with_schema(schema);
    c.pool_size_max = 4;
    c.poll_interval_ms = 100;
    c
}

// ---------------------------------------------------------------------------------------
// The child.

#[test]
#[ignore = "child process of sigkill_never_leaves_a_read_model_apart_from_its_checkpoint"]
fn crash_child() {
    let Some(schema) = std::env::var_os(SCHEMA_ENV) else {
        return;
    };
    let schema = schema.into_string().unwrap();
    let cycle: i64 = std::env::var(CYCLE_ENV).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = pg::open(store_config(&schema)).await;
        let models = open_models(&schema).await;
        let _consumer = PgConsumer::start(
            models,
            store.clone(),
            CONSUMER,
            SubscriptionTarget::All,
            Arc::new(BatchLedger {
                ledger: Ledger::default(),
                run: cycle,
            }),
            consumer_settings(),
        )
        .await
        .unwrap();
        say_ready();
        let mut rng = Rng(cycle as u64 + 1);
        loop {
            let stream = StreamName::new(format!("s-{}", rng.below(20))).unwrap();
            let n = 1 + rng.below(4) as usize;
            let events = (0..n).map(|_| event("Happened")).collect();
            store
                .append(&stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------
// The parent.

/// Checks that the handler's rows, the inbox and the checkpoint agree exactly, in one
/// snapshot (the killed child's last COMMIT may still be landing); returns the checkpoint.
async fn check_agreement(admin: &tokio_postgres::Client, schema: &str, cycle: u64) -> u64 {
    admin
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .unwrap();
    let checkpoint: i64 = admin
        .query_opt(
            &format!("SELECT position_next FROM {schema}.consumer_checkpoints WHERE consumer = $1"),
            &[&CONSUMER],
        )
        .await
        .unwrap()
        .map_or(0, |r| r.get(0));
    let row = admin
        .query_one(
            &format!("SELECT count(*), coalesce(max(position), -1) FROM {schema}.rm_ledger"),
            &[],
        )
        .await
        .unwrap();
    let (rows, max): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (rows, max),
        (checkpoint, checkpoint - 1),
        "cycle {cycle}: the ledger must hold exactly positions 0..{checkpoint} (the checkpoint)"
    );
    let inbox: i64 = admin
        .query_one(
            &format!("SELECT count(*) FROM {schema}.consumer_inbox WHERE consumer = $1"),
            &[&CONSUMER],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        inbox, checkpoint,
        "cycle {cycle}: one inbox id per handled event"
    );
    let batches_end: i64 = admin
        .query_one(
            &format!("SELECT coalesce(max(last) + 1, 0) FROM {schema}.rm_batches"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        batches_end, checkpoint,
        "cycle {cycle}: the last committed batch ends at the checkpoint"
    );
    admin.batch_execute("COMMIT").await.unwrap();
    checkpoint as u64
}

/// The batches of every run, in order, must tile 0..end: no gap, no overlap.
async fn check_batches_tile(admin: &tokio_postgres::Client, schema: &str, end: u64) -> usize {
    let rows = admin
        .query(
            &format!("SELECT first, last, run FROM {schema}.rm_batches ORDER BY first"),
            &[],
        )
        .await
        .unwrap();
    let mut next = 0i64;
    let mut resumed = 0;
    let mut previous_run = None;
    for r in &rows {
        let (first, last, run): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(
            first, next,
            "batch {first}..={last} of run {run} does not start where the previous ended"
        );
        if previous_run.is_some_and(|p| p != run) {
            resumed += 1;
        }
        previous_run = Some(run);
        next = last + 1;
    }
    assert_eq!(next as u64, end);
    resumed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_leaves_a_read_model_apart_from_its_checkpoint() {
    let cycles = count_from_env("EVENTUM_CRASH_CYCLES", 12);
    let seed = seed_from_env("EVENTUM_CRASH_SEED");
    eprintln!("EVENTUM_CRASH_SEED={seed} EVENTUM_CRASH_CYCLES={cycles}");
    let mut rng = Rng(seed);
    let config = pg::fresh_config();
    let schema = config.schema.clone();
    let _guard = pg::Guard {
        store: None,
        config: config.clone(),
    };
    // Migrate both sides once, then let the children work on the schema.
    drop(pg::open(config.clone()).await);
    drop(open_models(&schema).await);
    let admin = admin().await;
    create_ledger(&admin, &schema).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {schema}.rm_batches (first bigint PRIMARY KEY, last bigint NOT NULL,
                 run bigint NOT NULL)"
        ))
        .await
        .unwrap();
    let stderr = std::env::temp_dir().join(format!("{schema}.stderr"));

    let mut checkpoints = Vec::new();
    for cycle in 0..cycles {
        let cycle_text = cycle.to_string();
        let envs: [(&str, &OsStr); 2] = [
            (SCHEMA_ENV, OsStr::new(&schema)),
            (CYCLE_ENV, OsStr::new(&cycle_text)),
        ];
        let mut child = Child::spawn(CHILD_TEST, &envs, Some(&stderr));
        child
            .wait_ready(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        tokio::time::sleep(Duration::from_millis(100 + rng.below(500))).await;
        child
            .kill()
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        checkpoints.push(check_agreement(&admin, &schema, cycle).await);
    }

    // Let a consumer run to the head in this process, then check the whole history.
    let store = pg::open(store_config(&schema)).await;
    let head = store.head_position().expect("the children appended");
    let consumer = PgConsumer::start(
        open_models(&schema).await,
        store.clone(),
        CONSUMER,
        SubscriptionTarget::All,
        Arc::new(BatchLedger {
            ledger: Ledger::default(),
            run: cycles as i64,
        }),
        consumer_settings(),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(60), consumer.wait_for_position(head))
        .await
        .expect("the final consumer caught up within 60 s")
        .unwrap();
    consumer.stop().await.unwrap();
    store.shutdown();
    let end = check_agreement(&admin, &schema, cycles).await;
    assert_eq!(end, head + 1);
    let resumed = check_batches_tile(&admin, &schema, end).await;
    eprintln!(
        "{cycles} kills, checkpoints after each: {checkpoints:?}; head {head}; {resumed} resumptions"
    );
    assert!(
        checkpoints.iter().filter(|c| **c > 0).count() as u64 >= cycles / 2,
        "the consumer committed before most kills: {checkpoints:?}"
    );
    assert!(
        resumed as u64 >= cycles / 2,
        "most runs resumed a previous one's work"
    );
}
