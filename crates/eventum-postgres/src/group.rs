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
pub(crate) async fn run_committer(
    inner: std::sync::Arc<Inner>,
    mut queue: mpsc::Receiver<Request>,
) {
    let group_max = inner.config.group_appends_max.max(1);
    let mut deferred: Vec<Request> = Vec::new();
    loop {
        let mut group = std::mem::take(&mut deferred);
        if group.is_empty() {
            match queue.recv().await {
                Some(r) => group.push(r),
                None => return,
            }
        }
        while group.len() < group_max {
            match queue.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        deferred = commit_group(&inner, group).await;
    }
}

/// Writes one group; returns the requests that must go into the next group: a second
/// request on a stream already written in this group, or one repeating event ids of an
/// earlier request (a concurrent retry, which must see that request committed to be
/// recognised as a retry).
async fn commit_group(inner: &Inner, group: Vec<Request>) -> Vec<Request> {
    match try_commit_group(inner, group).await {
        Ok(deferred) => deferred,
        Err((e, requests)) => {
            for r in requests {
                let _ = r.reply.send(Err(AppendError::Storage(e.clone())));
            }
            Vec::new()
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

async fn try_commit_group(
    inner: &Inner,
    mut group: Vec<Request>,
) -> Result<Vec<Request>, GroupError> {
    let mut client = match inner.client().await {
        Ok(c) => c,
        Err(e) => return Err((e, group)),
    };
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(e) => return Err((storage(e), group)),
    };
    // Lock every row the group touches, in the global lock order, in one statement. A
    // metadata stream's described stream is locked too.
    let mut keys: Vec<(String, bool)> = Vec::new();
    for r in &group {
        keys.push(lock_key(&r.stream));
        if let Some(target) = r.stream.described_stream() {
            keys.push((target.into_string(), false));
        }
    }
    keys.sort();
    keys.dedup();
    let names: Vec<String> = keys
        .into_iter()
        .map(|(base, meta)| if meta { format!("$${base}") } else { base })
        .collect();
    let mut streams = match group_sql::lock_all(&tx, &names).await {
        Ok(s) => s,
        Err(e) => return Err((e, group)),
    };
    // Where each `any`/`exists` request's first event id already is in its stream (the
    // idempotent-retry probe), in one more statement.
    let wanted: Vec<(&str, Uuid)> = group
        .iter()
        .filter(|r| {
            matches!(
                r.expected,
                ExpectedVersion::Any | ExpectedVersion::StreamExists
            )
        })
        .map(|r| (r.stream.as_str(), r.events[0].id()))
        .collect();
    let mut found = match group_sql::probe_all(&tx, &wanted).await {
        Ok(f) => f.into_iter(),
        Err(e) => return Err((e, group)),
    };
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
    // the writes below are pipelined, and requests on different streams may then take
    // positions in any order without changing any stream's version order.
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
            match find_retry(&tx, &name, r.expected, &view, &r.events).await {
                Ok(found) => found,
                Err(e) => {
                    let mut rest: Vec<Request> = accepted.into_iter().map(|(r, _)| r).collect();
                    rest.push(r);
                    rest.extend(deferred);
                    return Err((e, rest));
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
        return Ok(deferred);
    }

    // One statement writes the whole group; system-stream effects follow (rare).
    let appends: Vec<(&str, i64, &[NewEvent])> = accepted
        .iter()
        .map(|(r, first)| (r.stream.as_str(), *first, &r.events[..]))
        .collect();
    let mut written = group_sql::write_all(inner, &tx, &appends).await;
    if written.is_ok() {
        for (r, _) in accepted.iter().filter(|(r, _)| r.stream.is_system()) {
            if let Err(e) = apply_system_events(&tx, r.stream.as_str(), &r.events).await {
                written = Err(e);
                break;
            }
        }
    }
    let results = match written {
        Ok(results) => results,
        Err(e) => {
            let mut rest: Vec<Request> = accepted.into_iter().map(|(r, _)| r).collect();
            rest.extend(deferred);
            return Err((e, rest));
        }
    };
    if let Err(e) = tx.commit().await {
        let mut rest: Vec<Request> = accepted.into_iter().map(|(r, _)| r).collect();
        rest.extend(deferred);
        return Err((storage(e), rest));
    }
    let head = results.iter().map(|r| r.position).max().expect("non-empty");
    inner.raise_next_position(head + 1);
    inner.wake.notify_one();
    for ((r, _), result) in accepted.into_iter().zip(results) {
        let _ = r.reply.send(Ok(result));
    }
    Ok(deferred)
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
