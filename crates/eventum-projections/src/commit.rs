//! One projection batch on the blocking pool: apply the events through a
//! [`ProjectionTx`], write the documents, the checkpoint and (when switching) the registry
//! row in one redb transaction; and the registration that decides which generation a
//! projection writes.

use std::sync::Arc;

use eventum_core::{RecordedEvent, StorageError, StorageErrorKind};
use redb::Durability;

use crate::docs::{DocCache, Documents};
use crate::error::{ProjectionError, RunError, TxError, db_error};
use crate::model::{Lookup, Projection};
use crate::store::{ReadModelStore, create_generation_tables};
use crate::tables::{
    Building, Cursor, MODELS, ModelRow, Owner, drop_generation, projection_consumer, read_cursor,
    read_row, write_cursor, write_row,
};
use crate::tx::ProjectionTx;

/// Where a generation stands after registration.
pub(crate) struct Prepared {
    pub(crate) generation: u64,
    pub(crate) building: Option<Building>,
    pub(crate) cursor: Cursor,
}

/// Everything one batch needs on the blocking pool.
pub(crate) struct Batch {
    pub(crate) store: ReadModelStore,
    pub(crate) projection: Arc<dyn Projection>,
    pub(crate) model: String,
    pub(crate) generation: u64,
    pub(crate) lookups: Arc<[Lookup]>,
    pub(crate) building: Option<Building>,
    pub(crate) cache: DocCache,
    pub(crate) cache_entries_max: usize,
    pub(crate) durable: bool,
}

impl Batch {
    /// Returns the document cache to keep (empty after a failure, which aborted the
    /// transaction) and the outcome.
    pub(crate) fn run(
        self,
        events: &[RecordedEvent],
        cursor: Cursor,
    ) -> (DocCache, Result<(), RunError>) {
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
pub(crate) fn prepare(
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
