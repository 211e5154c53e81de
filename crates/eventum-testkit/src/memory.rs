//! An in-memory [`EventStore`]: the reference model for property tests and a fast double
//! for interface tests. It implements the contract literally, with no bound on history,
//! so a real backend that disagrees with it is wrong (or hit a documented bound).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use eventum_core::subscription::{self, LiveBatch, SubscriptionSource};
use eventum_core::{
    ActualVersion, AppendError, AppendResult, EventStore, ExpectedVersion, Limits, NewEvent,
    ReadDirection, ReadError, RecordedEvent, StorageError, StreamMetadata, StreamName, StreamState,
    Subscription, SubscriptionFrom, SubscriptionTarget,
};
use tokio::sync::broadcast;

pub use eventum_core::stream::{METADATA_TYPE, STREAM_DELETED_TYPE};

#[derive(Default)]
struct StreamEntry {
    positions: Vec<u64>,
    deleted: bool,
    metadata: StreamMetadata,
}

#[derive(Default)]
struct State {
    log: Vec<RecordedEvent>,
    streams: HashMap<String, StreamEntry>,
}

struct Inner {
    state: Mutex<State>,
    live: broadcast::Sender<LiveBatch>,
    limits: Limits,
}

/// The in-memory model store. Cheap to clone; clones share the same log.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl MemoryStore {
    pub fn new(limits: Limits) -> Self {
        let (live, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                live,
                limits,
            }),
        }
    }

    /// Records `events` in `stream`. Runs under the state lock, so a check made under the
    /// same guard still holds and batches reach receivers in commit order.
    fn commit(&self, st: &mut State, stream: &str, events: Vec<NewEvent>) -> AppendResult {
        let recorded_at_us = now_us();
        let mut batch = Vec::with_capacity(events.len());
        for event in events {
            let position = st.log.len() as u64;
            let entry = st.streams.entry(stream.to_owned()).or_default();
            let version = entry.positions.len() as u64;
            entry.positions.push(position);
            let id = event.id();
            let recorded = RecordedEvent {
                stream: stream.to_owned(),
                version,
                position,
                recorded_at_us,
                id,
                event_type: event.event_type().to_owned(),
                data: event.data().clone(),
                metadata: event.metadata().clone(),
                correlation_id: event.correlation_id().unwrap_or(id),
                causation_id: event.causation_id().unwrap_or(id),
            };
            apply_system_event(st, &recorded);
            st.log.push(recorded.clone());
            batch.push(recorded);
        }
        let last = batch.last().expect("batches are never empty");
        let result = AppendResult {
            next_expected_version: last.version,
            position: last.position,
        };
        let _ = self.inner.live.send(batch.into());
        result
    }

    fn actual(st: &State, stream: &str) -> ActualVersion {
        ActualVersion::from_option(
            st.streams
                .get(stream)
                .and_then(|e| (e.positions.len() as u64).checked_sub(1)),
        )
    }

    /// The original result if `events` were already appended to `stream` as one batch
    /// under the same expectation.
    fn find_retry(
        st: &State,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Option<AppendResult> {
        let entry = st.streams.get(stream)?;
        let first_version = match expected {
            // `Exact(u64::MAX)` can never have been satisfied, so it is never a retry.
            ExpectedVersion::Exact(v) => v.checked_add(1)?,
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Any | ExpectedVersion::StreamExists => {
                let first = events[0].id();
                entry
                    .positions
                    .iter()
                    .position(|p| st.log[*p as usize].id == first)? as u64
            }
        };
        let mut last = None;
        for (i, event) in events.iter().enumerate() {
            let p = *entry.positions.get(first_version as usize + i)?;
            let recorded = &st.log[p as usize];
            if recorded.id != event.id() {
                return None;
            }
            last = Some(recorded);
        }
        last.map(|r| AppendResult {
            next_expected_version: r.version,
            position: r.position,
        })
    }
}

fn apply_system_event(st: &mut State, recorded: &RecordedEvent) {
    let Some(target) = recorded.stream.strip_prefix("$$").filter(|s| !s.is_empty()) else {
        return;
    };
    match recorded.event_type.as_str() {
        STREAM_DELETED_TYPE => st.streams.entry(target.to_owned()).or_default().deleted = true,
        METADATA_TYPE => {
            if let Ok(m) = serde_json::from_slice(&recorded.data) {
                st.streams.entry(target.to_owned()).or_default().metadata = m;
            }
        }
        _ => {}
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        self.inner.limits.check_batch(&events)?;
        let mut st = self.inner.state.lock().unwrap();
        if st.streams.get(stream.as_str()).is_some_and(|e| e.deleted) {
            return Err(AppendError::StreamDeleted {
                stream: stream.to_string(),
            });
        }
        {
            if let Some(result) = Self::find_retry(&st, stream.as_str(), expected, &events) {
                return Ok(result);
            }
            let actual = Self::actual(&st, stream.as_str());
            AppendError::check_expected(stream.as_str(), expected, actual)?;
        }
        Ok(self.commit(&mut st, stream.as_str(), events))
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.limits.check_read_limit(limit)?;
        let st = self.inner.state.lock().unwrap();
        let entry = match st.streams.get(stream.as_str()) {
            Some(e) if e.deleted => {
                return Err(ReadError::StreamDeleted {
                    stream: stream.to_string(),
                });
            }
            Some(e) if !e.positions.is_empty() => e,
            _ => {
                return Err(ReadError::StreamNotFound {
                    stream: stream.to_string(),
                });
            }
        };
        let last_version = entry.positions.len() as u64 - 1;
        let now = now_us();
        let visible = |p: &u64| {
            let e = &st.log[*p as usize];
            entry
                .metadata
                .is_visible(e.version, last_version, e.recorded_at_us, now)
        };
        let events: Vec<_> = match direction {
            ReadDirection::Forward => {
                let start = from.unwrap_or(0).min(entry.positions.len() as u64) as usize;
                entry.positions[start..]
                    .iter()
                    .filter(|p| visible(p))
                    .take(limit)
                    .map(|p| st.log[*p as usize].clone())
                    .collect()
            }
            ReadDirection::Backward => {
                let end = from.unwrap_or(last_version).min(last_version) as usize;
                entry.positions[..=end]
                    .iter()
                    .rev()
                    .filter(|p| visible(p))
                    .take(limit)
                    .map(|p| st.log[*p as usize].clone())
                    .collect()
            }
        };
        Ok(events)
    }

    async fn read_all(
        &self,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.limits.check_read_limit(limit)?;
        let st = self.inner.state.lock().unwrap();
        let len = st.log.len() as u64;
        Ok(match direction {
            ReadDirection::Forward => {
                let start = from.unwrap_or(0).min(len) as usize;
                st.log[start..].iter().take(limit).cloned().collect()
            }
            ReadDirection::Backward => {
                if len == 0 {
                    return Ok(Vec::new());
                }
                let end = from.unwrap_or(len - 1).min(len - 1) as usize;
                st.log[..=end].iter().rev().take(limit).cloned().collect()
            }
        })
    }

    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.inner.limits.check_read_limit(limit)?;
        let st = self.inner.state.lock().unwrap();
        let start = from.min(st.log.len() as u64) as usize;
        Ok(st.log[start..]
            .iter()
            .filter(|e| e.category() == category)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
    ) -> Result<AppendResult, AppendError> {
        let mut st = self.inner.state.lock().unwrap();
        let last_version = {
            if st.streams.get(stream.as_str()).is_some_and(|e| e.deleted) {
                return Err(AppendError::StreamDeleted {
                    stream: stream.to_string(),
                });
            }
            let actual = Self::actual(&st, stream.as_str());
            AppendError::check_expected(stream.as_str(), expected, actual)?;
            actual.as_option()
        };
        let marker = NewEvent::stream_deleted(stream, last_version);
        Ok(self.commit(&mut st, stream.metadata_stream().as_str(), vec![marker]))
    }

    async fn set_stream_metadata(
        &self,
        stream: &StreamName,
        metadata: StreamMetadata,
    ) -> Result<AppendResult, AppendError> {
        let event = NewEvent::stream_metadata(&metadata);
        let mut st = self.inner.state.lock().unwrap();
        if st.streams.get(stream.as_str()).is_some_and(|e| e.deleted) {
            return Err(AppendError::StreamDeleted {
                stream: stream.to_string(),
            });
        }
        Ok(self.commit(&mut st, stream.metadata_stream().as_str(), vec![event]))
    }

    async fn stream_state(&self, stream: &StreamName) -> Result<StreamState, ReadError> {
        let st = self.inner.state.lock().unwrap();
        Ok(match st.streams.get(stream.as_str()) {
            Some(e) => StreamState {
                version: Self::actual(&st, stream.as_str()),
                deleted: e.deleted,
                metadata: e.metadata.clone(),
            },
            None => StreamState {
                version: ActualVersion::NoStream,
                deleted: false,
                metadata: StreamMetadata::default(),
            },
        })
    }

    fn subscribe(&self, target: SubscriptionTarget, from: SubscriptionFrom) -> Subscription {
        subscription::subscribe(Arc::new(self.clone()), target, from, 256)
    }

    fn head_position(&self) -> Option<u64> {
        (self.inner.state.lock().unwrap().log.len() as u64).checked_sub(1)
    }
}

#[async_trait]
impl SubscriptionSource for MemoryStore {
    async fn read_matching(
        &self,
        target: &SubscriptionTarget,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError> {
        let st = self.inner.state.lock().unwrap();
        let start = from.min(st.log.len() as u64) as usize;
        Ok(st.log[start..]
            .iter()
            .filter(|e| target.matches(e))
            .take(limit)
            .cloned()
            .collect())
    }

    fn next_position(&self) -> u64 {
        self.inner.state.lock().unwrap().log.len() as u64
    }

    fn live(&self) -> broadcast::Receiver<LiveBatch> {
        self.inner.live.subscribe()
    }
}

/// Bytes of a JSON value, for building expected events in tests.
pub fn json_bytes(value: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values serialize"))
}
