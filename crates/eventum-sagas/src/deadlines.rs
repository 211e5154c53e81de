//! The deadline book: the durable record of a saga's deadlines (`$saga-deadlines-{saga}`:
//! scheduled, fired, cancelled) folded into a bounded in-memory timer set. The book only
//! says *when* to look; whether a deadline fires is decided by its instance stream, whose
//! exact-version append makes a second firing impossible.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use eventum_core::{EventStore, ExpectedVersion, ReadDirection, ReadError, StreamName};
use uuid::Uuid;

use crate::error::RunError;
use crate::records::{BookRecord, DeadlineEntry};

/// Pending deadlines, earliest first, at most `capacity` in memory. Shared by the
/// runner's concurrent instance tasks: records are appended outside the lock (the book's
/// appends are independent and idempotent), only the in-memory timers are behind it.
pub struct DeadlineBook {
    store: Arc<dyn EventStore>,
    stream: StreamName,
    capacity: usize,
    read_batch_events: usize,
    timers: Mutex<Timers>,
}

#[derive(Default)]
struct Timers {
    timers: BTreeSet<(i64, Uuid)>,
    entries: HashMap<Uuid, DeadlineEntry>,
    /// Some pending deadlines were left out of memory; reload when the timers drain.
    overflowed: bool,
}

impl DeadlineBook {
    pub fn new(
        store: Arc<dyn EventStore>,
        stream: StreamName,
        capacity: usize,
        read_batch_events: usize,
    ) -> Self {
        Self {
            store,
            stream,
            capacity,
            read_batch_events,
            timers: Mutex::new(Timers::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Timers> {
        // Nothing panics while holding the lock; a poisoned one still holds valid timers.
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds the whole book: pending = scheduled − fired − cancelled; keeps the earliest
    /// `capacity` of them. Call it only while no instance task runs: it replaces what
    /// concurrent schedules put in memory.
    pub async fn load(&self) -> Result<(), ReadError> {
        let mut pending: HashMap<Uuid, DeadlineEntry> = HashMap::new();
        let mut from = 0;
        loop {
            let page = match self
                .store
                .read_stream(
                    &self.stream,
                    Some(from),
                    ReadDirection::Forward,
                    self.read_batch_events,
                )
                .await
            {
                Ok(page) => page,
                Err(ReadError::StreamNotFound { .. }) => break,
                Err(e) => return Err(e),
            };
            let done = page.len() < self.read_batch_events;
            for event in &page {
                from = event.version + 1;
                let Ok(record) = serde_json::from_slice::<BookRecord>(&event.data) else {
                    tracing::warn!(stream = %self.stream, version = event.version, "undecodable deadline record skipped");
                    continue;
                };
                match record {
                    BookRecord::Scheduled { deadline } => {
                        pending.insert(deadline.deadline_id, deadline);
                    }
                    BookRecord::Fired { deadline_id } | BookRecord::Cancelled { deadline_id } => {
                        pending.remove(&deadline_id);
                    }
                }
            }
            if done {
                break;
            }
        }
        let mut timers = self.lock();
        *timers = Timers::default();
        for entry in pending.into_values() {
            timers.insert(entry, self.capacity);
        }
        Ok(())
    }

    async fn record(&self, record: BookRecord) -> Result<(), RunError> {
        // Any: the book has one writer per saga at a time, and its records carry
        // deterministic ids, so a retried write is recognised, and a repeated record folds
        // to the same result anyway.
        self.store
            .append(&self.stream, ExpectedVersion::Any, vec![record.to_event()])
            .await?;
        Ok(())
    }

    pub async fn schedule(&self, entry: DeadlineEntry) -> Result<(), RunError> {
        self.record(BookRecord::Scheduled {
            deadline: entry.clone(),
        })
        .await?;
        self.lock().insert(entry, self.capacity);
        Ok(())
    }

    pub async fn fired(&self, deadline_id: Uuid) -> Result<(), RunError> {
        self.record(BookRecord::Fired { deadline_id }).await?;
        self.lock().remove(deadline_id);
        Ok(())
    }

    pub async fn cancelled(&self, deadline_id: Uuid) -> Result<(), RunError> {
        self.record(BookRecord::Cancelled { deadline_id }).await?;
        self.lock().remove(deadline_id);
        Ok(())
    }

    /// When the earliest pending deadline is due.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.lock().timers.first().map(|(due, _)| *due)
    }

    /// The earliest deadline due at `now_ms`, if any.
    pub fn due(&self, now_ms: i64) -> Option<DeadlineEntry> {
        let timers = self.lock();
        let (due, id) = timers.timers.first()?;
        (*due <= now_ms).then(|| timers.entries[id].clone())
    }

    /// Reloads from the stream when deadlines were left out of memory and the timers ran
    /// dry. Like [`Self::load`], only while no instance task runs.
    pub async fn refill_if_needed(&self) -> Result<(), ReadError> {
        let needed = {
            let timers = self.lock();
            timers.overflowed && timers.timers.is_empty()
        };
        if needed {
            self.load().await?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn pending_in_memory(&self) -> usize {
        self.lock().timers.len()
    }
}

impl Timers {
    fn insert(&mut self, entry: DeadlineEntry, capacity: usize) {
        if self.entries.contains_key(&entry.deadline_id) {
            return;
        }
        if self.timers.len() >= capacity {
            self.overflowed = true;
            let latest = *self.timers.last().expect("capacity is at least 1");
            if latest.0 <= entry.due_at_ms {
                return;
            }
            self.timers.remove(&latest);
            self.entries.remove(&latest.1);
        }
        self.timers.insert((entry.due_at_ms, entry.deadline_id));
        self.entries.insert(entry.deadline_id, entry);
    }

    fn remove(&mut self, id: Uuid) {
        if let Some(entry) = self.entries.remove(&id) {
            self.timers.remove(&(entry.due_at_ms, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventum_testkit::MemoryStore;

    fn entry(due: i64) -> DeadlineEntry {
        DeadlineEntry {
            deadline_id: Uuid::now_v7(),
            instance_key: "k".into(),
            name: "t".into(),
            due_at_ms: due,
            payload: serde_json::Value::Null,
            correlation_id: Uuid::nil(),
        }
    }

    #[tokio::test]
    async fn book_survives_reload_and_stays_bounded() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::default());
        let stream = StreamName::system("$saga-deadlines-t").unwrap();
        let book = DeadlineBook::new(store.clone(), stream.clone(), 2, 2);
        let (a, b, c) = (entry(30), entry(10), entry(20));
        book.schedule(a.clone()).await.unwrap();
        book.schedule(b.clone()).await.unwrap();
        book.schedule(c.clone()).await.unwrap();
        // Only the two earliest are in memory.
        assert_eq!(book.pending_in_memory(), 2);
        assert_eq!(book.due(15).unwrap().deadline_id, b.deadline_id);
        assert!(book.due(5).is_none());
        book.fired(b.deadline_id).await.unwrap();
        book.cancelled(c.deadline_id).await.unwrap();
        assert_eq!(book.next_due_ms(), None);
        book.refill_if_needed().await.unwrap();
        assert_eq!(book.due(100).unwrap().deadline_id, a.deadline_id);

        let reopened = DeadlineBook::new(store, stream, 10, 2);
        reopened.load().await.unwrap();
        assert_eq!(reopened.pending_in_memory(), 1);
        assert_eq!(reopened.next_due_ms(), Some(30));
    }
}
