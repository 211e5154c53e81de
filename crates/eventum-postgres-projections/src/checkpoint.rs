//! Consumer checkpoints in `consumer_checkpoints`: the position a consumer handles next,
//! read under a row lock at the start of a batch's transaction and moved in it.

use deadpool_postgres::Transaction;
use eventum_core::StorageError;

use crate::error::storage;

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Creates `consumer`'s checkpoint at `position_next` unless it has one; returns the
/// stored one.
pub async fn ensure(
    client: &tokio_postgres::Client,
    consumer: &str,
    position_next: u64,
) -> Result<u64, StorageError> {
    client
        .execute(
            "INSERT INTO consumer_checkpoints (consumer, position_next) VALUES ($1, $2)
             ON CONFLICT (consumer) DO NOTHING",
            &[&consumer, &to_i64(position_next)],
        )
        .await
        .map_err(storage)?;
    let row = client
        .query_one(
            "SELECT position_next FROM consumer_checkpoints WHERE consumer = $1",
            &[&consumer],
        )
        .await
        .map_err(storage)?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// `consumer`'s checkpoint, locked until the transaction ends (so two runners of one
/// consumer take turns and the second sees what the first committed); `None` if it has
/// none.
pub async fn lock(tx: &Transaction<'_>, consumer: &str) -> Result<Option<u64>, StorageError> {
    let stmt = tx
        .prepare_cached(
            "SELECT position_next FROM consumer_checkpoints WHERE consumer = $1 FOR UPDATE",
        )
        .await
        .map_err(storage)?;
    let row = tx.query_opt(&stmt, &[&consumer]).await.map_err(storage)?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64))
}

/// Sets `consumer`'s checkpoint to `position_next` and counts `handled` more events.
pub async fn save(
    tx: &Transaction<'_>,
    consumer: &str,
    position_next: u64,
    handled: u64,
) -> Result<(), StorageError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO consumer_checkpoints (consumer, position_next, events_handled)
             VALUES ($1, $2, $3)
             ON CONFLICT (consumer) DO UPDATE SET position_next = EXCLUDED.position_next,
                 events_handled = consumer_checkpoints.events_handled + EXCLUDED.events_handled,
                 updated_at = now()",
        )
        .await
        .map_err(storage)?;
    tx.execute(
        &stmt,
        &[&consumer, &to_i64(position_next), &to_i64(handled)],
    )
    .await
    .map_err(storage)?;
    Ok(())
}

/// Sets `consumer` back to `position_next` with nothing handled and forgets its inbox (a
/// rebuild), in the caller's transaction.
pub async fn reset(
    tx: &Transaction<'_>,
    consumer: &str,
    position_next: u64,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO consumer_checkpoints (consumer, position_next) VALUES ($1, $2)
         ON CONFLICT (consumer) DO UPDATE SET position_next = EXCLUDED.position_next,
             events_handled = 0, updated_at = now()",
        &[&consumer, &to_i64(position_next)],
    )
    .await
    .map_err(storage)?;
    tx.execute(
        "DELETE FROM consumer_inbox WHERE consumer = $1",
        &[&consumer],
    )
    .await
    .map_err(storage)?;
    Ok(())
}
