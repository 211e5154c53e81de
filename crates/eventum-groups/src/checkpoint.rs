//! A group's checkpoint: the global position before which every event is settled (acked,
//! skipped or parked), stored as the last event of `$groups-{name}-checkpoint`, a stream
//! kept short with `max_count` retention.

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, ReadError, StorageError, StreamMetadata,
    StreamName,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{storage_from_append, storage_from_read};

pub const CHECKPOINT_TYPE: &str = "$checkpoint";
/// Checkpoint events kept visible; only the last is ever read.
const CHECKPOINTS_KEPT: u64 = 2;

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    incarnation: Uuid,
    position: u64,
}

pub fn checkpoint_stream(group: &str) -> StreamName {
    StreamName::system(format!("$groups-{group}-checkpoint"))
        .expect("group names are checked to make valid stream names")
}

/// Sets the retention of the checkpoint stream, so that reading it stays small.
pub async fn prepare(store: &dyn EventStore, group: &str) -> Result<(), StorageError> {
    let metadata = StreamMetadata {
        max_count: Some(CHECKPOINTS_KEPT),
        max_age_s: None,
    };
    store
        .set_stream_metadata(&checkpoint_stream(group), metadata)
        .await
        .map(|_| ())
        .map_err(storage_from_append)
}

/// The stored checkpoint of this incarnation of the group, if any.
pub async fn load(
    store: &dyn EventStore,
    group: &str,
    incarnation: Uuid,
) -> Result<Option<u64>, StorageError> {
    let last = match store
        .read_stream(&checkpoint_stream(group), None, ReadDirection::Backward, 1)
        .await
    {
        Ok(events) => events,
        Err(ReadError::StreamNotFound { .. }) => return Ok(None),
        Err(e) => return Err(storage_from_read(e)),
    };
    Ok(last
        .first()
        .and_then(|e| serde_json::from_slice::<Checkpoint>(&e.data).ok())
        .filter(|c| c.incarnation == incarnation)
        .map(|c| c.position))
}

pub async fn write(
    store: &dyn EventStore,
    group: &str,
    incarnation: Uuid,
    position: u64,
) -> Result<(), StorageError> {
    let event = NewEvent::new(
        CHECKPOINT_TYPE,
        &Checkpoint {
            incarnation,
            position,
        },
    )
    .expect("a checkpoint serializes to JSON");
    store
        .append(&checkpoint_stream(group), ExpectedVersion::Any, vec![event])
        .await
        .map(|_| ())
        .map_err(storage_from_append)
}
