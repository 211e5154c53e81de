//! The dead-letter stream `$dlq-{group}`: `$parked` records (the original event, the
//! error text, the attempt count) and `$parked-resolved` records (a replayed dead letter
//! was acked or skipped), and the fold that rebuilds the unresolved set on open.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use eventum_core::{
    EventStore, ExpectedVersion, Limits, NewEvent, ReadDirection, RecordedEvent, StorageError,
    StreamName,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::{OpenError, storage_from_append};
use crate::registry::{corrupt, for_each_event};

pub const PARKED_TYPE: &str = "$parked";
pub const RESOLVED_TYPE: &str = "$parked-resolved";

pub fn dlq_stream(group: &str) -> StreamName {
    StreamName::system(format!("$dlq-{group}"))
        .expect("group names are checked to make valid stream names")
}

/// An unresolved dead letter. `id` is its version in the dead-letter stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedEvent {
    pub id: u64,
    pub event: Arc<RecordedEvent>,
    /// The error text of the last failure, or why it was held.
    pub reason: String,
    /// Deliveries made before it was parked (0 for an event held behind another).
    pub attempts: u32,
    /// Ordered groups: the position of the parked event of the same stream this one was
    /// held behind.
    pub held_behind: Option<u64>,
    pub parked_at_us: i64,
    /// Being re-delivered by a replay right now (it stays parked until settled).
    pub replaying: bool,
}

/// What the writer appends to the dead-letter stream.
pub enum DlqRecord<'a> {
    Park {
        event: &'a RecordedEvent,
        reason: &'a str,
        attempts: u32,
        held_behind: Option<u64>,
        /// A replayed dead letter that failed again: the id it replaces.
        replaces: Option<u64>,
    },
    Resolve {
        id: u64,
        outcome: &'static str,
    },
}

#[derive(Serialize, Deserialize)]
struct ParkedWire {
    incarnation: Uuid,
    stream: String,
    version: u64,
    position: u64,
    event_id: Uuid,
    event_type: String,
    recorded_at_us: i64,
    correlation_id: Uuid,
    causation_id: Uuid,
    /// The event's data; absent when the record would exceed the event size limit (the
    /// original is then re-read from its stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<Box<RawValue>>,
    reason: String,
    attempts: u32,
    #[serde(default)]
    held_behind: Option<u64>,
    #[serde(default)]
    replaces: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct ResolvedWire {
    incarnation: Uuid,
    id: u64,
    outcome: String,
}

fn raw(bytes: &Bytes) -> Option<Box<RawValue>> {
    if bytes.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    RawValue::from_string(text.to_owned()).ok()
}

fn encode(record: &DlqRecord<'_>, incarnation: Uuid, limits: &Limits) -> NewEvent {
    match record {
        DlqRecord::Park {
            event,
            reason,
            attempts,
            held_behind,
            replaces,
        } => {
            let mut wire = ParkedWire {
                incarnation,
                stream: event.stream.clone(),
                version: event.version,
                position: event.position,
                event_id: event.id,
                event_type: event.event_type.clone(),
                recorded_at_us: event.recorded_at_us,
                correlation_id: event.correlation_id,
                causation_id: event.causation_id,
                data: raw(&event.data),
                metadata: raw(&event.metadata),
                reason: (*reason).to_owned(),
                attempts: *attempts,
                held_behind: *held_behind,
                replaces: *replaces,
            };
            let mut e = NewEvent::new(PARKED_TYPE, &wire).expect("a dead letter serializes");
            if e.size_bytes() > limits.event_bytes_max {
                wire.data = None;
                wire.metadata = None;
                e = NewEvent::new(PARKED_TYPE, &wire).expect("a dead letter serializes");
            }
            e
        }
        DlqRecord::Resolve { id, outcome } => NewEvent::new(
            RESOLVED_TYPE,
            &ResolvedWire {
                incarnation,
                id: *id,
                outcome: (*outcome).to_owned(),
            },
        )
        .expect("a resolution serializes"),
    }
}

/// Appends `records` in order (in as few appends as the store's limits allow) and returns
/// the ids (versions in the dead-letter stream) of those written, in order, and the
/// failure that stopped the rest, if any.
pub async fn append(
    store: &dyn EventStore,
    group: &str,
    incarnation: Uuid,
    records: &[DlqRecord<'_>],
) -> (Vec<u64>, Option<StorageError>) {
    let mut ids = Vec::with_capacity(records.len());
    let failure = append_all(store, group, incarnation, records, &mut ids)
        .await
        .err();
    (ids, failure)
}

async fn append_all(
    store: &dyn EventStore,
    group: &str,
    incarnation: Uuid,
    records: &[DlqRecord<'_>],
    ids: &mut Vec<u64>,
) -> Result<(), StorageError> {
    let limits = *store.limits();
    let stream = dlq_stream(group);
    let mut batch: Vec<NewEvent> = Vec::new();
    let mut batch_bytes = 0usize;
    for record in records {
        let e = encode(record, incarnation, &limits);
        if !batch.is_empty()
            && (batch.len() >= limits.batch_events_max
                || batch_bytes + e.size_bytes() > limits.batch_bytes_max)
        {
            append_batch(store, &stream, std::mem::take(&mut batch), ids).await?;
            batch_bytes = 0;
        }
        batch_bytes += e.size_bytes();
        batch.push(e);
    }
    if !batch.is_empty() {
        append_batch(store, &stream, batch, ids).await?;
    }
    Ok(())
}

async fn append_batch(
    store: &dyn EventStore,
    stream: &StreamName,
    batch: Vec<NewEvent>,
    ids: &mut Vec<u64>,
) -> Result<(), StorageError> {
    let n = batch.len() as u64;
    let r = store
        .append(stream, ExpectedVersion::Any, batch)
        .await
        .map_err(storage_from_append)?;
    // One append is atomic and gets consecutive versions ending at the one reported.
    let first = r.next_expected_version + 1 - n;
    ids.extend(first..=r.next_expected_version);
    Ok(())
}

/// The unresolved dead letters of this incarnation of the group, by id.
pub async fn load(
    store: &dyn EventStore,
    group: &str,
    incarnation: Uuid,
) -> Result<BTreeMap<u64, ParkedEvent>, OpenError> {
    let mut parked = BTreeMap::new();
    let mut omitted = Vec::new();
    for_each_event(store, &dlq_stream(group), |e| {
        match e.event_type.as_str() {
            PARKED_TYPE => {
                let w: ParkedWire =
                    serde_json::from_slice(&e.data).map_err(|err| corrupt(e, err))?;
                if w.incarnation != incarnation {
                    return Ok(());
                }
                if let Some(old) = w.replaces {
                    parked.remove(&old);
                }
                if w.data.is_none() {
                    omitted.push(e.version);
                }
                let event = RecordedEvent {
                    stream: w.stream,
                    version: w.version,
                    position: w.position,
                    recorded_at_us: w.recorded_at_us,
                    id: w.event_id,
                    event_type: w.event_type,
                    data: w.data.map_or(Bytes::from_static(b"null"), |d| {
                        Bytes::from(d.get().to_owned())
                    }),
                    metadata: w
                        .metadata
                        .map_or(Bytes::new(), |m| Bytes::from(m.get().to_owned())),
                    correlation_id: w.correlation_id,
                    causation_id: w.causation_id,
                };
                parked.insert(
                    e.version,
                    ParkedEvent {
                        id: e.version,
                        event: Arc::new(event),
                        reason: w.reason,
                        attempts: w.attempts,
                        held_behind: w.held_behind,
                        parked_at_us: e.recorded_at_us,
                        replaying: false,
                    },
                );
            }
            RESOLVED_TYPE => {
                let w: ResolvedWire =
                    serde_json::from_slice(&e.data).map_err(|err| corrupt(e, err))?;
                if w.incarnation == incarnation {
                    parked.remove(&w.id);
                }
            }
            _ => {}
        }
        Ok(())
    })
    .await?;
    // Dead letters too large to copy whole: fetch the original event from its stream.
    for id in omitted {
        let Some(p) = parked.get_mut(&id) else {
            continue;
        };
        let Ok(stream) = StreamName::system(p.event.stream.clone()) else {
            continue;
        };
        if let Ok(mut events) = store
            .read_stream(&stream, Some(p.event.version), ReadDirection::Forward, 1)
            .await
            && let Some(original) = events.pop()
            && original.id == p.event.id
        {
            p.event = Arc::new(original);
        }
    }
    Ok(parked)
}
