//! Application-level group commit: concurrent appends queue up (bounded) and a committer
//! task writes them in groups, one transaction each. Positions stay gap-free and
//! commit-ordered (a group takes `log_head` like a single append would), but one WAL
//! flush and one hold of the position lock serve a whole group instead of one append,
//! which is what lets many writers go faster than one commit per fsync.
//!
//! Up to `committers_max` groups run at once, each on its own connection, when there is
//! more work queued than one group carries (`group_events_max`, `group_appends_max`).
//! The position lock still serialises their commits, but a group that starts while
//! another is committing does everything else meanwhile: it locks its streams, decides, and inserts
//! its events at the positions the running group will leave free (known as soon as that
//! group has decided), then takes exactly those positions once the running group has
//! committed (`take_positions`, which fails if anyone else took them first; the group is
//! then written again). So the insert work of one group overlaps the commit (and the WAL
//! flush) of the previous one, while readers still see positions only in commit order.
//! Groups running at once never share a stream, so they never wait for each other's rows.
//!
//! Each request keeps its own semantics: its stream row is locked, then deletion, retry
//! and expected version are checked in request order against the group's running view
//! of each stream; a refused request writes nothing and is answered at once; the rest
//! are answered after the commit (or all get the commit's error).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use eventum_core::{
    AppendError, AppendResult, ExpectedVersion, NewEvent, StorageError, StorageErrorKind,
    StreamName,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::group_commit::{GroupJob, Outcome, commit_group, lock_key};
use crate::store::Inner;

/// One queued append.
pub(crate) struct Request {
    pub stream: StreamName,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, AppendError>>,
}

/// How far a running group has got, for the group started after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Locking and deciding.
    Deciding,
    /// It will take the positions below `next` (and none after it).
    Positions { next: i64 },
    /// It holds the position lock (its commit is under way).
    HeadTaken { next: i64 },
    /// Committed, failed or written nothing. `answered` requests were answered after
    /// `queued` were counted waiting in the queue (what the next group lingers for).
    Done { answered: usize, queued: usize },
}

fn shut_down() -> AppendError {
    AppendError::Storage(StorageError::new(
        StorageErrorKind::Unavailable,
        "the PostgreSQL store is shut down",
    ))
}

/// Queues an append and waits for its outcome. Waits for queue space when
/// `append_queue_max` requests are already waiting (backpressure, not unbounded memory).
pub(crate) async fn append(
    inner: &Inner,
    queue: &mpsc::Sender<Request>,
    stream: &StreamName,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<AppendResult, AppendError> {
    let (reply, outcome) = oneshot::channel();
    let request = Request {
        stream: stream.clone(),
        expected,
        events,
        reply,
    };
    inner.queued.fetch_add(1, Ordering::AcqRel);
    if queue.send(request).await.is_err() {
        inner.queued.fetch_sub(1, Ordering::AcqRel);
        return Err(shut_down());
    }
    outcome.await.unwrap_or_else(|_| Err(shut_down()))
}

/// How long prediction stays off after a group's predicted positions were taken by
/// someone else (another process appending to the same schema): groups then take
/// positions from `log_head` first, which never conflicts.
const PREDICTION_PAUSE: Duration = Duration::from_secs(5);

/// The committer's scheduling state.
struct Scheduler {
    inner: Arc<Inner>,
    queue: mpsc::Receiver<Request>,
    running: JoinSet<Outcome>,
    /// Requests waiting for a later group (deferred, written again, or held back because
    /// a running group writes their stream), oldest first.
    pending: Vec<Request>,
    /// The stage of the group started last.
    last: Option<watch::Receiver<Stage>>,
    /// The base streams of each running group, by task id.
    busy: Vec<(tokio::task::Id, HashSet<String>)>,
    predict_from: Instant,
    /// Whether the group started last was full (requests were left for the next one).
    last_full: bool,
}

/// Takes groups off the queue until the store shuts down.
///
/// Lingering: when no group is running, a group waits (at most `group_linger_us_max`)
/// until as many appends are queued as the last group answered plus those that arrived
/// while it committed. Without it, writers that wait for their append before the next
/// one split into cohorts that take turns — the appends that arrive during a commit form
/// the next group while the ones just answered queue behind it — and every writer waits
/// for two commits; with it, they share one commit and one WAL flush again.
pub(crate) async fn run_committer(inner: Arc<Inner>, queue: mpsc::Receiver<Request>) {
    let mut s = Scheduler {
        inner,
        queue,
        running: JoinSet::new(),
        pending: Vec::new(),
        last: None,
        busy: Vec::new(),
        predict_from: Instant::now(),
        last_full: false,
    };
    let slots = s.inner.config.committers_max.max(1);
    loop {
        while let Some(done) = s.running.try_join_next_with_id() {
            s.absorb(done);
        }
        // A second group starts only while the running one was full: then there is more
        // work than one transaction carries, and the second group's inserts overlap the
        // first one's commit. Otherwise (writers waiting for their appends, all in the
        // running group) it would only split them into groups that flush in turn.
        let overlap = s.last_full && s.running.len() < slots;
        if !s.running.is_empty() && !overlap {
            let done = s.running.join_next_with_id().await.expect("running");
            s.absorb(done);
            continue;
        }
        if s.pending.is_empty() {
            tokio::select! {
                r = s.queue.recv() => match r {
                    Some(r) => {
                        s.inner.queued.fetch_sub(1, Ordering::AcqRel);
                        s.pending.push(r);
                    }
                    None => {
                        while s.running.join_next().await.is_some() {}
                        return;
                    }
                },
                Some(done) = s.running.join_next_with_id(), if !s.running.is_empty() => {
                    s.absorb(done);
                    continue;
                }
            }
        }
        s.start_group().await;
    }
}

impl Scheduler {
    fn absorb(&mut self, done: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) {
        match done {
            Ok((id, outcome)) => {
                self.busy.retain(|(task, _)| *task != id);
                if outcome.mispredicted {
                    self.predict_from = Instant::now() + PREDICTION_PAUSE;
                }
                // Deferred requests go before anything queued after them.
                let mut deferred = outcome.deferred;
                deferred.append(&mut self.pending);
                self.pending = deferred;
            }
            Err(e) => {
                // A panicking group lost its requests' reply channels (callers see the
                // store as shut down); the committer itself carries on.
                tracing::error!(error = %e, "postgres group commit task failed");
                let id = e.id();
                self.busy.retain(|(task, _)| *task != id);
            }
        }
    }

    /// Moves queued requests into `pending`.
    fn take_queued(&mut self, up_to: usize) {
        while self.pending.len() < up_to {
            match self.queue.try_recv() {
                Ok(r) => {
                    self.inner.queued.fetch_sub(1, Ordering::AcqRel);
                    self.pending.push(r);
                }
                Err(_) => break,
            }
        }
    }

    /// Forms a group from `pending` and the queue and starts it.
    async fn start_group(&mut self) {
        let config = &self.inner.config;
        let appends_max = config.group_appends_max.max(1);
        let events_max = config.group_events_max.max(1);
        let linger = Duration::from_micros(config.group_linger_us_max);
        let previous = self.last.as_ref().map(|l| *l.borrow());
        let idle = !matches!(
            previous,
            Some(Stage::Deciding | Stage::Positions { .. } | Stage::HeadTaken { .. })
        );
        let busy: HashSet<String> = self
            .busy
            .iter()
            .flat_map(|(_, streams)| streams.iter().cloned())
            .collect();
        let mut group: Vec<Request> = Vec::new();
        let mut events = 0usize;
        let mut streams: HashSet<String> = HashSet::new();
        let mut full = false;
        // Fills the group from `pending` in order; requests on a running group's stream
        // stay pending.
        let mut fill = |pending: &mut Vec<Request>, group: &mut Vec<Request>| {
            let mut kept = Vec::new();
            for r in pending.drain(..) {
                let n = r.events.len();
                let base = lock_key(&r.stream).0;
                let fits =
                    group.is_empty() || (group.len() < appends_max && events + n <= events_max);
                if full || !fits || busy.contains(&base) {
                    full |= !fits;
                    kept.push(r);
                    continue;
                }
                events += n;
                streams.insert(base);
                group.push(r);
            }
            *pending = kept;
            full
        };
        self.take_queued(appends_max);
        let mut is_full = fill(&mut self.pending, &mut group);
        let want = match previous {
            Some(Stage::Done { answered, queued }) if idle => (answered + queued).min(appends_max),
            _ => 0,
        };
        if idle && !is_full && group.len() < want && !linger.is_zero() {
            let deadline = tokio::time::Instant::now() + linger;
            while !is_full && group.len() < want {
                match tokio::time::timeout_at(deadline, self.queue.recv()).await {
                    Ok(Some(r)) => {
                        self.inner.queued.fetch_sub(1, Ordering::AcqRel);
                        self.pending.push(r);
                        self.take_queued(appends_max);
                        is_full = fill(&mut self.pending, &mut group);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        if group.is_empty() {
            // Everything pending waits for a running group's streams.
            if let Some(done) = self.running.join_next_with_id().await {
                self.absorb(done);
            }
            return;
        }
        let (stage, stage_rx) = watch::channel(Stage::Deciding);
        let job = GroupJob {
            group,
            predecessor: if idle { None } else { self.last.clone() },
            stage,
            may_predict: Instant::now() >= self.predict_from,
        };
        self.last_full = is_full;
        let handle = self.running.spawn(commit_group(self.inner.clone(), job));
        self.busy.push((handle.id(), streams));
        self.last = Some(stage_rx);
    }
}
