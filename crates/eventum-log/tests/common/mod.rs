//! The `LogStore` factory shared by the contract and model test binaries: each store lives
//! in its own temp dir, and reopen shuts the store down and opens the same dir again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventum_log::{LogConfig, LogStore, OpenError};
use eventum_testkit::{StoreFactory, TestStore};

/// Builds `LogStore`s with the given config in fresh temp dirs.
#[derive(Clone, Debug, Default)]
pub struct LogFactory {
    pub config: LogConfig,
}

/// Keeps the temp dir alive and shuts the store down when the test drops it.
struct Guard {
    /// `None` only in the middle of a reopen.
    store: Option<Arc<LogStore>>,
    /// Declared after `store` so the directory outlives the store.
    dir: tempfile::TempDir,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.shutdown();
        }
    }
}

/// Opens `dir`, waiting briefly if the previous instance has not released its lock yet.
fn open(dir: &std::path::Path, config: &LogConfig) -> Arc<LogStore> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match LogStore::open(dir, config.clone()) {
            Ok(store) => return store,
            Err(OpenError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

#[async_trait]
impl StoreFactory for LogFactory {
    async fn create(&self) -> TestStore {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let store = open(dir.path(), &self.config);
        TestStore::new(
            store.clone(),
            Guard {
                store: Some(store),
                dir,
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
            .expect("a store made by LogFactory");
        let old = guard.store.take().expect("guard holds the store");
        old.shutdown();
        drop(old);
        let store = open(guard.dir.path(), &self.config);
        guard.store = Some(store.clone());
        TestStore { store, guard }
    }
}
