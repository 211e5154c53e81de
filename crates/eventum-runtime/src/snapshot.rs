//! Snapshots: an aggregate's state at a version, kept in the store itself (stream
//! `$snapshot-{stream}`, retention `max_count = 1`), so that they work unchanged on every
//! backend. A snapshot is only an optimisation: one that is missing, from another schema
//! version, or undecodable is ignored and the state is rebuilt from events.

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamMetadata, StreamName,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::loaded::{Loaded, RecentCommands};

/// The event type of a snapshot record.
pub const SNAPSHOT_TYPE: &str = "$snapshot";

/// The stream holding the snapshots of `stream`.
pub fn snapshot_stream(stream: &StreamName) -> StreamName {
    StreamName::system(format!("$snapshot-{}", stream.as_str()))
        .expect("a valid stream name prefixed stays valid within the length limit")
}

#[derive(Serialize, Deserialize)]
struct SnapshotRecord<S> {
    schema_version: u32,
    version: u64,
    state: S,
    recent_commands: RecentCommands,
}

/// The latest usable snapshot of `stream`, or `None` (missing, other schema version,
/// undecodable, unreadable: all mean "rebuild from events").
pub async fn load<A: Serialize + DeserializeOwned>(
    store: &dyn EventStore,
    stream: &StreamName,
    schema_version: u32,
) -> Option<Loaded<A>> {
    let events = store
        .read_stream(&snapshot_stream(stream), None, ReadDirection::Backward, 1)
        .await
        .ok()?;
    let event = events.first()?;
    match serde_json::from_slice::<SnapshotRecord<A>>(&event.data) {
        Ok(record) if record.schema_version == schema_version => Some(Loaded {
            state: record.state,
            version: Some(record.version),
            recent: record.recent_commands,
        }),
        Ok(record) => {
            tracing::debug!(stream = %stream, found = record.schema_version, schema_version,
                "snapshot of another schema version ignored");
            None
        }
        Err(e) => {
            tracing::warn!(stream = %stream, error = %e, "undecodable snapshot ignored");
            None
        }
    }
}

/// Writes a snapshot of `loaded` (which must have a version).
pub async fn save<A: Serialize>(
    store: &dyn EventStore,
    stream: &StreamName,
    schema_version: u32,
    loaded: &Loaded<A>,
) -> Result<(), String> {
    let Some(version) = loaded.version else {
        return Ok(());
    };
    let record = SnapshotRecord {
        schema_version,
        version,
        state: &loaded.state,
        recent_commands: loaded.recent.clone(),
    };
    let event = NewEvent::new(SNAPSHOT_TYPE, &record).map_err(|e| e.to_string())?;
    let target = snapshot_stream(stream);
    let result = store
        .append(&target, ExpectedVersion::Any, vec![event])
        .await
        .map_err(|e| e.to_string())?;
    if result.next_expected_version == 0 {
        // The first snapshot of this stream: older ones need never be read again.
        let retention = StreamMetadata {
            max_count: Some(1),
            max_age_s: None,
        };
        store
            .set_stream_metadata(&target, retention)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
