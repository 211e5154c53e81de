//! The `PgStore` factory shared by the PostgreSQL test binaries: each store lives in its
//! own fresh schema of the test database, dropped when the test drops the store, so tests
//! run in parallel and leave nothing behind. Reopen shuts the store down and opens a new
//! one on the same schema. PostgreSQL must be reachable: these tests fail, never skip.

#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use eventum_postgres::{PgConfig, PgStore};
use eventum_testkit::{StoreFactory, TestStore};

/// The test server, from `EVENTUM_TEST_POSTGRES_URL`.
pub fn test_url() -> String {
    std::env::var("EVENTUM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A config for a new uniquely named schema on the test server, with small test bounds.
pub fn fresh_config() -> PgConfig {
    let mut config =
        PgConfig::new(test_url()).with_schema(format!("t_{}", uuid::Uuid::now_v7().simple()));
    config.pool_size_max = 8;
    config.poll_interval_ms = 200;
    config
}

/// Opens `config`, failing the test with instructions when the server is unreachable.
pub async fn open(config: PgConfig) -> Arc<PgStore> {
    match PgStore::open(config.clone()).await {
        Ok(store) => store,
        Err(e) => panic!(
            "cannot open the PostgreSQL store at {} (schema {}): {e}\n\
             These tests need PostgreSQL: start it with `service postgresql start` \
             (or `apt-get install -y postgresql`), or point EVENTUM_TEST_POSTGRES_URL at a server.",
            config.url, config.schema
        ),
    }
}

/// Drops `schema` on a thread of its own, since `Drop` cannot await.
pub fn drop_schema(url: String, schema: String) {
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let Ok((client, connection)) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await
            else {
                return;
            };
            let driver = tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
            drop(client);
            let _ = driver.await;
        });
    });
    let _ = handle.join();
}

/// Builds `PgStore`s in fresh schemas.
#[derive(Clone, Debug, Default)]
pub struct PgFactory;

/// Shuts the store down and drops its schema when the test drops it.
pub struct Guard {
    pub store: Option<Arc<PgStore>>,
    pub config: PgConfig,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.shutdown();
        }
        drop_schema(self.config.url.clone(), self.config.schema.clone());
    }
}

#[async_trait]
impl StoreFactory for PgFactory {
    async fn create(&self) -> TestStore {
        let config = fresh_config();
        let store = open(config.clone()).await;
        TestStore::new(
            store.clone(),
            Guard {
                store: Some(store),
                config,
            },
        )
    }

    fn supports_reopen(&self) -> bool {
        true
    }

    async fn reopen(&self, test_store: TestStore) -> TestStore {
        let TestStore { store, guard } = test_store;
        drop(store);
        let mut guard = guard
            .downcast::<Guard>()
            .expect("a store made by PgFactory");
        let old = guard.store.take().expect("guard holds the store");
        old.shutdown();
        drop(old);
        let store = open(guard.config.clone()).await;
        guard.store = Some(store.clone());
        TestStore { store, guard }
    }
}

impl PgFactory {
    /// A store in a fresh schema plus the guard that drops the schema.
    pub async fn create_store(&self) -> (Arc<PgStore>, Guard) {
        let config = fresh_config();
        let store = open(config.clone()).await;
        (
            store.clone(),
            Guard {
                store: Some(store),
                config,
            },
        )
    }
}
