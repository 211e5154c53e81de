//! Application-level group commit: concurrent appends queue up (bounded) and one
//! committer task writes each group in one transaction. Positions stay gap-free and
//! commit-ordered (the group takes `log_head` like a single append would), but one WAL
//! flush and one hold of the position lock now serve a whole group instead of one
//! append, which is what lets many writers go faster than one commit per fsync.
//!
//! Each request keeps its own semantics: its stream row is locked, then deletion, retry
//! and expected version are checked in request order against the group's running view
//! of each stream; a refused request writes nothing and is answered at once; the rest
//! are answered after the commit (or all get the commit's error).

use std::collections::HashSet;

use deadpool_postgres::Object;
use eventum_core::{
    AppendError, AppendResult, ExpectedVersion, NewEvent, StorageError, StorageErrorKind,
    StreamName,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::append::{Locked, apply_system_events, find_retry};
use crate::error::storage;
use crate::group_sql;
use crate::store::Inner;

/// One queued append.
pub(crate) struct Request {
    pub stream: StreamName,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, AppendError>>,
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
    queue.send(request).await.map_err(|_| shut_down())?;
    outcome.await.unwrap_or_else(|_| Err(shut_down()))
}

/// Takes groups off the queue until the store shuts down.
///
/// Lingering: a group waits (at most `group_linger_us_max`) until as many appends are
/// queued as the last group answered plus those that arrived while it committed. Without
/// it, writers that wait for their append before the next one split into two cohorts that
/// take turns — the appends that arrive during a commit form the next group while the
/// ones just answered queue behind it — and every writer waits for two commits; with it,
/// they share one commit and one WAL flush again.
pub(crate) async fn run_committer(
    inner: std::sync::Arc<Inner>,
    mut queue: mpsc::Receiver<Request>,
) {
    let group_max = inner.config.group_appends_max.max(1);
    let linger = std::time::Duration::from_micros(inner.config.group_linger_us_max);
    let mut deferred: Vec<Request> = Vec::new();
    let mut expected = 0usize;
    loop {
        let mut group = std::mem::take(&mut deferred);
        if group.is_empty() {
            match queue.recv().await {
                Some(r) => group.push(r),
                None => return,
            }
        }
        drain(&mut queue, &mut group, group_max);
        let want = expected.min(group_max);
        if group.len() < want && !linger.is_zero() {
            let deadline = tokio::time::Instant::now() + linger;
            while group.len() < want {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(r)) => {
                        group.push(r);
                        drain(&mut queue, &mut group, group_max);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let outcome = commit_group(&inner, group, &queue).await;
        expected = outcome.answered + outcome.queued_meanwhile;
        deferred = outcome.deferred;
    }
}

/// Moves queued requests into `group`, up to `group_max`.
fn drain(queue: &mut mpsc::Receiver<Request>, group: &mut Vec<Request>, group_max: usize) {
    while group.len() < group_max {
        match queue.try_recv() {
            Ok(r) => group.push(r),
            Err(_) => break,
        }
    }
}

/// What became of a group.
struct Outcome {
    /// Requests for the next group (see [`try_commit_group`]).
    deferred: Vec<Request>,
    /// Requests answered after the count below: written, or failed with the group.
    /// (Refusals are answered before the commit; those that append again at once are
    /// among the queued ones.)
    answered: usize,
    /// Requests queued while the group committed, counted before the answers went out.
    queued_meanwhile: usize,
}

/// Writes one group; see [`try_commit_group`].
async fn commit_group(
    inner: &Inner,
    group: Vec<Request>,
    queue: &mpsc::Receiver<Request>,
) -> Outcome {
    match try_commit_group(inner, group, queue).await {
        Ok(outcome) => outcome,
        Err((e, requests)) => {
            let outcome = Outcome {
                deferred: Vec::new(),
                answered: requests.len(),
                queued_meanwhile: queue.len(),
            };
            for r in requests {
                let _ = r.reply.send(Err(AppendError::Storage(e.clone())));
            }
            outcome
        }
    }
}

/// The sort key that every transaction locks stream rows in: a stream's row before its
/// metadata stream's row (as `delete_stream` does), so no two transactions deadlock.
fn lock_key(stream: &StreamName) -> (String, bool) {
    match stream.described_stream() {
        Some(target) => (target.into_string(), true),
        None => (stream.as_str().to_owned(), false),
    }
}

type GroupError = (StorageError, Vec<Request>);

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

/// Writes one group; returns the requests that must go into the next group (a second
/// request on a stream already written in this group, or one repeating event ids of an
/// earlier request: a concurrent retry, which must see that request committed to be
/// recognised as a retry), with the counts the committer lingers on.
async fn try_commit_group(
    inner: &Inner,
    mut group: Vec<Request>,
    queue: &mpsc::Receiver<Request>,
) -> Result<Outcome, GroupError> {
    let client = match inner.client().await {
        Ok(c) => c,
        Err(e) => return Err((e, group)),
    };
    let statements = match group_sql::statements(&client).await {
        Ok(s) => s,
        Err(e) => return Err((e, group)),
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
    // One round trip: BEGIN, lock the rows, probe. The requests go out in this order and
    // run in it, so the probe sees every commit made by whoever held the rows before.
    let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&names];
    let (begun, locked, found) = tokio::join!(
        client.batch_execute("BEGIN"),
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
    let opened = begun.and(locked).and_then(|l| found.map(|f| (l, f)));
    let (locked, found) = match opened {
        Ok(r) => r,
        Err(e) => {
            drop(Object::take(client));
            return Err((storage(e), group));
        }
    };
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
                    return Err((e, all_of(accepted, rest)));
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
        return Ok(Outcome {
            deferred,
            answered: 0,
            queued_meanwhile: queue.len(),
        });
    }

    // The second round trip: one statement writes the whole group, then COMMIT, sent
    // together (a failed write aborts the transaction, so the COMMIT then rolls back).
    // System-stream effects (rare) run between them.
    let channel = inner.config.channel();
    let appends: Vec<(&str, i64, &[NewEvent])> = accepted
        .iter()
        .map(|(r, first)| (r.stream.as_str(), *first, &r.events[..]))
        .collect();
    let rows = group_sql::WriteRows::new(&appends, &channel);
    let params = rows.params();
    let system = accepted.iter().any(|(r, _)| r.stream.is_system());
    let outcome = if system {
        write_with_system_effects(&client, &statements, &params, &accepted).await
    } else {
        let (written, committed) = tokio::join!(
            client.query_one(&statements.write, &params),
            client.batch_execute("COMMIT"),
        );
        written
            .and_then(|row| committed.map(|()| row))
            .map_err(storage)
    };
    let row = match outcome {
        Ok(row) => row,
        Err(e) => {
            drop(Object::take(client));
            drop(rows);
            drop(appends);
            return Err((e, all_of(accepted, deferred)));
        }
    };
    let results = rows.results(&row);
    drop(rows);
    drop(appends);
    let queued_meanwhile = queue.len();
    let answered = accepted.len();
    let head = results.iter().map(|r| r.position).max().expect("non-empty");
    inner.raise_next_position(head + 1);
    inner.note_group(accepted.len());
    inner.wake.notify_one();
    for ((r, _), result) in accepted.into_iter().zip(results) {
        let _ = r.reply.send(Ok(result));
    }
    Ok(Outcome {
        deferred,
        answered,
        queued_meanwhile,
    })
}

/// The write, the metadata effects of the group's system-stream appends, then COMMIT.
async fn write_with_system_effects(
    client: &deadpool_postgres::ClientWrapper,
    statements: &group_sql::Statements,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    accepted: &[(Request, i64)],
) -> Result<tokio_postgres::Row, StorageError> {
    let row = client
        .query_one(&statements.write, params)
        .await
        .map_err(storage)?;
    for (r, _) in accepted.iter().filter(|(r, _)| r.stream.is_system()) {
        apply_system_events(&**client, r.stream.as_str(), &r.events).await?;
    }
    client.batch_execute("COMMIT").await.map_err(storage)?;
    Ok(row)
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
