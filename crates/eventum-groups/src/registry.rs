//! Group definitions, stored as `$group-created` / `$group-deleted` records in the
//! `$groups` system stream and folded into the current set when the service opens.

use std::collections::BTreeMap;

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, ReadError, RecordedEvent, StorageError,
    StreamName,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{OpenError, storage_from_append, storage_from_read};
use crate::settings::GroupSettings;

pub const GROUPS_STREAM: &str = "$groups";
pub const CREATED_TYPE: &str = "$group-created";
pub const DELETED_TYPE: &str = "$group-deleted";

/// A group as created. `incarnation` tells this group apart from an earlier one of the
/// same name: checkpoints and dead letters carry it, and records of other incarnations
/// are ignored, so re-creating a deleted group starts clean.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDefinition {
    pub name: String,
    pub incarnation: Uuid,
    pub settings: GroupSettings,
    /// The first global position the group delivers (`from` resolved at creation).
    pub start_position: u64,
}

#[derive(Serialize, Deserialize)]
struct Deleted {
    name: String,
    incarnation: Uuid,
}

pub fn groups_stream() -> StreamName {
    StreamName::system(GROUPS_STREAM).expect("a valid system stream name")
}

/// Calls `f` on every event of `stream`, first to last, reading in pages.
pub(crate) async fn for_each_event(
    store: &dyn EventStore,
    stream: &StreamName,
    mut f: impl FnMut(&RecordedEvent) -> Result<(), OpenError>,
) -> Result<(), OpenError> {
    let page = store.limits().read_events_max;
    let mut from = 0u64;
    loop {
        let events = match store
            .read_stream(stream, Some(from), ReadDirection::Forward, page)
            .await
        {
            Ok(events) => events,
            Err(ReadError::StreamNotFound { .. }) => return Ok(()),
            Err(e) => return Err(storage_from_read(e).into()),
        };
        let Some(last) = events.last() else {
            return Ok(());
        };
        from = last.version + 1;
        for e in &events {
            f(e)?;
        }
        if events.len() < page {
            return Ok(());
        }
    }
}

pub(crate) fn corrupt(e: &RecordedEvent, reason: impl ToString) -> OpenError {
    OpenError::CorruptRecord {
        stream: e.stream.clone(),
        version: e.version,
        reason: reason.to_string(),
    }
}

/// The groups that exist now, by name.
pub async fn load(store: &dyn EventStore) -> Result<BTreeMap<String, GroupDefinition>, OpenError> {
    let mut groups = BTreeMap::new();
    for_each_event(store, &groups_stream(), |e| {
        match e.event_type.as_str() {
            CREATED_TYPE => {
                let def: GroupDefinition =
                    serde_json::from_slice(&e.data).map_err(|err| corrupt(e, err))?;
                groups.insert(def.name.clone(), def);
            }
            DELETED_TYPE => {
                let d: Deleted = serde_json::from_slice(&e.data).map_err(|err| corrupt(e, err))?;
                if groups
                    .get(&d.name)
                    .is_some_and(|g: &GroupDefinition| g.incarnation == d.incarnation)
                {
                    groups.remove(&d.name);
                }
            }
            _ => {}
        }
        Ok(())
    })
    .await?;
    Ok(groups)
}

pub async fn append_created(
    store: &dyn EventStore,
    def: &GroupDefinition,
) -> Result<(), StorageError> {
    let event = NewEvent::new(CREATED_TYPE, def).expect("a definition serializes to JSON");
    store
        .append(&groups_stream(), ExpectedVersion::Any, vec![event])
        .await
        .map(|_| ())
        .map_err(storage_from_append)
}

pub async fn append_deleted(
    store: &dyn EventStore,
    def: &GroupDefinition,
) -> Result<(), StorageError> {
    let d = Deleted {
        name: def.name.clone(),
        incarnation: def.incarnation,
    };
    let event = NewEvent::new(DELETED_TYPE, &d).expect("a deletion serializes to JSON");
    store
        .append(&groups_stream(), ExpectedVersion::Any, vec![event])
        .await
        .map(|_| ())
        .map_err(storage_from_append)
}
