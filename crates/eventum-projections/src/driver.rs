//! The engine every projection mode shares: registering a projection (rebuilding it when
//! its version changed), catching a generation up from its checkpoint in pipelined reads,
//! handing batches to [`crate::commit`] and switching a rebuilt generation in when it
//! has caught up; and the [`Status`] it publishes.

use std::sync::Arc;

use eventum_core::{
    EventStore, ReadDirection, ReadError, RecordedEvent, StorageError, StorageErrorKind,
    SubscriptionTarget,
};
use tokio::sync::watch;

use crate::commit::{Batch, prepare};
use crate::config::RunnerConfig;
use crate::docs::DocCache;
use crate::error::RunError;
use crate::model::{Lookup, Projection, check_lookups, check_name};
use crate::store::{Claim, ReadModelStore};
use crate::tables::{Building, Cursor};

/// What a projection is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Reading the log from the checkpoint (or from 0, when rebuilding).
    CatchingUp,
    /// Following live appends.
    Live,
    /// Stopped on request.
    Stopped,
    /// Stopped by an error; the checkpoint is at the end of the last committed batch.
    Failed(RunError),
}

/// A projection's progress, published after every committed batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub model: String,
    /// The generation being written (the new one while rebuilding).
    pub generation: u64,
    pub rebuilding: bool,
    /// Every event below this position has been applied (or does not match).
    pub position_next: u64,
    /// Events applied to this generation.
    pub events_applied: u64,
    /// The store's head when last looked at.
    pub head: Option<u64>,
    pub state: RunState,
}

impl Status {
    /// Positions between the checkpoint and the head (events the target skips count
    /// too, until the projection next reads past them).
    pub fn lag_events(&self) -> u64 {
        self.head
            .map_or(0, |h| (h + 1).saturating_sub(self.position_next))
    }
}

/// One read: the head seen before it, and the events it returned.
type Page = (Option<u64>, Vec<RecordedEvent>);

pub(crate) struct Driver {
    store: ReadModelStore,
    events: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    config: RunnerConfig,
    pub(crate) model: String,
    pub(crate) target: SubscriptionTarget,
    generation: u64,
    building: Option<Building>,
    /// Lookups of the generation being written.
    lookups: Arc<[Lookup]>,
    pub(crate) cursor: Cursor,
    cache: DocCache,
    batches_since_durable: u64,
    pub(crate) status: watch::Sender<Status>,
    _claim: Claim,
}

impl Driver {
    /// Registers the projection (creating its read model, or starting a rebuild when the
    /// stored version or lookups differ, or when `force_rebuild`).
    pub(crate) async fn open(
        store: ReadModelStore,
        events: Arc<dyn EventStore>,
        projection: Arc<dyn Projection>,
        config: RunnerConfig,
        force_rebuild: bool,
    ) -> Result<Self, RunError> {
        let model = projection.name().to_owned();
        let lookups = projection.lookups();
        check_name("read model", &model)
            .and_then(|()| check_lookups(&lookups))
            .map_err(|source| RunError::InvalidProjection {
                model: model.clone(),
                source,
            })?;
        let claim = store.claim(&model)?;
        let prepared = {
            let (store, model, lookups) = (store.clone(), model.clone(), lookups.clone());
            let version = projection.version();
            blocking(move || prepare(&store, &model, version, &lookups, force_rebuild)).await??
        };
        let status = watch::Sender::new(Status {
            model: model.clone(),
            generation: prepared.generation,
            rebuilding: prepared.building.is_some(),
            position_next: prepared.cursor.position_next,
            events_applied: prepared.cursor.events_applied,
            head: events.head_position(),
            state: RunState::CatchingUp,
        });
        Ok(Self {
            target: projection.target(),
            store,
            events,
            config,
            model,
            generation: prepared.generation,
            lookups: prepared
                .building
                .as_ref()
                .map_or_else(|| lookups.clone(), |b| b.lookups.clone())
                .into(),
            building: prepared.building,
            cursor: prepared.cursor,
            cache: DocCache::default(),
            batches_since_durable: 0,
            status,
            projection,
            _claim: claim,
        })
    }

    /// Starts building a new generation from position 0; the active one keeps serving.
    pub(crate) async fn begin_rebuild(&mut self) -> Result<(), RunError> {
        let (store, model, lookups) = (
            self.store.clone(),
            self.model.clone(),
            self.projection.lookups(),
        );
        let version = self.projection.version();
        let prepared = blocking(move || prepare(&store, &model, version, &lookups, true)).await??;
        self.lookups = prepared
            .building
            .as_ref()
            .expect("a forced rebuild builds")
            .lookups
            .clone()
            .into();
        self.generation = prepared.generation;
        self.building = prepared.building;
        self.cursor = prepared.cursor;
        self.cache.clear();
        self.publish(RunState::CatchingUp);
        Ok(())
    }

    pub(crate) fn is_rebuilding(&self) -> bool {
        self.building.is_some()
    }

    pub(crate) fn publish(&self, state: RunState) {
        self.status.send_replace(Status {
            model: self.model.clone(),
            generation: self.generation,
            rebuilding: self.building.is_some(),
            position_next: self.cursor.position_next,
            events_applied: self.cursor.events_applied,
            head: self.events.head_position(),
            state,
        });
    }

    fn page_events(&self) -> usize {
        self.config
            .catch_up_batch_events_max
            .clamp(1, self.events.limits().read_events_max.max(1))
    }

    /// Reads and applies pages from the checkpoint until a read comes back short (the
    /// generation then covers the head seen before that read); switches a generation
    /// being built in with its last batch. Returns early (`Ok(false)`) when `stop` says so.
    pub(crate) async fn catch_up(
        &mut self,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<bool, RunError> {
        let page = self.page_events();
        // While building, several pages make one transaction: a rebuild rewrites most of
        // its documents in every batch, so fewer, larger batches write fewer pages.
        let batch_max = if self.building.is_some() {
            self.config.rebuild_batch_events_max
        } else {
            self.config.catch_up_batch_events_max
        }
        .max(1);
        let mut read_from = self.cursor;
        let mut pending: Vec<RecordedEvent> = Vec::new();
        let mut next = Some(self.spawn_read(read_from, page));
        while let Some(read) = next.take() {
            let (head_before, events) = read.await.map_err(|e| {
                StorageError::new(StorageErrorKind::Io, format!("read task: {e}"))
            })??;
            let short = events.len() < page;
            if let Some(last) = events.last() {
                read_from.position_next = last.position + 1;
                read_from.stream_version_next = last.version + 1;
            }
            let stopping = stop.is_some_and(stop_requested);
            if !short && !stopping {
                next = Some(self.spawn_read(read_from, page));
            }
            let mut cursor = Cursor {
                events_applied: self.cursor.events_applied,
                ..read_from
            };
            if short && let Some(head) = head_before {
                // Everything up to the head seen before the read was in it.
                cursor.position_next = cursor.position_next.max(head + 1);
            }
            if pending.is_empty() {
                pending = events;
            } else {
                pending.extend(events);
            }
            if !(short || stopping || pending.len() >= batch_max) {
                continue;
            }
            let switch = short && self.building.is_some();
            if pending.is_empty() && !switch {
                // Nothing to write: the advance is kept in memory and committed with the
                // next batch (replaying events that do not match is harmless).
                self.cursor = cursor;
            } else {
                self.commit_batch(std::mem::take(&mut pending), cursor, switch)
                    .await?;
            }
            if short {
                self.publish(RunState::CatchingUp);
                return Ok(true);
            }
            if stopping {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn spawn_read(
        &self,
        cursor: Cursor,
        page: usize,
    ) -> tokio::task::JoinHandle<Result<Page, RunError>> {
        let events = self.events.clone();
        let target = self.target.clone();
        let model = self.model.clone();
        tokio::spawn(async move {
            let head_before = events.head_position();
            let read = match &target {
                SubscriptionTarget::All => {
                    events
                        .read_all(Some(cursor.position_next), ReadDirection::Forward, page)
                        .await
                }
                SubscriptionTarget::Category(c) => {
                    events.read_category(c, cursor.position_next, page).await
                }
                SubscriptionTarget::Stream(s) => match events
                    .read_stream(
                        s,
                        Some(cursor.stream_version_next),
                        ReadDirection::Forward,
                        page,
                    )
                    .await
                {
                    Err(ReadError::StreamNotFound { .. } | ReadError::StreamDeleted { .. }) => {
                        Ok(Vec::new())
                    }
                    other => other,
                },
            };
            let mut read = read.map_err(|source| RunError::Read { model, source })?;
            // A stream read is by version; drop anything already applied by position.
            read.retain(|e| e.position >= cursor.position_next);
            Ok((head_before, read))
        })
    }

    /// Applies `events` (in order, all newer than the checkpoint) and commits them with
    /// the checkpoint `cursor` in one transaction; `switch` also makes the generation
    /// being built the active one and drops the old one, in the same transaction.
    pub(crate) async fn commit_batch(
        &mut self,
        events: Vec<RecordedEvent>,
        mut cursor: Cursor,
        switch: bool,
    ) -> Result<(), RunError> {
        cursor.events_applied += events.len() as u64;
        let durable = self.building.is_none()
            || switch
            || self.batches_since_durable + 1 >= self.config.rebuild_durable_every_batches;
        let batch = Batch {
            store: self.store.clone(),
            projection: self.projection.clone(),
            model: self.model.clone(),
            generation: self.generation,
            lookups: self.lookups.clone(),
            building: if switch { self.building.clone() } else { None },
            cache: std::mem::take(&mut self.cache),
            cache_entries_max: self.config.doc_cache_entries_max,
            durable,
        };
        let (cache, result) = blocking(move || batch.run(&events, cursor)).await?;
        self.cache = cache;
        result?;
        self.batches_since_durable = if durable {
            0
        } else {
            self.batches_since_durable + 1
        };
        self.cursor = cursor;
        if switch {
            self.building = None;
        }
        self.publish(RunState::CatchingUp);
        Ok(())
    }
}

/// Whether the owner asked to stop (or is gone).
pub(crate) fn stop_requested(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Runs blocking database work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        RunError::Storage(StorageError::new(
            StorageErrorKind::Io,
            format!("read-model task failed: {e}"),
        ))
    })
}
