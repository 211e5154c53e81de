//! The indexer thread: takes durable (already acknowledged) groups from the writer in
//! order, adds them to the index in as few transactions as its backlog allows, then makes
//! them visible to readers and publishes them to live subscribers. The index is synced at
//! most about once a second (it is rebuilt from the log after a crash), so an append pays
//! for one log fsync only, and no index work at all. Writing the memtable to the index
//! file happens on a flusher thread beside it, from a snapshot, so that groups keep
//! becoming visible during a flush.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use eventum_core::subscription::LiveBatch;
use eventum_core::{NewEvent, RecordedEvent, StorageError, StorageErrorKind};
use tokio::sync::broadcast;

use crate::index::{FlushSnapshot, IndexEntry, IndexTail};
use crate::shared::Shared;
use crate::syncer::GroupIndex;

/// How often, at most, the index file is synced while appends flow.
const INDEX_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Most writer groups indexed in one transaction.
const INDEX_BATCH_GROUPS_MAX: usize = 64;

pub(crate) enum IndexJob {
    /// The groups one sync made durable, in order (one job per sync, not per group: one
    /// hand-over and at most one wake-up of this thread).
    Groups(Vec<GroupIndex>),
    Shutdown(std::sync::mpsc::Sender<()>),
}

pub(crate) fn run(shared: Arc<Shared>, rx: Receiver<IndexJob>, live: broadcast::Sender<LiveBatch>) {
    std::thread::scope(|scope| {
        let mut flusher = Flusher::start(scope, &shared);
        index_groups(&shared, &rx, &live, &mut flusher);
    });
}

/// The live events of one group, built from its index entries and the events written.
fn recorded(
    entries: Vec<IndexEntry>,
    events: Vec<NewEvent>,
    recorded_at_us: i64,
) -> Vec<RecordedEvent> {
    debug_assert_eq!(
        entries.len(),
        events.len(),
        "one index entry per event written"
    );
    entries
        .into_iter()
        .zip(events)
        .map(|(entry, event)| {
            event.into_recorded(
                String::from(&*entry.stream),
                entry.version,
                entry.position,
                recorded_at_us,
            )
        })
        .collect()
}

/// The indexer's loop; `flusher` writes the memtable to the index file beside it.
fn index_groups(
    shared: &Shared,
    rx: &Receiver<IndexJob>,
    live: &broadcast::Sender<LiveBatch>,
    flusher: &mut Flusher,
) {
    let mut last_sync = Instant::now();
    let mut unsynced: Option<IndexTail> = None;
    loop {
        flusher.poll(shared);
        let job = match rx.recv_timeout(INDEX_SYNC_INTERVAL) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if let Some(tail) = unsynced.take() {
                    flusher.wait(shared);
                    sync(shared, tail);
                    last_sync = Instant::now();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Index every group already waiting at once: under load the indexer's batches
        // grow with its backlog.
        let mut groups = Vec::new();
        let mut shutdown = None;
        let mut next = Some(job);
        while let Some(job) = next.take() {
            match job {
                IndexJob::Groups(list) => groups.extend(
                    list.into_iter()
                        .map(|g| (g.entries, g.tail, (g.events, g.recorded_at_us))),
                ),
                IndexJob::Shutdown(ack) => {
                    shutdown = Some(ack);
                    break;
                }
            }
            if groups.len() < INDEX_BATCH_GROUPS_MAX {
                next = rx.try_recv().ok();
            }
        }
        if let Some((_, tail, _)) = groups.last() {
            let tail = *tail;
            let entries = groups.iter().flat_map(|g| g.0.iter());
            match shared.index.add_entries(entries, tail) {
                Ok(full) => {
                    shared.set_visible(tail.next_position);
                    // Counted after the groups became visible: a subscriber that attaches
                    // later reads them from the log (it subscribes before it reads), so
                    // with no subscriber now, no one can miss the batch.
                    if live.receiver_count() > 0 {
                        for (entries, _, (events, at_us)) in groups {
                            if !events.is_empty() {
                                let _ = live.send(LiveBatch::new(recorded(entries, events, at_us)));
                            }
                        }
                    }
                    unsynced = Some(tail);
                    let due = last_sync.elapsed() >= INDEX_SYNC_INTERVAL;
                    if due || full {
                        let started = flusher.flush(shared, due, full);
                        if started && due {
                            last_sync = Instant::now();
                            unsynced = None;
                        }
                    }
                }
                Err(err) => {
                    // The events are durable in the log and will be indexed on reopen;
                    // until then nothing can be made visible, so fail loudly.
                    tracing::error!(error = %err, "indexing failed; refusing further appends and reads until restart");
                    shared.fail_index(err);
                }
            }
        }
        if let Some(ack) = shutdown {
            flusher.wait(shared);
            if let Some(tail) = unsynced.take() {
                sync(shared, tail);
            }
            let _ = ack.send(());
            break;
        }
    }
}

/// The flusher thread's handle: it writes memtable snapshots to the index file, so that
/// the indexer goes on making groups visible meanwhile. A flush holding the indexer took
/// ~40–55 ms once a second under the shop's load, and every read waiting for its own
/// writes to become visible waited that long.
struct Flusher {
    jobs: Option<SyncSender<(FlushSnapshot, bool)>>,
    done: Receiver<Result<(), StorageError>>,
    in_flight: bool,
}

impl Flusher {
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        shared: &'scope Shared,
    ) -> Self {
        // One snapshot at a time: the indexer waits for the previous flush before the
        // memtable may grow past `index_memtable_events_max` again.
        let (jobs, job_rx) = std::sync::mpsc::sync_channel::<(FlushSnapshot, bool)>(1);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("eventum-flusher".into())
            .spawn_scoped(scope, move || {
                for (snapshot, durable) in job_rx {
                    let result = shared.index.flush_snapshot(&snapshot, durable);
                    if done_tx.send(result).is_err() {
                        return;
                    }
                }
            });
        let jobs = match spawned {
            Ok(_) => Some(jobs),
            Err(e) => {
                // Without the thread, flushes run on the indexer (as `sync` does).
                tracing::warn!(error = %e, "no flusher thread; the indexer flushes itself");
                None
            }
        };
        Self {
            jobs,
            done,
            in_flight: false,
        }
    }

    /// Starts flushing the memtable (synced with `durable`); returns whether it started.
    /// While a flush runs, a new one waits for it only when the memtable is `full`.
    fn flush(&mut self, shared: &Shared, durable: bool, full: bool) -> bool {
        self.poll(shared);
        if self.in_flight && !full {
            return false;
        }
        self.wait(shared);
        let snapshot = shared.index.snapshot();
        let Some(jobs) = &self.jobs else {
            let result = shared.index.flush_snapshot(&snapshot, durable);
            self.finished(shared, result);
            return true;
        };
        if jobs.send((snapshot, durable)).is_err() {
            self.finished(shared, Err(flusher_stopped()));
            return false;
        }
        self.in_flight = true;
        true
    }

    /// Takes the result of a finished flush, if any.
    fn poll(&mut self, shared: &Shared) {
        if self.in_flight
            && let Ok(result) = self.done.try_recv()
        {
            self.in_flight = false;
            self.finished(shared, result);
        }
    }

    /// Waits for the flush in flight, if any.
    fn wait(&mut self, shared: &Shared) {
        if self.in_flight {
            self.in_flight = false;
            let result = self.done.recv().unwrap_or_else(|_| Err(flusher_stopped()));
            self.finished(shared, result);
        }
    }

    fn finished(&self, shared: &Shared, result: Result<(), StorageError>) {
        if let Err(err) = result {
            tracing::error!(error = %err, "flushing the index failed; refusing further appends and reads until restart");
            shared.fail_index(err);
        }
    }
}

fn flusher_stopped() -> StorageError {
    StorageError::new(StorageErrorKind::Unavailable, "the index flusher stopped")
}

fn sync(shared: &Shared, tail: IndexTail) {
    if let Err(err) = shared.index.apply([], tail, true) {
        tracing::warn!(error = %err, "index sync failed; it will be rebuilt from the log on open");
    }
}
