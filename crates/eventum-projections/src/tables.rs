//! The redb layout of the read-model store: the model registry (which generation of each
//! read model is active, and which one is being built), checkpoints, the inbox tables, and
//! one documents table plus one lookup table per read-model generation.

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::error::{corrupt, db_error};
use crate::inbox;
use crate::model::Lookup;
use eventum_core::StorageError;

/// Read-model name → [`ModelRow`] as JSON.
pub(crate) const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");
/// Consumer → (next position, events applied, next stream version). User consumers use
/// only the first; projections' generations (`$p/{model}/{generation}`) use all three.
pub(crate) const CURSORS: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("cursors");

pub(crate) type DocsDef<'a> = TableDefinition<'a, &'static str, &'static [u8]>;
/// (lookup, value, key) → ().
pub(crate) type LookupsDef<'a> =
    TableDefinition<'a, (&'static str, &'static str, &'static str), ()>;
pub(crate) type DocsTable<'t> = Table<'t, &'static str, &'static [u8]>;
pub(crate) type LookupsTable<'t> = Table<'t, (&'static str, &'static str, &'static str), ()>;

pub(crate) fn docs_table_name(model: &str, generation: u64) -> String {
    format!("docs/{model}/{generation}")
}

pub(crate) fn lookups_table_name(model: &str, generation: u64) -> String {
    format!("lookups/{model}/{generation}")
}

/// The consumer name under which a projection generation keeps its cursor and inbox.
pub(crate) fn projection_consumer(model: &str, generation: u64) -> String {
    format!("$p/{model}/{generation}")
}

/// Who writes a read model's documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Owner {
    Projection,
    User,
}

/// A generation being built while the active one serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Building {
    pub generation: u64,
    pub version: u64,
    pub lookups: Vec<Lookup>,
}

/// A read model's registry row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ModelRow {
    pub owner: Owner,
    pub version: u64,
    /// The generation queries read.
    pub generation: u64,
    pub lookups: Vec<Lookup>,
    pub building: Option<Building>,
}

pub(crate) fn read_row(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    model: &str,
) -> Result<Option<ModelRow>, StorageError> {
    match table.get(model).map_err(db_error)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|e| corrupt(format!("model row {model}: {e}"))),
    }
}

pub(crate) fn write_row(
    txn: &WriteTransaction,
    model: &str,
    row: &ModelRow,
) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec(row).expect("a model row serializes");
    let mut table = txn.open_table(MODELS).map_err(db_error)?;
    table.insert(model, bytes.as_slice()).map_err(db_error)?;
    Ok(())
}

/// A projection generation's position in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Every event below this position has been applied (or does not match).
    pub position_next: u64,
    pub events_applied: u64,
    /// For stream targets: the next version to read.
    pub stream_version_next: u64,
}

pub(crate) fn read_cursor(txn: &WriteTransaction, consumer: &str) -> Result<Cursor, StorageError> {
    let table = txn.open_table(CURSORS).map_err(db_error)?;
    Ok(table
        .get(consumer)
        .map_err(db_error)?
        .map(|g| {
            let (position_next, events_applied, stream_version_next) = g.value();
            Cursor {
                position_next,
                events_applied,
                stream_version_next,
            }
        })
        .unwrap_or_default())
}

pub(crate) fn write_cursor(
    txn: &WriteTransaction,
    consumer: &str,
    c: Cursor,
) -> Result<(), StorageError> {
    let mut table = txn.open_table(CURSORS).map_err(db_error)?;
    table
        .insert(
            consumer,
            (c.position_next, c.events_applied, c.stream_version_next),
        )
        .map_err(db_error)?;
    Ok(())
}

/// Drops a generation: its documents, lookups, cursor and inbox.
pub(crate) fn drop_generation(
    txn: &WriteTransaction,
    model: &str,
    generation: u64,
) -> Result<(), StorageError> {
    let docs = docs_table_name(model, generation);
    let lookups = lookups_table_name(model, generation);
    txn.delete_table(DocsDef::new(&docs)).map_err(db_error)?;
    txn.delete_table(LookupsDef::new(&lookups))
        .map_err(db_error)?;
    let consumer = projection_consumer(model, generation);
    txn.open_table(CURSORS)
        .map_err(db_error)?
        .remove(consumer.as_str())
        .map_err(db_error)?;
    inbox::clear(txn, &consumer)?;
    Ok(())
}
