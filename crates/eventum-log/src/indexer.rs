//! The indexer thread: takes durable (already acknowledged) groups from the writer in
//! order, adds them to the index in as few transactions as its backlog allows, then makes
//! them visible to readers and publishes them to live subscribers. The index is synced at
//! most about once a second (it is rebuilt from the log after a crash), so an append pays
//! for one log fsync only, and no index work at all.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use eventum_core::RecordedEvent;
use eventum_core::subscription::LiveBatch;
use tokio::sync::broadcast;

use crate::index::{IndexEntry, IndexTail};
use crate::shared::Shared;

/// How often, at most, the index file is synced while appends flow.
const INDEX_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Most writer groups indexed in one transaction.
const INDEX_BATCH_GROUPS_MAX: usize = 64;

pub(crate) enum IndexJob {
    Group {
        entries: Vec<IndexEntry>,
        tail: IndexTail,
        /// The group's events for live subscribers; empty when there were none.
        live: Vec<RecordedEvent>,
    },
    Shutdown(std::sync::mpsc::Sender<()>),
}

pub(crate) fn run(shared: Arc<Shared>, rx: Receiver<IndexJob>, live: broadcast::Sender<LiveBatch>) {
    let mut last_sync = Instant::now();
    let mut unsynced: Option<IndexTail> = None;
    loop {
        let job = match rx.recv_timeout(INDEX_SYNC_INTERVAL) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if let Some(tail) = unsynced.take() {
                    sync(&shared, tail);
                    last_sync = Instant::now();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Index every group already waiting in one transaction: a commit costs far more
        // than the inserts, so under load the indexer's batches grow with its backlog.
        let mut groups = Vec::new();
        let mut shutdown = None;
        let mut next = Some(job);
        while let Some(job) = next.take() {
            match job {
                IndexJob::Group {
                    entries,
                    tail,
                    live,
                } => groups.push((entries, tail, live)),
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
            let durable = last_sync.elapsed() >= INDEX_SYNC_INTERVAL;
            let entries = groups.iter().flat_map(|g| g.0.iter());
            match shared.index.apply(entries, tail, durable) {
                Ok(()) => {
                    if durable {
                        last_sync = Instant::now();
                        unsynced = None;
                    } else {
                        unsynced = Some(tail);
                    }
                    shared.set_visible(tail.next_position);
                    for (_, _, events) in groups {
                        if !events.is_empty() {
                            let _ = live.send(LiveBatch::new(events));
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
            if let Some(tail) = unsynced.take() {
                sync(&shared, tail);
            }
            let _ = ack.send(());
            break;
        }
    }
}

fn sync(shared: &Shared, tail: IndexTail) {
    if let Err(err) = shared.index.apply([], tail, true) {
        tracing::warn!(error = %err, "index sync failed; it will be rebuilt from the log on open");
    }
}
