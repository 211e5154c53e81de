//! The relay over the PostgreSQL store to a real NATS JetStream: PostgreSQL for storage,
//! NATS for transport. The checkpoint lives in PostgreSQL; a restarted relay resumes from
//! it and sends only what is new. Fails (never skips) when either server is unreachable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{NatsSink, NatsSinkConfig, Relay, RelayConfig, header};
use eventum_core::EventStore;
use eventum_postgres::{PgConfig, PgStore};
use uuid::Uuid;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

fn postgres_url() -> String {
    std::env::var("EVENTUM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Drops the test's schema even when an assertion fails.
struct SchemaGuard(String);
impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    if let Ok((client, connection)) =
                        tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await
                    {
                        let driver = tokio::spawn(connection);
                        let _ = client
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .await;
                        drop(client);
                        let _ = driver.await;
                    }
                })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_the_postgres_store_and_resumes_from_its_checkpoint() {
    let schema = format!("t_{}", Uuid::now_v7().simple());
    let url = postgres_url();
    let store: Arc<dyn EventStore> =
        match PgStore::open(PgConfig::new(url.as_str()).with_schema(schema.as_str())).await {
            Ok(s) => s,
            Err(e) => unreachable("PostgreSQL", &url, e, "service postgresql start"),
        };
    let _schema = SchemaGuard(schema);
    let prefix = unique("pg");
    let nats = nats_url();
    let config = NatsSinkConfig {
        subject_prefix: prefix.clone(),
        ..NatsSinkConfig::default()
    };
    let sink = match NatsSink::connect(&nats, config).await {
        Ok(s) => Arc::new(s),
        Err(e) => unreachable("NATS", &nats, e, "nats-server -js"),
    };
    let stream_name = prefix.to_uppercase();
    sink.ensure_stream(&stream_name, Duration::from_secs(120))
        .await
        .unwrap();

    let mut ids = append_events(&store, 80).await;
    let relay = Relay::spawn(store.clone(), sink.clone(), RelayConfig::named("pg")).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();

    ids.extend(append_events(&store, 20).await);
    let relay = Relay::spawn(store.clone(), sink.clone(), RelayConfig::named("pg")).unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    let resent = relay.progress().borrow().published_total;
    relay.stop().await.unwrap();
    assert_eq!(
        resent, 20,
        "the restarted relay resumed from its checkpoint"
    );

    let stream = sink.jetstream().get_stream(&stream_name).await.unwrap();
    assert_eq!(stream.get_info().await.unwrap().state.messages, 100);
    for (seq, id) in ids.iter().enumerate() {
        let m = stream.get_raw_message(seq as u64 + 1).await.unwrap();
        assert_eq!(
            m.headers.get(header::CE_ID).unwrap().as_str(),
            id.to_string()
        );
    }
    sink.jetstream().delete_stream(&stream_name).await.unwrap();
}
