//! [`LogStore`]: the embedded store's handle. It validates requests, queues writes for the
//! writer thread, serves reads on the blocking pool, and starts and stops the threads.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;

use async_trait::async_trait;
use eventum_core::subscription::{self, LiveBatch, SubscriptionSource};
use eventum_core::{
    ActualVersion, AppendError, AppendResult, EventStore, ExpectedVersion, Limits, NewEvent,
    ReadDirection, ReadError, RecordedEvent, StorageError, StorageErrorKind, StreamMetadata,
    StreamName, StreamState, Subscription, SubscriptionFrom, SubscriptionTarget,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::disk::{Disk, RealDisk};
use crate::index::Index;
use crate::recovery;
use crate::shared::Shared;
use crate::writer::{Command, WriteKind, WriteRequest, Writer};
use crate::{LogConfig, OpenError};

/// Syncs (each a job of up to `sync_groups_max` groups) the indexer may lag behind
/// before the syncer waits (events are bounded separately by `index_pending_events_max`).
const INDEX_QUEUE_SYNCS: usize = 256;

/// The embedded, durable event store.
pub struct LogStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    lock: Mutex<Option<File>>,
}

fn unavailable() -> StorageError {
    StorageError::new(StorageErrorKind::Unavailable, "the store is shut down")
}

impl LogStore {
    /// Opens (creating if needed) the store in `dir`, recovering from a crash if needed.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Arc<Self>, OpenError> {
        Self::open_with_disk(dir, config, Arc::new(RealDisk))
    }

    /// Opens the store with segment I/O going through `disk` (tests inject faults here).
    pub fn open_with_disk(
        dir: impl AsRef<Path>,
        config: LogConfig,
        disk: Arc<dyn Disk>,
    ) -> Result<Arc<Self>, OpenError> {
        let dir = dir.as_ref();
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| OpenError::io(format!("creating {}", log_dir.display()), e))?;
        let lock = recovery::lock(dir)?;
        let index = Index::open(
            &dir.join("index.redb"),
            config.index_cache_bytes,
            config.index_memtable_events_max,
        )?;
        let segments = recovery::open_segments(&*disk, &log_dir, &config)?;
        let recovered = recovery::recover(&index, &segments, &config)?;
        let (live, _) = broadcast::channel(config.live_buffer_batches.max(1));
        let active = recovered
            .segments
            .last()
            .expect("at least one segment")
            .clone();
        let shared = Arc::new(Shared {
            config: config.clone(),
            disk,
            log_dir,
            segments: RwLock::new(recovered.segments),
            index,
            visible_next: AtomicU64::new(recovered.next_position),
            durable_next: AtomicU64::new(recovered.next_position),
            visible_watch: tokio::sync::watch::Sender::new(recovered.next_position),
            live: RwLock::new(Some(live.clone())),
            failure: Mutex::new(None),
            index_failure: Mutex::new(None),
        });
        let window = config.dedupe_window_events as u64;
        let recent_from = recovered.next_position.saturating_sub(window);
        let recent = shared
            .read_all_forward(recent_from, window as usize)
            .map_err(|e| OpenError::Index {
                file: dir.join("log"),
                reason: if e.kind == StorageErrorKind::Corrupt {
                    format!("{}; run `eventum verify --data DIR --repair` to truncate the log there (events from that point on are lost)", e.message)
                } else {
                    e.message
                },
            })?;
        let (tx, rx) = mpsc::channel(config.append_queue_requests_max.max(1));
        let (index_tx, index_rx) = std::sync::mpsc::sync_channel(INDEX_QUEUE_SYNCS);
        let (sync_tx, sync_rx) = std::sync::mpsc::sync_channel(config.sync_groups_max.max(1));
        let writer = Writer::new(
            shared.clone(),
            rx,
            sync_tx,
            active,
            recovered.offset,
            recovered.next_position,
            recent,
        );
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| OpenError::io("starting a thread", e))
        };
        let indexer_shared = shared.clone();
        let syncer_shared = shared.clone();
        let threads = vec![
            spawn("eventum-writer", Box::new(move || writer.run()))?,
            spawn(
                "eventum-syncer",
                Box::new(move || crate::syncer::run(syncer_shared, sync_rx, index_tx)),
            )?,
            spawn(
                "eventum-indexer",
                Box::new(move || crate::indexer::run(indexer_shared, index_rx, live)),
            )?,
        ];
        Ok(Arc::new(Self {
            shared,
            tx,
            threads: Mutex::new(threads),
            lock: Mutex::new(Some(lock)),
        }))
    }

    /// Stops the writer and indexer after syncing the index, ends live subscriptions and
    /// releases the directory. Later calls fail with `unavailable`. Idempotent.
    pub fn shutdown(&self) {
        let threads: Vec<_> = self
            .threads
            .lock()
            .expect("threads lock poisoned")
            .drain(..)
            .collect();
        if threads.is_empty() {
            return;
        }
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        // The queue may be full: wait for the writer to make room. This may run inside an
        // async runtime (a drop), where the async send cannot be awaited.
        let mut command = Command::Shutdown(ack_tx);
        loop {
            match self.tx.try_send(command) {
                Ok(()) => {
                    let _ = ack_rx.recv();
                    break;
                }
                Err(mpsc::error::TrySendError::Full(c)) => {
                    command = c;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        for t in threads {
            let _ = t.join();
        }
        self.shared.live.write().expect("live lock poisoned").take();
        self.shared.index.close();
        self.lock.lock().expect("lock poisoned").take();
    }

    async fn write(
        &self,
        request: (StreamName, WriteKind, ExpectedVersion, Vec<NewEvent>),
    ) -> Result<AppendResult, AppendError> {
        let (target, kind, expected, events) = request;
        let (reply, rx) = oneshot::channel();
        let request = WriteRequest {
            target,
            kind,
            expected,
            events,
            reply,
        };
        self.tx
            .send(Command::Write(request))
            .await
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    async fn blocking<T: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.shared.caught_up().await.map_err(E::from)?;
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| {
                E::from(StorageError::new(
                    StorageErrorKind::Io,
                    format!("read task failed: {e}"),
                ))
            })?
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[async_trait]
impl EventStore for LogStore {
    fn limits(&self) -> &Limits {
        &self.shared.config.limits
    }

    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        self.limits().check_batch(&events)?;
        self.write((stream.clone(), WriteKind::Append, expected, events))
            .await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.limits().check_read_limit(limit)?;
        let forward = direction == ReadDirection::Forward;
        let stream = stream.to_string();
        let inline = limit.min(self.shared.config.inline_read_events_max);
        if inline == 0 {
            return self
                .blocking(move |s| s.read_stream(&stream, from, forward, limit))
                .await;
        }
        self.shared.caught_up().await?;
        let mut events = self.shared.read_stream(&stream, from, forward, inline)?;
        let next = match events.last() {
            _ if events.len() < inline || inline == limit => None,
            Some(last) if forward => Some(last.version + 1),
            Some(last) => last.version.checked_sub(1),
            None => None,
        };
        if let Some(next) = next {
            let rest = limit - events.len();
            let more = self
                .blocking(move |s| s.read_stream(&stream, Some(next), forward, rest))
                .await;
            match more {
                Ok(more) => events.extend(more),
                // Deleted between the two reads: what the first read saw stands.
                Err(ReadError::StreamNotFound { .. } | ReadError::StreamDeleted { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(events)
    }

    async fn read_all(
        &self,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.limits().check_read_limit(limit)?;
        self.blocking(move |s| match direction {
            ReadDirection::Forward => s
                .read_all_forward(from.unwrap_or(0), limit)
                .map_err(ReadError::from),
            ReadDirection::Backward => s.read_all_backward(from, limit).map_err(ReadError::from),
        })
        .await
    }

    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.limits().check_read_limit(limit)?;
        let category = category.to_owned();
        self.blocking(move |s| {
            s.read_category(&category, from, limit)
                .map_err(ReadError::from)
        })
        .await
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
    ) -> Result<AppendResult, AppendError> {
        self.write((stream.clone(), WriteKind::Delete, expected, Vec::new()))
            .await
    }

    async fn set_stream_metadata(
        &self,
        stream: &StreamName,
        metadata: StreamMetadata,
    ) -> Result<AppendResult, AppendError> {
        let event = NewEvent::stream_metadata(&metadata);
        self.write((
            stream.clone(),
            WriteKind::Metadata(metadata),
            ExpectedVersion::Any,
            vec![event],
        ))
        .await
    }

    async fn stream_state(&self, stream: &StreamName) -> Result<StreamState, ReadError> {
        // One index lookup: cheap enough for the caller's task (see
        // `inline_read_events_max`).
        self.shared.caught_up().await?;
        let row = self
            .shared
            .index
            .stream_row(stream.as_str())?
            .unwrap_or_default();
        Ok(StreamState {
            version: ActualVersion::from_option(row.last_version),
            deleted: row.deleted,
            metadata: row.metadata,
        })
    }

    fn subscribe(&self, target: SubscriptionTarget, from: SubscriptionFrom) -> Subscription {
        let source = Arc::new(Source(Arc::downgrade(&self.shared)));
        subscription::subscribe(
            source,
            target,
            from,
            self.shared.config.catch_up_batch_events,
        )
    }

    fn head_position(&self) -> Option<u64> {
        self.shared.durable_next().checked_sub(1)
    }
}

/// What subscriptions read through. It holds the shared state weakly, so that a
/// subscription outliving its store ends instead of keeping the store's files open.
struct Source(Weak<Shared>);

impl Source {
    fn shared(&self) -> Result<Arc<Shared>, StorageError> {
        self.0.upgrade().ok_or_else(unavailable)
    }
}

#[async_trait]
impl SubscriptionSource for Source {
    async fn read_matching(
        &self,
        target: &SubscriptionTarget,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError> {
        let shared = self.shared()?;
        let target = target.clone();
        tokio::task::spawn_blocking(move || match &target {
            SubscriptionTarget::All => shared.read_all_forward(from, limit),
            SubscriptionTarget::Category(c) => shared.read_category(c, from, limit),
            SubscriptionTarget::Stream(s) => {
                shared.read_stream_from_position(s.as_str(), from, limit)
            }
        })
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("read task failed: {e}")))?
    }

    fn next_position(&self) -> u64 {
        // After everything acknowledged: groups durable but not yet visible are still
        // broadcast later and must not count as new.
        self.0.upgrade().map_or(0, |s| s.durable_next())
    }

    fn live(&self) -> broadcast::Receiver<LiveBatch> {
        let sender = self
            .0
            .upgrade()
            .and_then(|s| s.live.read().expect("live lock poisoned").clone());
        match sender {
            Some(sender) => sender.subscribe(),
            // A receiver whose sender is gone reports `Closed`, which ends the subscription.
            None => broadcast::channel(1).1,
        }
    }
}
