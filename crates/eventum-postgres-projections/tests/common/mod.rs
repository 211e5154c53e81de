//! Shared by the read-side test binaries: a `PgStore` and `PgReadModels` in one fresh
//! schema of the test database (dropped when the test drops the [`Env`]), an admin
//! connection, and the ledger handler the consumer tests run. PostgreSQL must be
//! reachable: these tests fail, never skip.

#![allow(dead_code)]

#[path = "../../../eventum-postgres/tests/common/mod.rs"]
pub mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use eventum_core::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamName};
use eventum_postgres::PgStore;
use eventum_postgres_projections::{
    ConsumerConfig, HandlerError, PgHandler, PgReadModels, ReadConfig, Transaction,
};

/// A store and a read side in one fresh schema.
pub struct Env {
    pub store: Arc<PgStore>,
    pub models: PgReadModels,
    pub admin: tokio_postgres::Client,
    pub schema: String,
    _guard: pg::Guard,
}

pub async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg::test_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to PostgreSQL at {}: {e}\nThese tests need PostgreSQL: start it \
                 with `service postgresql start`, or point EVENTUM_TEST_POSTGRES_URL at a server.",
                pg::test_url()
            )
        });
    tokio::spawn(connection);
    client
}

/// The read side of `schema` on the test server.
pub async fn open_models(schema: &str) -> PgReadModels {
    let mut config = ReadConfig::new(pg::test_url()).with_schema(schema);
    config.pool_size_max = 6;
    PgReadModels::open(config)
        .await
        .expect("open the read side (is PostgreSQL up?)")
}

/// A fresh schema holding the store, the read side and the ledger tables.
pub async fn env() -> Env {
    let config = pg::fresh_config();
    let store = pg::open(config.clone()).await;
    let models = open_models(&config.schema).await;
    let admin = admin().await;
    create_ledger(&admin, &config.schema).await;
    Env {
        store: store.clone(),
        models,
        admin,
        schema: config.schema.clone(),
        _guard: pg::Guard {
            store: Some(store),
            config,
        },
    }
}

/// The ledger handler's tables: one row per handled event (the primary key on the
/// position makes a second application of an event fail loudly) and a count per stream.
pub async fn create_ledger(admin: &tokio_postgres::Client, schema: &str) {
    admin
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {schema}.rm_ledger (
                 position bigint PRIMARY KEY, event_id uuid NOT NULL, stream text NOT NULL);
             CREATE TABLE IF NOT EXISTS {schema}.rm_totals (
                 stream text PRIMARY KEY, n bigint NOT NULL);"
        ))
        .await
        .unwrap();
}

/// Small batches and quick retries for tests.
pub fn consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        batch_events_max: 8,
        batch_latency_ms_max: 5,
        retry_delay_ms_min: 10,
        retry_delay_ms_max: 100,
        ..ConsumerConfig::default()
    }
}

/// Writes each event into `rm_ledger` and counts it in `rm_totals`. Fails fatally on an
/// event of type `Poison`; kills its own connection the first time it meets an event of
/// type `CutConnection` (a transient failure in the middle of the batch's writes).
#[derive(Default)]
pub struct Ledger {
    pub cut_done: AtomicBool,
}

#[async_trait]
impl PgHandler for Ledger {
    async fn handle(
        &self,
        tx: &mut Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let positions: Vec<i64> = events.iter().map(|e| e.position as i64).collect();
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        let streams: Vec<&str> = events.iter().map(|e| e.stream.as_str()).collect();
        tx.execute(
            "INSERT INTO rm_ledger (position, event_id, stream)
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[])",
            &[&positions, &ids, &streams],
        )
        .await?;
        tx.execute(
            "INSERT INTO rm_totals (stream, n) SELECT s, count(*) FROM UNNEST($1::text[]) AS s
             GROUP BY s
             ON CONFLICT (stream) DO UPDATE SET n = rm_totals.n + EXCLUDED.n",
            &[&streams],
        )
        .await?;
        for e in events {
            match e.event_type.as_str() {
                "Poison" => {
                    return Err(HandlerError::fatal(format!(
                        "poison at position {}",
                        e.position
                    )));
                }
                "CutConnection" if !self.cut_done.swap(true, Ordering::SeqCst) => {
                    tx.execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

pub fn event(event_type: &str) -> NewEvent {
    NewEvent::from_json(event_type, r#"{"n":1}"#).unwrap()
}

/// Appends `count` events of `event_type` to `stream`, one append each; returns the last
/// position.
pub async fn append_n(store: &dyn EventStore, stream: &str, event_type: &str, count: usize) -> u64 {
    let stream = StreamName::new(stream).unwrap();
    let mut last = 0;
    for _ in 0..count {
        last = store
            .append(&stream, ExpectedVersion::Any, vec![event(event_type)])
            .await
            .unwrap()
            .position;
    }
    last
}

/// The ledger's positions in order.
pub async fn ledger(env: &Env) -> Vec<u64> {
    env.admin
        .query(
            &format!(
                "SELECT position FROM {}.rm_ledger ORDER BY position",
                env.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect()
}

/// How many ids `consumer`'s inbox holds.
pub async fn inbox_len(env: &Env, consumer: &str) -> i64 {
    env.admin
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.consumer_inbox WHERE consumer = $1",
                env.schema
            ),
            &[&consumer],
        )
        .await
        .unwrap()
        .get(0)
}
