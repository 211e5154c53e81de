//! A runner's durable checkpoint: the position of the next event to handle, appended to a
//! small system stream whose retention keeps only the last few records.

use std::sync::Arc;

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, ReadError, StreamMetadata, StreamName,
};
use serde::{Deserialize, Serialize};

use crate::error::{RunError, StartError};

/// Checkpoint records kept visible; older ones are hidden by retention.
const CHECKPOINTS_KEPT: u64 = 16;

#[derive(Serialize, Deserialize)]
struct CheckpointRecord {
    next_position: u64,
}

#[derive(Clone)]
pub struct Checkpoint {
    store: Arc<dyn EventStore>,
    stream: StreamName,
}

impl Checkpoint {
    /// Reads the last checkpoint (0 when there is none) and sets the stream's retention.
    pub async fn open(
        store: Arc<dyn EventStore>,
        stream: StreamName,
    ) -> Result<(Self, u64), StartError> {
        let state = store.stream_state(&stream).await;
        let needs_retention = match &state {
            Ok(s) => s.metadata.max_count.is_none(),
            Err(ReadError::StreamNotFound { .. }) => true,
            Err(_) => false,
        };
        if let Err(e) = &state
            && !matches!(e, ReadError::StreamNotFound { .. })
        {
            return Err(StartError::Read(e.clone()));
        }
        if needs_retention {
            store
                .set_stream_metadata(
                    &stream,
                    StreamMetadata {
                        max_count: Some(CHECKPOINTS_KEPT),
                        max_age_s: None,
                    },
                )
                .await?;
        }
        let last = match store
            .read_stream(&stream, None, ReadDirection::Backward, 1)
            .await
        {
            Ok(page) => page,
            Err(ReadError::StreamNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let next = match last.first() {
            Some(e) => {
                serde_json::from_slice::<CheckpointRecord>(&e.data)
                    .map_err(|err| StartError::Corrupt(format!("{stream}: {err}")))?
                    .next_position
            }
            None => 0,
        };
        Ok((Self { store, stream }, next))
    }

    /// Records that every event before `next_position` is handled.
    pub async fn save(&self, next_position: u64) -> Result<(), RunError> {
        let event = NewEvent::new("Checkpoint", &CheckpointRecord { next_position })
            .expect("a checkpoint serializes");
        self.store
            .append(&self.stream, ExpectedVersion::Any, vec![event])
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventum_testkit::MemoryStore;

    #[tokio::test]
    async fn checkpoint_round_trips() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
        let stream = StreamName::system("$saga-checkpoint-t").unwrap();
        let (cp, next) = Checkpoint::open(store.clone(), stream.clone())
            .await
            .unwrap();
        assert_eq!(next, 0);
        for p in 1..=40 {
            cp.save(p).await.unwrap();
        }
        let (_, next) = Checkpoint::open(store, stream).await.unwrap();
        assert_eq!(next, 40);
    }
}
