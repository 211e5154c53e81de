//! The inbox in `consumer_inbox`: per consumer, the ids of the events it handled, written
//! in the same transaction as its checkpoint and the handler's writes, so that a repeated
//! delivery is recognised and its effects happen once.
//!
//! Use it from any transaction: the log consumer ([`crate::PgConsumer`]) records every
//! batch here; a consumer fed by a broker or a consumer group calls [`record`] in its
//! own transaction, handles only the new events, commits, then acknowledges. Why a
//! bounded inbox is enough is the same as for the embedded read-model store: ids are
//! needed only for deliveries the checkpoint does not cover, so keep at least the
//! largest window that can be delivered again (see `ConsumerConfig::inbox_ids_max`).

use std::collections::HashSet;

use deadpool_postgres::Transaction;
use eventum_core::{EventId, StorageError};

use crate::error::storage;

/// Records `ids` for `consumer` and says, for each, whether it is new: `false` for an id
/// recorded before (by an earlier, committed transaction) or repeated earlier in `ids`.
/// The rows become durable with the transaction; a concurrent transaction recording the
/// same id waits for this one and then sees it as recorded.
pub async fn record(
    tx: &Transaction<'_>,
    consumer: &str,
    ids: &[EventId],
) -> Result<Vec<bool>, StorageError> {
    let mut seen = HashSet::with_capacity(ids.len());
    let first: Vec<bool> = ids.iter().map(|id| seen.insert(*id)).collect();
    let distinct: Vec<EventId> = ids
        .iter()
        .zip(&first)
        .filter(|(_, f)| **f)
        .map(|(id, _)| *id)
        .collect();
    if distinct.is_empty() {
        return Ok(first);
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO consumer_inbox (consumer, event_id)
             SELECT $1, t.id FROM UNNEST($2::uuid[]) WITH ORDINALITY AS t(id, ord) ORDER BY t.ord
             ON CONFLICT (consumer, event_id) DO NOTHING
             RETURNING event_id",
        )
        .await
        .map_err(storage)?;
    let rows = tx
        .query(&stmt, &[&consumer, &distinct])
        .await
        .map_err(storage)?;
    let new: HashSet<EventId> = rows.iter().map(|r| r.get(0)).collect();
    Ok(ids
        .iter()
        .zip(first)
        .map(|(id, first)| first && new.contains(id))
        .collect())
}

/// Whether `consumer` has recorded `id` (and not pruned it yet).
pub async fn contains(
    client: &tokio_postgres::Client,
    consumer: &str,
    id: EventId,
) -> Result<bool, StorageError> {
    let row = client
        .query_opt(
            "SELECT 1 FROM consumer_inbox WHERE consumer = $1 AND event_id = $2",
            &[&consumer, &id],
        )
        .await
        .map_err(storage)?;
    Ok(row.is_some())
}

/// Forgets all but `consumer`'s newest `keep` ids; returns how many were removed.
pub async fn prune(tx: &Transaction<'_>, consumer: &str, keep: u64) -> Result<u64, StorageError> {
    let stmt = tx
        .prepare_cached(
            "DELETE FROM consumer_inbox WHERE consumer = $1 AND seq <= (
                 SELECT seq FROM consumer_inbox WHERE consumer = $1
                 ORDER BY seq DESC OFFSET $2 LIMIT 1)",
        )
        .await
        .map_err(storage)?;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    tx.execute(&stmt, &[&consumer, &keep])
        .await
        .map_err(storage)
}
