//! The engine every projection mode shares: registering a projection (and deciding
//! whether it needs a rebuild), catching a generation up from its checkpoint, applying a
//! batch of events and committing it with the checkpoint in one redb transaction, and
//! switching a rebuilt generation in atomically.

use std::sync::Arc;

use eventum_core::{
    EventStore, ReadDirection, ReadError, RecordedEvent, StorageError, StorageErrorKind,
    SubscriptionTarget,
};
use redb::Durability;
use tokio::sync::watch;

use crate::config::RunnerConfig;
use crate::docs::{DocCache, Documents};
use crate::error::{ProjectionError, RunError, TxError, db_error};
use crate::model::{Lookup, Projection, check_lookups, check_name};
use crate::store::{Claim, ReadModelStore, create_generation_tables};
use crate::tables::{
    Building, Cursor, MODELS, ModelRow, Owner, drop_generation, projection_consumer, read_cursor,
    read_row, write_cursor, write_row,
};
use crate::tx::ProjectionTx;

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

/// Where a generation stands after registration.
struct Prepared {
    generation: u64,
    building: Option<Building>,
    cursor: Cursor,
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

/// Everything one batch needs on the blocking pool.
struct Batch {
    store: ReadModelStore,
    projection: Arc<dyn Projection>,
    model: String,
    generation: u64,
    lookups: Arc<[Lookup]>,
    building: Option<Building>,
    cache: DocCache,
    cache_entries_max: usize,
    durable: bool,
}

impl Batch {
    /// Returns the document cache to keep (empty after a failure, which aborted the
    /// transaction) and the outcome.
    fn run(self, events: &[RecordedEvent], cursor: Cursor) -> (DocCache, Result<(), RunError>) {
        let mut kept = DocCache::default();
        let result = self.run_inner(events, cursor, &mut kept);
        if result.is_err() {
            kept.clear();
        }
        (kept, result)
    }

    fn run_inner(
        self,
        events: &[RecordedEvent],
        cursor: Cursor,
        kept: &mut DocCache,
    ) -> Result<(), RunError> {
        let mut txn = self.store.db().begin_write().map_err(db_error)?;
        if !self.durable {
            txn.set_durability(Durability::None).map_err(db_error)?;
        }
        let consumer = projection_consumer(&self.model, self.generation);
        {
            let docs = Documents::open(
                &txn,
                &self.model,
                self.generation,
                self.lookups.clone(),
                self.store.config_arc(),
                self.cache,
                self.cache_entries_max,
            )
            .map_err(storage)?;
            let mut tx = ProjectionTx {
                docs,
                txn: &txn,
                inbox: None,
                consumer: consumer.clone(),
                inbox_ids_max: self.store.config().inbox_ids_max,
            };
            let target = self.projection.target();
            for e in events.iter().filter(|e| target.matches(e)) {
                self.projection
                    .apply(&mut tx, e)
                    .map_err(|source| apply_error(&self.model, e, source))?;
            }
            *kept = tx.finish().map_err(|e| match events.last() {
                Some(last) => apply_error(&self.model, last, ProjectionError::from(e)),
                None => storage(e),
            })?;
        }
        write_cursor(&txn, &consumer, cursor)?;
        if let Some(b) = self.building {
            let mut row = {
                let table = txn.open_table(MODELS).map_err(db_error)?;
                read_row(&table, &self.model)?
            }
            .ok_or_else(|| StorageError::new(StorageErrorKind::Corrupt, "model row vanished"))?;
            let old = row.generation;
            row.generation = b.generation;
            row.version = b.version;
            row.lookups = b.lookups;
            row.building = None;
            write_row(&txn, &self.model, &row)?;
            drop_generation(&txn, &self.model, old)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(())
    }
}

fn apply_error(model: &str, e: &RecordedEvent, source: ProjectionError) -> RunError {
    RunError::Apply {
        model: model.to_owned(),
        position: e.position,
        event_id: e.id,
        source,
    }
}

fn storage(e: TxError) -> RunError {
    match e {
        TxError::Storage(e) => RunError::Storage(e),
        other => RunError::Storage(StorageError::new(StorageErrorKind::Io, other.to_string())),
    }
}

/// Registers a projection's read model and decides which generation to write.
fn prepare(
    store: &ReadModelStore,
    model: &str,
    version: u64,
    lookups: &[Lookup],
    force_rebuild: bool,
) -> Result<Prepared, RunError> {
    let txn = store.db().begin_write().map_err(db_error)?;
    let existing = {
        let table = txn.open_table(MODELS).map_err(db_error)?;
        read_row(&table, model)?
    };
    let (generation, building) = match existing {
        None => {
            let row = ModelRow {
                owner: Owner::Projection,
                version,
                generation: 1,
                lookups: lookups.to_vec(),
                building: None,
            };
            write_row(&txn, model, &row)?;
            create_generation_tables(&txn, model, 1)?;
            (1, None)
        }
        Some(row) if row.owner != Owner::Projection => {
            return Err(RunError::NameTaken {
                model: model.to_owned(),
            });
        }
        Some(mut row) => {
            let current = row.version == version && row.lookups == lookups;
            let resumable = row
                .building
                .as_ref()
                .filter(|b| b.version == version && b.lookups == lookups && !force_rebuild)
                .cloned();
            if current && !force_rebuild {
                if let Some(b) = row.building.take() {
                    // A rebuild for another version was abandoned: drop it.
                    drop_generation(&txn, model, b.generation)?;
                    write_row(&txn, model, &row)?;
                }
                (row.generation, None)
            } else if let Some(b) = resumable {
                (b.generation, Some(b))
            } else {
                let mut newest = row.generation;
                if let Some(b) = row.building.take() {
                    drop_generation(&txn, model, b.generation)?;
                    newest = newest.max(b.generation);
                }
                let b = Building {
                    generation: newest + 1,
                    version,
                    lookups: lookups.to_vec(),
                };
                create_generation_tables(&txn, model, b.generation)?;
                row.building = Some(b.clone());
                write_row(&txn, model, &row)?;
                (b.generation, Some(b))
            }
        }
    };
    let cursor = read_cursor(&txn, &projection_consumer(model, generation))?;
    txn.commit().map_err(db_error)?;
    Ok(Prepared {
        generation,
        building,
        cursor,
    })
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
