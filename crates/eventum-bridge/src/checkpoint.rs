//! The relay's durable checkpoint: the position of the next event to publish, appended to
//! `$bridge-{name}-checkpoint`, whose `max_count` retention keeps only the last records.

use std::sync::Arc;

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, ReadError, StreamMetadata, StreamName,
};
use serde::{Deserialize, Serialize};

use crate::error::RelayError;

/// The event type of a checkpoint record.
pub const CHECKPOINT_TYPE: &str = "BridgeCheckpoint";

#[derive(Serialize, Deserialize)]
struct CheckpointRecord {
    next_position: u64,
}

pub(crate) struct Checkpoint {
    store: Arc<dyn EventStore>,
    stream: StreamName,
}

impl Checkpoint {
    /// Opens the checkpoint stream (setting its retention on first use) and returns the
    /// saved next position, 0 when there is none.
    pub(crate) async fn open(
        store: Arc<dyn EventStore>,
        stream: StreamName,
        records_kept: u64,
    ) -> Result<(Self, u64), RelayError> {
        let needs_retention = match store.stream_state(&stream).await {
            Ok(s) => s.metadata.max_count.is_none(),
            Err(ReadError::StreamNotFound { .. }) => true,
            Err(e) => return Err(e.into()),
        };
        if needs_retention {
            let metadata = StreamMetadata {
                max_count: Some(records_kept),
                max_age_s: None,
            };
            store.set_stream_metadata(&stream, metadata).await?;
        }
        let next = read_next_position(store.as_ref(), &stream).await?;
        Ok((Self { store, stream }, next))
    }

    /// Records that every event before `next_position` was acknowledged by the broker.
    pub(crate) async fn save(&self, next_position: u64) -> Result<(), RelayError> {
        let event = NewEvent::new(CHECKPOINT_TYPE, &CheckpointRecord { next_position })
            .expect("a checkpoint record serializes");
        self.store
            .append(&self.stream, ExpectedVersion::Any, vec![event])
            .await?;
        Ok(())
    }
}

/// The saved next position of a checkpoint stream (0 when it has none).
pub async fn read_next_position(
    store: &dyn EventStore,
    stream: &StreamName,
) -> Result<u64, RelayError> {
    let last = match store
        .read_stream(stream, None, ReadDirection::Backward, 1)
        .await
    {
        Ok(page) => page,
        Err(ReadError::StreamNotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    match last.first() {
        None => Ok(0),
        Some(e) => serde_json::from_slice::<CheckpointRecord>(&e.data)
            .map(|r| r.next_position)
            .map_err(|err| RelayError::CheckpointCorrupt {
                stream: stream.to_string(),
                reason: err.to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventum_testkit::MemoryStore;

    #[tokio::test]
    async fn checkpoint_round_trips_and_keeps_few_records() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
        let stream = StreamName::system("$bridge-t-checkpoint").unwrap();
        let (cp, next) = Checkpoint::open(store.clone(), stream.clone(), 4)
            .await
            .unwrap();
        assert_eq!(next, 0);
        for p in 1..=20 {
            cp.save(p).await.unwrap();
        }
        let (_, next) = Checkpoint::open(store.clone(), stream.clone(), 4)
            .await
            .unwrap();
        assert_eq!(next, 20);
        let visible = store
            .read_stream(&stream, None, ReadDirection::Forward, 100)
            .await
            .unwrap();
        assert_eq!(visible.len(), 4, "retention keeps only the last records");
    }

    #[tokio::test]
    async fn corrupt_record_is_a_typed_error() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
        let stream = StreamName::system("$bridge-c-checkpoint").unwrap();
        let junk = NewEvent::new(CHECKPOINT_TYPE, &serde_json::json!({"x": 1})).unwrap();
        store
            .append(&stream, ExpectedVersion::Any, vec![junk])
            .await
            .unwrap();
        let err = Checkpoint::open(store, stream, 4).await.err().unwrap();
        assert!(matches!(err, RelayError::CheckpointCorrupt { .. }));
    }
}
