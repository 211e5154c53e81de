//! One group's transaction, run as a task of its own: lock the group's stream rows and
//! probe for retries (one round trip), decide every request, then write — taking
//! positions from `log_head` when no other group is running, or at the positions the
//! running group leaves free, taken once it has committed — and commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use deadpool_postgres::{ClientWrapper, Object};
use eventum_core::{
    AppendError, AppendResult, ExpectedVersion, NewEvent, StorageError, StreamName,
};
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::append::{Locked, apply_system_events, find_retry};
use crate::error::storage;
use crate::group::{Request, Stage};
use crate::group_sql::{self, Statements, WriteRows};
use crate::store::{Inner, Phases};

/// Longest a group waits for the running group: to learn where its positions end (then
/// it takes positions from `log_head` itself), and, having inserted at predicted
/// positions, to hold the position lock (then it asks for the lock itself).
const PREDECESSOR_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Opens a group's transaction. Nested loops over the primary key only: the statements
/// join a handful of names against `streams`, and their connection-cached plans may have
/// been made while the table was small (a generic plan then keeps hashing a sequential
/// scan of the whole table for every group until the next ANALYZE, a cost that grows with
/// the number of streams, as the multi-process shop measured). With hash and merge joins
/// off, even an empty table's plan is a nested loop with an index lookup per name.
const BEGIN_GROUP: &str =
    "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

/// A group to commit.
pub(crate) struct GroupJob {
    pub group: Vec<Request>,
    /// The stage of the group started just before this one, while it runs.
    pub predecessor: Option<watch::Receiver<Stage>>,
    /// This group's stage, for the group started after it.
    pub stage: watch::Sender<Stage>,
    /// Whether this group may insert at predicted positions.
    pub may_predict: bool,
}

/// What became of a group, for the committer.
pub(crate) struct Outcome {
    /// Requests for a later group: a second request on a stream already written in this
    /// group, one repeating event ids of an earlier request (a concurrent retry, which
    /// must see that request committed to be recognised as a retry), or every accepted
    /// request of a group whose predicted positions were taken by someone else.
    pub deferred: Vec<Request>,
    pub mispredicted: bool,
}

/// Why a group failed.
enum Failure {
    /// A storage error: its requests get it.
    Storage(StorageError, Vec<Request>),
    /// Its predicted positions were taken: its requests go into a later group.
    Mispredicted(Vec<Request>),
}

/// Commits one group and answers its requests.
pub(crate) async fn commit_group(inner: Arc<Inner>, job: GroupJob) -> Outcome {
    let GroupJob {
        group,
        predecessor,
        stage,
        may_predict,
    } = job;
    let done = |answered: usize| {
        stage.send_replace(Stage::Done {
            answered,
            queued: inner.queued.load(Ordering::Acquire),
        });
    };
    let mut phases = Phases::start();
    let committed = try_commit_group(&inner, group, predecessor, &stage, may_predict, &mut phases);
    match committed.await {
        Ok((accepted, results, deferred, predicted)) => {
            if let Some(head) = results.iter().map(|r| r.position).max() {
                phases.committed = Some(Instant::now());
                inner.raise_next_position(head + 1);
                inner.note_group(accepted.len(), predicted, &phases);
                inner.wake.notify_one();
            }
            done(accepted.len());
            for (r, result) in accepted.into_iter().zip(results) {
                let _ = r.reply.send(Ok(result));
            }
            Outcome {
                deferred,
                mispredicted: false,
            }
        }
        Err(Failure::Mispredicted(requests)) => {
            inner.groups_rewritten.fetch_add(1, Ordering::Relaxed);
            done(0);
            Outcome {
                deferred: requests,
                mispredicted: true,
            }
        }
        Err(Failure::Storage(e, requests)) => {
            done(requests.len());
            for r in requests {
                let _ = r.reply.send(Err(AppendError::Storage(e.clone())));
            }
            Outcome {
                deferred: Vec::new(),
                mispredicted: false,
            }
        }
    }
}

/// Waits until `predecessor` knows where its positions end; `None` when it finished
/// first (it holds nothing any more: take positions from `log_head`).
async fn positions_after(predecessor: &mut watch::Receiver<Stage>) -> Option<i64> {
    loop {
        match *predecessor.borrow_and_update() {
            Stage::Positions { next } | Stage::HeadTaken { next } => return Some(next),
            Stage::Done { .. } => return None,
            Stage::Deciding => {}
        }
        if predecessor.changed().await.is_err() {
            return None;
        }
    }
}

/// Waits until `predecessor` holds the position lock or has finished, so that this
/// group's `take_positions` queues behind it rather than overtaking it.
async fn head_taken(predecessor: &mut watch::Receiver<Stage>) {
    loop {
        if matches!(
            *predecessor.borrow_and_update(),
            Stage::HeadTaken { .. } | Stage::Done { .. }
        ) {
            return;
        }
        if predecessor.changed().await.is_err() {
            return;
        }
    }
}

/// Whether a write failed because the predicted positions were not free, so that the
/// group is simply written again: `take_positions` found them taken, the insert met
/// another transaction's rows there, or PostgreSQL broke a deadlock between a group
/// inserting at predicted positions and another process's appender waiting for them.
fn mispredicted(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        c.code() == "EV001"
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || (*c == SqlState::UNIQUE_VIOLATION
                && e.as_db_error()
                    .and_then(|d| d.constraint())
                    .is_some_and(|name| name == "events_pkey"))
    })
}

/// The sort key that every transaction locks stream rows in: a stream's row before its
/// metadata stream's row (as `delete_stream` does), so no two transactions deadlock.
pub(crate) fn lock_key(stream: &StreamName) -> (String, bool) {
    match stream.described_stream() {
        Some(target) => (target.into_string(), true),
        None => (stream.as_str().to_owned(), false),
    }
}

/// The requests of a failed group, to be answered with its error.
fn all_of(accepted: Vec<(Request, i64)>, more: Vec<Request>) -> Vec<Request> {
    accepted.into_iter().map(|(r, _)| r).chain(more).collect()
}

/// The names of every stream row the group locks, in the global lock order. A metadata
/// stream's described stream is locked too.
fn lock_names(group: &[Request]) -> Vec<String> {
    let mut keys: Vec<(String, bool)> = Vec::new();
    for r in group {
        keys.push(lock_key(&r.stream));
        if let Some(target) = r.stream.described_stream() {
            keys.push((target.into_string(), false));
        }
    }
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(base, meta)| if meta { format!("$${base}") } else { base })
        .collect()
}

/// The requests a group wrote, in order, with their results, the deferred ones, and
/// whether it wrote at predicted positions.
type Written = (Vec<Request>, Vec<AppendResult>, Vec<Request>, bool);

/// Writes one group (see [`Outcome`] for the deferred requests).
async fn try_commit_group(
    inner: &Inner,
    mut group: Vec<Request>,
    mut predecessor: Option<watch::Receiver<Stage>>,
    stage: &watch::Sender<Stage>,
    may_predict: bool,
    phases: &mut Phases,
) -> Result<Written, Failure> {
    let client = match inner.client().await {
        Ok(c) => c,
        Err(e) => return Err(Failure::Storage(e, group)),
    };
    let statements = match group_sql::statements(&client).await {
        Ok(s) => s,
        Err(e) => return Err(Failure::Storage(e, group)),
    };
    let names = lock_names(&group);
    // Where each `any`/`exists` request's first event id already is in its stream (the
    // idempotent-retry probe).
    let probing = |r: &&Request| {
        matches!(
            r.expected,
            ExpectedVersion::Any | ExpectedVersion::StreamExists
        )
    };
    let probe_streams: Vec<&str> = group
        .iter()
        .filter(probing)
        .map(|r| r.stream.as_str())
        .collect();
    let probe_ids: Vec<Uuid> = group
        .iter()
        .filter(probing)
        .map(|r| r.events[0].id())
        .collect();
    // One round trip: BEGIN, create missing rows, lock the rows, probe. The requests go out
    // in this order and run in it, so the probe sees every commit made by whoever held the
    // rows before.
    let lock_params: [&(dyn ToSql + Sync); 1] = [&names];
    let (begun, created, locked, found) = tokio::join!(
        biased;
        client.batch_execute(BEGIN_GROUP),
        client.execute(&statements.create, &lock_params),
        client.query(&statements.lock, &lock_params),
        async {
            if probe_ids.is_empty() {
                Ok(Vec::new())
            } else {
                client
                    .query(&statements.probe, &[&probe_streams, &probe_ids])
                    .await
            }
        },
    );
    // From here on a failure closes the connection, which rolls the transaction back.
    let opened = begun
        .and(created.map(|_| ()))
        .and(locked)
        .and_then(|l| found.map(|f| (l, f)));
    let (locked, found) = match opened {
        Ok(r) => r,
        Err(e) => {
            drop(Object::take(client));
            return Err(Failure::Storage(storage(e), group));
        }
    };
    phases.opened = Some(Instant::now());
    let mut streams = group_sql::locked(&locked);
    let mut found = group_sql::probed(&found).into_iter();
    let probed: Vec<Option<i64>> = group
        .iter()
        .map(|r| match r.expected {
            ExpectedVersion::Any | ExpectedVersion::StreamExists => found.next().flatten(),
            _ => None,
        })
        .collect();

    // Decide each request in order against the running view of its stream.
    let mut accepted: Vec<(Request, i64)> = Vec::new();
    let mut deferred = Vec::new();
    let mut ids_in_group: HashSet<Uuid> = HashSet::new();
    // One request per stream (a stream and its metadata stream count as one) per group:
    // the write below takes positions in request order, and requests on different streams
    // may then take positions in any order without changing any stream's version order.
    let mut bases_in_group: HashSet<String> = HashSet::new();
    for (r, probed_version) in group.drain(..).zip(probed) {
        let name = r.stream.as_str().to_owned();
        let base = lock_key(&r.stream).0;
        if bases_in_group.contains(&base) || r.events.iter().any(|e| ids_in_group.contains(&e.id()))
        {
            deferred.push(r);
            continue;
        }
        let state = streams
            .get_mut(&name)
            .expect("every stream of the group is locked");
        if state.deleted {
            let _ = r
                .reply
                .send(Err(AppendError::StreamDeleted { stream: name }));
            continue;
        }
        let view = Locked {
            last_version: state.last_version,
            deleted: false,
            probed_version,
        };
        let retry = if could_be_retry(r.expected, &view) {
            // Rare: the stream already holds versions this request could be a retry of.
            match find_retry(&client, &name, r.expected, &view, &r.events).await {
                Ok(found) => found,
                Err(e) => {
                    drop(Object::take(client));
                    let mut rest = vec![r];
                    rest.extend(deferred);
                    return Err(Failure::Storage(e, all_of(accepted, rest)));
                }
            }
        } else {
            None
        };
        if let Some(result) = retry {
            let _ = r.reply.send(Ok(result));
            continue;
        }
        if let Err(e) = AppendError::check_expected(&name, r.expected, state.actual()) {
            let _ = r.reply.send(Err(e));
            continue;
        }
        let first_version = state.last_version.map_or(0, |v| v + 1);
        state.last_version = Some(first_version + r.events.len() as i64 - 1);
        ids_in_group.extend(r.events.iter().map(NewEvent::id));
        bases_in_group.insert(base);
        accepted.push((r, first_version));
    }
    if accepted.is_empty() {
        // Only refusals: nothing to write (the stream-row upserts roll back).
        if let Err(e) = client.batch_execute("ROLLBACK").await {
            tracing::warn!(error = %e, "rolling back a group of refusals failed");
            drop(Object::take(client));
        }
        return Ok((Vec::new(), Vec::new(), deferred, false));
    }

    // The second round trip: one statement writes the whole group, then COMMIT, sent
    // together (a failed write aborts the transaction, so the COMMIT then rolls back).
    let channel = inner.config.channel();
    let appends: Vec<(&str, i64, &[NewEvent])> = accepted
        .iter()
        .map(|(r, first)| (r.stream.as_str(), *first, &r.events[..]))
        .collect();
    let rows = WriteRows::new(&appends, &channel);
    let system = accepted.iter().any(|(r, _)| r.stream.is_system());
    // Bounded, like the wait in `write_predicted`: this group holds its stream rows, and
    // another process's transaction waiting for one of them may hold a row the running
    // group waits for. After the bound the group takes positions from `log_head` itself,
    // which never waits on the running group.
    let predicted = match predecessor.as_mut() {
        Some(p) if may_predict && !system => {
            tokio::time::timeout(PREDECESSOR_WAIT, positions_after(p))
                .await
                .unwrap_or(None)
        }
        _ => None,
    };
    let written = match (predicted, predecessor.as_mut()) {
        (Some(first), Some(p)) => {
            write_predicted(&client, &statements, &rows, first, p, stage, phases).await
        }
        _ => write_classic(&client, &statements, &rows, &accepted, stage, phases).await,
    };
    let first = match written {
        Ok(first) => first,
        Err((e, missed)) => {
            drop(Object::take(client));
            drop(rows);
            drop(appends);
            let requests = all_of(accepted, deferred);
            return Err(if missed {
                Failure::Mispredicted(requests)
            } else {
                Failure::Storage(e, requests)
            });
        }
    };
    let results = rows.results(first);
    drop(rows);
    drop(appends);
    Ok((
        accepted.into_iter().map(|(r, _)| r).collect(),
        results,
        deferred,
        predicted.is_some(),
    ))
}

/// A failed write: the error, and whether it failed because the predicted positions
/// were not free.
type WriteFailure = (StorageError, bool);

fn write_failure(e: tokio_postgres::Error) -> WriteFailure {
    let missed = mispredicted(&e);
    (storage(e), missed)
}

/// Takes positions from `log_head` and writes the group, then commits: one round trip
/// (system-stream effects, rare, run between the write and the COMMIT). Returns the
/// first position.
async fn write_classic(
    client: &ClientWrapper,
    statements: &Statements,
    rows: &WriteRows<'_>,
    accepted: &[(Request, i64)],
    stage: &watch::Sender<Stage>,
    phases: &mut Phases,
) -> Result<i64, WriteFailure> {
    let params = rows.params();
    let n = rows.total();
    let written = &mut phases.written;
    let write = async {
        let row = client.query_one(&statements.write, &params).await?;
        *written = Some(Instant::now());
        let first: i64 = row.get(0);
        stage.send_replace(Stage::HeadTaken { next: first + n });
        Ok::<i64, tokio_postgres::Error>(first)
    };
    if accepted.iter().any(|(r, _)| r.stream.is_system()) {
        let first = write.await.map_err(write_failure)?;
        for (r, _) in accepted.iter().filter(|(r, _)| r.stream.is_system()) {
            apply_system_events(&**client, r.stream.as_str(), &r.events)
                .await
                .map_err(|e| (e, false))?;
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(write_failure)?;
        return Ok(first);
    }
    let (first, committed) = tokio::join!(biased; write, client.batch_execute("COMMIT"));
    let first = first.map_err(write_failure)?;
    committed.map_err(write_failure)?;
    Ok(first)
}

/// Inserts the group at positions from `first` (where the running group's end), then,
/// once that group holds the position lock, takes exactly those positions and commits.
async fn write_predicted(
    client: &ClientWrapper,
    statements: &Statements,
    rows: &WriteRows<'_>,
    first: i64,
    predecessor: &mut watch::Receiver<Stage>,
    stage: &watch::Sender<Stage>,
    phases: &mut Phases,
) -> Result<i64, WriteFailure> {
    let n = rows.total();
    stage.send_replace(Stage::Positions { next: first + n });
    client
        .query_one(&statements.insert, &rows.insert_params(&first))
        .await
        .map_err(write_failure)?;
    // Bounded: if the running group is stuck behind another process that waits for the
    // rows just inserted, `take_positions` then waits inside PostgreSQL, whose deadlock
    // detector sees the whole cycle and breaks it.
    let _ = tokio::time::timeout(PREDECESSOR_WAIT, head_taken(predecessor)).await;
    let channel = rows.channel();
    let written = &mut phases.written;
    let take = async {
        client
            .execute(&statements.take, &[&first, &n, &channel])
            .await?;
        *written = Some(Instant::now());
        stage.send_replace(Stage::HeadTaken { next: first + n });
        Ok::<(), tokio_postgres::Error>(())
    };
    let (taken, committed) = tokio::join!(biased; take, client.batch_execute("COMMIT"));
    taken.map_err(write_failure)?;
    committed.map_err(write_failure)?;
    Ok(first)
}

/// Whether the stream already holds versions a request under `expected` could be a
/// retry of (otherwise the retry lookup is skipped).
fn could_be_retry(expected: ExpectedVersion, state: &Locked) -> bool {
    let Some(last) = state.last_version else {
        return false;
    };
    match expected {
        ExpectedVersion::Exact(v) => v < last as u64,
        ExpectedVersion::NoStream => true,
        ExpectedVersion::Any | ExpectedVersion::StreamExists => state.probed_version.is_some(),
    }
}
