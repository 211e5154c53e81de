//! One running group: its state behind a lock, the reader task that fills the read-ahead
//! buffer from a store subscription, the flusher task that sweeps timeouts and writes
//! checkpoints, and the serialised writer of dead letters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventum_core::{EventStore, StorageError, SubscriptionFrom, SubscriptionTarget};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::OpenError;
use crate::registry::GroupDefinition;
use crate::settings::GroupsConfig;
use crate::state::GroupState;
use crate::{checkpoint, dlq};

/// Milliseconds since the Unix epoch: deadlines and retry times.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub(crate) struct Group {
    pub def: GroupDefinition,
    pub store: Arc<dyn EventStore>,
    pub config: Arc<GroupsConfig>,
    state: Mutex<GroupState>,
    /// Woken when something may have become deliverable (long-polling receivers).
    pub available: Notify,
    /// Woken when the read-ahead buffer has room (the reader).
    space: Notify,
    /// Woken when enough acks call for a checkpoint (the flusher).
    checkpoint_due: Notify,
    /// Serialises dead-letter writes, so they land in the order they were decided.
    dlq_writer: tokio::sync::Mutex<()>,
    /// Serialises checkpoint writes and remembers the last one written.
    checkpoint_writer: tokio::sync::Mutex<u64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pub stopped: AtomicBool,
}

impl Group {
    /// Loads the group's checkpoint and dead letters and starts its tasks.
    pub async fn start(
        store: Arc<dyn EventStore>,
        config: Arc<GroupsConfig>,
        def: GroupDefinition,
    ) -> Result<Arc<Group>, OpenError> {
        let stored = checkpoint::load(&*store, &def.name, def.incarnation).await?;
        let start = stored.unwrap_or(def.start_position);
        let parked = dlq::load(&*store, &def.name, def.incarnation).await?;
        // Tokens start at the clock in microseconds so that a token from before a restart
        // is not mistaken for a new one.
        let first_token = now_us().max(1) as u64;
        let state = GroupState::new(def.settings.clone(), start, parked, first_token);
        let group = Arc::new(Group {
            def,
            store,
            config,
            state: Mutex::new(state),
            available: Notify::new(),
            space: Notify::new(),
            checkpoint_due: Notify::new(),
            dlq_writer: tokio::sync::Mutex::new(()),
            checkpoint_writer: tokio::sync::Mutex::new(stored.unwrap_or(u64::MAX)),
            tasks: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        });
        let reader = tokio::spawn(read_loop(Arc::downgrade(&group), start));
        let flusher = tokio::spawn(flush_loop(Arc::downgrade(&group)));
        group
            .tasks
            .lock()
            .expect("tasks lock")
            .extend([reader, flusher]);
        Ok(group)
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().expect("group state lock poisoned")
    }

    /// Signals the flusher when enough acks have accumulated.
    pub fn note_acks(&self, acks_since_checkpoint: u64) {
        if acks_since_checkpoint >= self.config.checkpoint_every_acks {
            self.checkpoint_due.notify_one();
        }
    }

    /// Wakes the reader: the buffer may have room again.
    pub fn wake_reader(&self) {
        self.space.notify_one();
    }

    /// Writes every queued dead-letter record, in order, and applies them. On failure the
    /// records not written stay queued (in order) and are retried by the next flush.
    ///
    /// The work runs in its own task: a caller that goes away (an HTTP client that
    /// disconnects) must not drop records taken off the queue but not yet written.
    pub async fn flush_dlq(self: &Arc<Self>) -> Result<(), StorageError> {
        let group = self.clone();
        tokio::spawn(async move { group.flush_dlq_now().await })
            .await
            .unwrap_or_else(|e| {
                Err(StorageError::new(
                    eventum_core::StorageErrorKind::Io,
                    format!("dead-letter writer task failed: {e}"),
                ))
            })
    }

    async fn flush_dlq_now(&self) -> Result<(), StorageError> {
        let _writer = self.dlq_writer.lock().await;
        loop {
            let mut jobs: Vec<_> = {
                let mut st = self.lock();
                if st.jobs.is_empty() {
                    return Ok(());
                }
                st.jobs.drain(..).collect()
            };
            let records: Vec<_> = jobs.iter().map(|j| j.record()).collect();
            let (ids, failure) =
                dlq::append(&*self.store, &self.def.name, self.def.incarnation, &records).await;
            drop(records);
            // Records written before a failure are applied; the rest go back to the front.
            let rest = jobs.split_off(ids.len());
            let mut st = self.lock();
            st.complete_jobs(jobs, &ids, now_us());
            for job in rest.into_iter().rev() {
                st.jobs.push_front(job);
            }
            drop(st);
            self.available.notify_waiters();
            self.space.notify_one();
            if let Some(e) = failure {
                return Err(e);
            }
        }
    }

    /// Writes the checkpoint if it moved since the last write.
    pub async fn write_checkpoint(&self) -> Result<(), StorageError> {
        let mut last = self.checkpoint_writer.lock().await;
        let position = {
            let mut st = self.lock();
            st.acks_since_checkpoint = 0;
            st.checkpoint()
        };
        if *last == position {
            return Ok(());
        }
        checkpoint::write(&*self.store, &self.def.name, self.def.incarnation, position).await?;
        *last = position;
        Ok(())
    }

    /// Stops the tasks; the caller writes the final checkpoint.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
        self.available.notify_waiters();
    }
}

/// Follows the target from `from` and feeds the read-ahead buffer, waiting while it is
/// full. A failed subscription is resumed after a pause from the last position taken.
async fn read_loop(group: Weak<Group>, mut from: u64) {
    loop {
        let Some((store, target, batch)) = group.upgrade().map(|g| {
            (
                g.store.clone(),
                g.def.settings.target.clone(),
                g.config.read_batch_events.max(1),
            )
        }) else {
            return;
        };
        let subscription = match target.to_subscription() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "group target is invalid; the group reads nothing");
                return;
            }
        };
        let skip_system = matches!(subscription, SubscriptionTarget::All);
        let mut events = store
            .subscribe(subscription, SubscriptionFrom::Position(from))
            .ready_chunks(batch);
        drop(store);
        while let Some(chunk) = events.next().await {
            let mut carry = std::collections::VecDeque::with_capacity(chunk.len());
            let mut failed = None;
            let mut skipped = None;
            for r in chunk {
                match r {
                    Ok(e) if skip_system && e.stream.starts_with('$') => {
                        skipped = Some(e.position);
                    }
                    Ok(e) => carry.push_back(e),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(p) = skipped
                && let Some(g) = group.upgrade()
            {
                g.lock().note_skipped(p);
            }
            while !carry.is_empty() {
                let Some(g) = group.upgrade() else { return };
                let space = g.space.notified();
                tokio::pin!(space);
                space.as_mut().enable();
                let moved = {
                    let mut st = g.lock();
                    let n = st.buffer_room().min(carry.len());
                    st.push_read(carry.drain(..n));
                    from = st.next_read_position();
                    n
                };
                if moved > 0 {
                    g.available.notify_waiters();
                }
                if !carry.is_empty() {
                    // Bounded wait: a missed wake-up costs at most this pause.
                    let _ = tokio::time::timeout(Duration::from_millis(100), space).await;
                }
            }
            if let Some(e) = failed {
                tracing::warn!(group = ?group.upgrade().map(|g| g.def.name.clone()), error = %e, "group subscription failed; resuming");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(g) = group.upgrade() {
            from = g.lock().next_read_position();
        }
    }
}

/// Every `checkpoint_interval_ms` (or when enough acks are in): fails expired deliveries,
/// writes pending dead letters and the checkpoint.
async fn flush_loop(group: Weak<Group>) {
    loop {
        {
            let Some(g) = group.upgrade() else { return };
            let interval = Duration::from_millis(g.config.checkpoint_interval_ms.max(1));
            // `notify_one` leaves a permit when nobody waits, so no request is lost.
            let _ = tokio::time::timeout(interval, g.checkpoint_due.notified()).await;
        }
        let Some(g) = group.upgrade() else { return };
        if g.stopped.load(Ordering::SeqCst) {
            return;
        }
        let woke = {
            let mut st = g.lock();
            let before = st.counts();
            st.sweep(now_ms());
            st.counts() != before || !st.jobs.is_empty()
        };
        if woke {
            g.available.notify_waiters();
        }
        if let Err(e) = g.flush_dlq().await {
            tracing::warn!(group = %g.def.name, error = %e, "writing dead letters failed; will retry");
        }
        if let Err(e) = g.write_checkpoint().await {
            tracing::warn!(group = %g.def.name, error = %e, "writing the checkpoint failed; will retry");
        }
    }
}
