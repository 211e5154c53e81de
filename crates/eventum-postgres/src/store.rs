//! [`PgStore`]: opening (pool, migrations, head), shutdown, and the [`EventStore`]
//! implementation that delegates to the append, read and follow modules.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use eventum_core::subscription::{self, LiveBatch};
use eventum_core::{
    AppendError, AppendResult, EventStore, ExpectedVersion, Limits, NewEvent, ReadDirection,
    ReadError, RecordedEvent, StorageError, StreamMetadata, StreamName, StreamState, Subscription,
    SubscriptionFrom, SubscriptionTarget,
};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::config::PgConfig;
use crate::connect::{self, PoolSettings, base_config, check_schema};
use crate::error::{OpenError, pool, storage};
use crate::{append, follow, group, migrate, read};

/// State shared by the store, its background tasks and its subscriptions.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) config: PgConfig,
    /// The position the next event will get, as far as this process knows: raised by its
    /// own acknowledged appends and by the follower seeing other processes' commits.
    pub(crate) next_position: AtomicU64,
    /// Committed batches in position order; `None` once the store is shut down, so that
    /// subscriptions end.
    pub(crate) live: Mutex<Option<broadcast::Sender<LiveBatch>>>,
    /// Wakes the follower: a local commit, or a notification from the listener.
    pub(crate) wake: Notify,
    /// Group-commit figures since open.
    pub(crate) groups_committed: AtomicU64,
    pub(crate) appends_committed: AtomicU64,
    pub(crate) groups_predicted: AtomicU64,
    pub(crate) groups_rewritten: AtomicU64,
    /// Phase times of committed groups, µs (see [`GroupCommitStats`]).
    pub(crate) phase_us: [AtomicU64; 3],
    /// Appends sent to the committer's queue and not yet taken by it.
    pub(crate) queued: AtomicUsize,
}

impl Inner {
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(pool)
    }

    pub(crate) fn note_group(&self, appends: usize, predicted: bool, phases: &Phases) {
        for (sum, d) in self.phase_us.iter().zip(phases.durations()) {
            sum.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        }
        self.groups_committed.fetch_add(1, Ordering::Relaxed);
        self.appends_committed
            .fetch_add(appends as u64, Ordering::Relaxed);
        if predicted {
            self.groups_predicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn raise_next_position(&self, next: u64) {
        self.next_position.fetch_max(next, Ordering::AcqRel);
    }
}

/// When a group's phases ended (see [`GroupCommitStats`]).
pub(crate) struct Phases {
    pub started: std::time::Instant,
    pub opened: Option<std::time::Instant>,
    pub written: Option<std::time::Instant>,
    pub committed: Option<std::time::Instant>,
}

impl Phases {
    pub(crate) fn start() -> Self {
        Self {
            started: std::time::Instant::now(),
            opened: None,
            written: None,
            committed: None,
        }
    }

    fn durations(&self) -> [std::time::Duration; 3] {
        let opened = self.opened.unwrap_or(self.started);
        let written = self.written.unwrap_or(opened);
        let committed = self.committed.unwrap_or(written);
        [opened - self.started, written - opened, committed - written]
    }
}

/// Group-commit figures of a [`PgStore`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Transactions that wrote appends (each one WAL flush).
    pub groups: u64,
    /// Appends they carried.
    pub appends: u64,
    /// Groups written at predicted positions while the previous group committed.
    pub predicted: u64,
    /// Groups written again because their predicted positions were taken by another
    /// transaction (another process appending to the schema).
    pub rewritten: u64,
    /// Where committed groups spent their time, summed, in µs: `BEGIN` + row locks +
    /// retry probes (one round trip, including waits for rows); the write statement
    /// (including the wait for the position lock, and for a predicted group the wait for
    /// its predecessor); the rest of the `COMMIT` (the WAL flush and the round trip).
    pub open_us: u64,
    pub write_us: u64,
    pub commit_us: u64,
}

/// The PostgreSQL event store. Open with [`PgStore::open`]; dropping it (or
/// [`PgStore::shutdown`]) stops its background tasks and ends its subscriptions.
pub struct PgStore {
    inner: Arc<Inner>,
    /// Appends go to the group committer through this bounded queue.
    queue: mpsc::Sender<group::Request>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl PgStore {
    /// Connects, applies missing migrations to `config.schema`, reads the head and starts
    /// the follower that feeds subscriptions.
    pub async fn open(config: PgConfig) -> Result<Arc<PgStore>, OpenError> {
        check_schema(&config.schema)?;
        if config.pool_size_max == 0
            || config.live_buffer_batches == 0
            || config.append_queue_max == 0
        {
            return Err(OpenError::InvalidConfig(
                "pool_size_max, live_buffer_batches and append_queue_max must be at least 1".into(),
            ));
        }
        let base = base_config(&config.url, config.connect_timeout_ms)?;
        let unavailable = |e| OpenError::Storage {
            url: config.url.clone(),
            source: storage(e),
        };
        let settings = PoolSettings {
            url: &config.url,
            schema: &config.schema,
            pool_size_max: config.pool_size_max,
            pool_wait_ms_max: config.pool_wait_ms_max,
            connect_timeout_ms: config.connect_timeout_ms,
        };
        let pool = connect::migrate_and_pool(&settings, &migrate::STORE).await?;
        let next: i64 = {
            let client = pool.get().await.map_err(|e| OpenError::Storage {
                url: config.url.clone(),
                source: pool_err(e),
            })?;
            client
                .query_one("SELECT next_position FROM log_head", &[])
                .await
                .map_err(unavailable)?
                .get(0)
        };
        let (live, _) = broadcast::channel(config.live_buffer_batches);
        let inner = Arc::new(Inner {
            pool,
            config,
            next_position: AtomicU64::new(next as u64),
            live: Mutex::new(Some(live)),
            wake: Notify::new(),
            groups_committed: AtomicU64::new(0),
            appends_committed: AtomicU64::new(0),
            groups_predicted: AtomicU64::new(0),
            groups_rewritten: AtomicU64::new(0),
            phase_us: Default::default(),
            queued: AtomicUsize::new(0),
        });
        let (queue, requests) = mpsc::channel(inner.config.append_queue_max);
        let mut tasks = vec![
            tokio::spawn(follow::run_follower(inner.clone(), next as u64)),
            tokio::spawn(group::run_committer(inner.clone(), requests)),
        ];
        if inner.config.listen {
            tasks.push(tokio::spawn(follow::run_listener(inner.clone(), base)));
        }
        Ok(Arc::new(PgStore {
            inner,
            queue,
            tasks: Mutex::new(tasks),
        }))
    }

    /// Stops the follower and listener, closes the pool and ends every subscription.
    /// Idempotent.
    pub fn shutdown(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        self.inner.live.lock().unwrap().take();
        self.inner.pool.close();
    }

    /// Group-commit figures since open.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GroupCommitStats {
            groups: load(&self.inner.groups_committed),
            appends: load(&self.inner.appends_committed),
            predicted: load(&self.inner.groups_predicted),
            rewritten: load(&self.inner.groups_rewritten),
            open_us: load(&self.inner.phase_us[0]),
            write_us: load(&self.inner.phase_us[1]),
            commit_us: load(&self.inner.phase_us[2]),
        }
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.inner.config
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StorageError {
    pool(e)
}

#[async_trait]
impl EventStore for PgStore {
    fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        self.inner.config.limits.check_batch(&events)?;
        group::append(&self.inner, &self.queue, stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.config.limits.check_read_limit(limit)?;
        read::read_stream(&self.inner, stream, from, direction, limit).await
    }

    async fn read_all(
        &self,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.config.limits.check_read_limit(limit)?;
        Ok(read::read_all(&self.inner, from, direction, limit).await?)
    }

    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.config.limits.check_read_limit(limit)?;
        Ok(read::read_category(&self.inner, category, from, limit).await?)
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
    ) -> Result<AppendResult, AppendError> {
        append::delete_stream(&self.inner, stream, expected).await
    }

    async fn set_stream_metadata(
        &self,
        stream: &StreamName,
        metadata: StreamMetadata,
    ) -> Result<AppendResult, AppendError> {
        append::set_stream_metadata(&self.inner, stream, metadata).await
    }

    async fn stream_state(&self, stream: &StreamName) -> Result<StreamState, ReadError> {
        Ok(read::stream_state(&self.inner, stream).await?)
    }

    fn subscribe(&self, target: SubscriptionTarget, from: SubscriptionFrom) -> Subscription {
        let batch = self.inner.config.catch_up_batch_events;
        subscription::subscribe(self.inner.clone(), target, from, batch)
    }

    fn head_position(&self) -> Option<u64> {
        self.inner
            .next_position
            .load(Ordering::Acquire)
            .checked_sub(1)
    }
}
