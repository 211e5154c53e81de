//! The syncer thread: makes written groups durable and acknowledges them. The writer hands
//! over each group once its bytes are written (`pwrite`, no sync); the syncer covers every
//! group waiting with one `fdatasync` per segment, then acknowledges them in order and
//! passes them to the indexer, all of one sync's groups as one job.
//!
//! Why a thread of its own: with the writer syncing each group itself, encoding the next
//! group waited for the disk and the disk waited for the encoding, and the groups of many
//! concurrent single-event writers split into two halves alternating on the disk. Now the
//! writer keeps writing while a sync runs, and the next sync covers all of it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use eventum_core::{AppendError, AppendResult, NewEvent, StorageError, StorageErrorKind};

use crate::index::{IndexEntry, IndexTail};
use crate::indexer::IndexJob;
use crate::segment::Segment;
use crate::shared::Shared;
use crate::writer::Reply;

/// What a written group contributes to the index and to live subscribers.
pub(crate) struct GroupIndex {
    pub entries: Vec<IndexEntry>,
    pub tail: IndexTail,
    /// The group's events, one per entry, in order.
    pub events: Vec<NewEvent>,
    pub recorded_at_us: i64,
}

/// One group as the writer hands it over.
pub(crate) struct WrittenGroup {
    /// The segment the group's bytes went to (a rollover can leave earlier groups waiting
    /// in the previous one).
    pub segment: Arc<Segment>,
    /// Every request of the group, in order, with the result to send once the group and
    /// everything written before it is durable. Retries and refusals wait too: a retry
    /// may repeat an append that is written but not yet synced, and a refusal may have
    /// been decided against one.
    pub replies: Vec<(Reply, Result<AppendResult, AppendError>)>,
    /// `None` when the group wrote nothing (only retries and refusals).
    pub index: Option<GroupIndex>,
}

pub(crate) enum SyncJob {
    Group(WrittenGroup),
    Shutdown(std::sync::mpsc::Sender<()>),
}

pub(crate) fn run(shared: Arc<Shared>, rx: Receiver<SyncJob>, indexer: SyncSender<IndexJob>) {
    let groups_max = shared.config.sync_groups_max.max(1);
    let linger_max = Duration::from_micros(shared.config.sync_linger_us_max);
    let mut pending = Vec::new();
    // Requests answered by the last sync: as many callers may be about to come back.
    let mut answered = 0usize;
    while let Ok(job) = rx.recv() {
        let mut shutdown = None;
        let mut waiting = 0usize;
        let started = Instant::now();
        let mut next = Some(job);
        while let Some(job) = next.take() {
            match job {
                SyncJob::Group(group) => {
                    waiting += group.replies.len();
                    pending.push(group);
                }
                SyncJob::Shutdown(ack) => {
                    shutdown = Some(ack);
                    break;
                }
            }
            if pending.len() >= groups_max {
                break;
            }
            next = rx.try_recv().ok();
            // Linger while fewer requests wait than the last sync answered: the callers
            // it just answered are sending their next appends, and one sync for all of
            // them beats two syncs each covering half (many closed-loop writers would
            // otherwise settle into two halves taking turns at the disk).
            if next.is_none() && waiting < answered {
                let left = linger_max.saturating_sub(started.elapsed());
                if !left.is_zero() {
                    next = rx.recv_timeout(left).ok();
                }
            }
        }
        answered = waiting;
        complete(&shared, &indexer, &mut pending);
        if let Some(ack) = shutdown {
            let (tx, rx) = std::sync::mpsc::channel();
            if indexer.send(IndexJob::Shutdown(tx)).is_ok() {
                let _ = rx.recv();
            }
            let _ = ack.send(());
            return;
        }
    }
}

/// Syncs the segments the pending groups were written to, then acknowledges the groups
/// and queues them for indexing; on a failed sync, fails them all.
fn complete(shared: &Shared, indexer: &SyncSender<IndexJob>, pending: &mut Vec<WrittenGroup>) {
    if let Err(err) = sync_segments(shared, pending) {
        for group in pending.drain(..) {
            for (reply, _) in group.replies {
                let _ = reply.send(Err(err.clone().into()));
            }
        }
        return;
    }
    if let Some(tail) = pending.iter().rev().find_map(|g| g.index.as_ref()) {
        // Durable: acknowledge now. Readers wait for the index to reach `durable_next`
        // before they read, so read-your-writes still holds.
        shared.durable_next.store(
            tail.tail.next_position,
            std::sync::atomic::Ordering::Release,
        );
    }
    // Every answer first, then the indexing: the callers start on their next appends
    // while the groups are handed over.
    let mut durable = Vec::with_capacity(pending.len());
    for group in pending.drain(..) {
        for (reply, result) in group.replies {
            let _ = reply.send(result);
        }
        durable.extend(group.index);
    }
    let Some(last) = durable.last() else {
        return;
    };
    wait_for_index_room(shared, last.tail.next_position);
    if indexer.send(IndexJob::Groups(durable)).is_err() {
        let err = StorageError::new(StorageErrorKind::Unavailable, "the indexer stopped");
        shared.fail(err);
    }
}

/// One `fdatasync` per segment the pending groups wrote to, oldest first. A failure, now or
/// earlier, fails every pending group: after a failed fsync the page cache may hold bytes
/// the disk lost, so no later success could be trusted, and the store refuses appends
/// until it is reopened.
fn sync_segments(shared: &Shared, pending: &[WrittenGroup]) -> Result<(), StorageError> {
    if let Some(err) = shared.failed() {
        return Err(err);
    }
    let mut synced: Option<&Arc<Segment>> = None;
    for group in pending.iter().filter(|g| g.index.is_some()) {
        if synced.is_some_and(|s| Arc::ptr_eq(s, &group.segment)) {
            continue;
        }
        if let Err(e) = group.segment.file.sync_data() {
            let err = StorageError::new(
                StorageErrorKind::WriterFailed,
                format!(
                    "fdatasync of {} failed ({e}); the store refuses appends until it is restarted",
                    group.segment.path.display()
                ),
            );
            tracing::error!(error = %err, "durable write failed");
            shared.fail(err.clone());
            return Err(err);
        }
        synced = Some(&group.segment);
    }
    Ok(())
}

/// Bounds the events that are durable but not yet indexed: they are held in memory by the
/// indexer queue and must stay within the dedupe window.
fn wait_for_index_room(shared: &Shared, durable_next: u64) {
    let config = &shared.config;
    let max = config
        .index_pending_events_max
        .min(config.dedupe_window_events) as u64;
    while durable_next.saturating_sub(shared.visible_next()) > max {
        if shared.failed().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}
