//! Appends, deletes and metadata changes: one transaction each. The stream's row is locked
//! to check the expected version; global positions are then taken from the one-row
//! `log_head` table in the same statement that inserts the events, so the row lock is held
//! only for the tail of the transaction (insert + commit). A later appender waits on that
//! lock until the earlier one has committed *and become visible* (PostgreSQL releases row
//! locks after marking the transaction visible), so positions are contiguous, commit order
//! equals position order, and no reader can ever see position n+1 without position n.

use deadpool_postgres::Transaction;
use eventum_core::stream::{METADATA_TYPE, STREAM_DELETED_TYPE};
use eventum_core::{
    ActualVersion, AppendError, AppendResult, ExpectedVersion, NewEvent, StorageError,
    StreamMetadata, StreamName, category_of,
};
use uuid::Uuid;

use crate::error::storage;
use crate::read::{NOW_US_SQL, to_i64};
use crate::store::Inner;

/// A locked stream row, as the checks need it.
pub(crate) struct Locked {
    pub(crate) last_version: Option<i64>,
    pub(crate) deleted: bool,
    /// The version of the event with the probed id in this stream, if any (retry lookup).
    pub(crate) probed_version: Option<i64>,
}

impl Locked {
    pub(crate) fn actual(&self) -> ActualVersion {
        ActualVersion::from_option(self.last_version.map(|v| v as u64))
    }
}

/// Locks `name`'s row (creating it if missing) and, in the same round trip, finds the
/// version of event `probe` in it.
async fn lock_stream(
    tx: &Transaction<'_>,
    name: &str,
    probe: Option<Uuid>,
) -> Result<Locked, StorageError> {
    let stmt = tx
        .prepare_cached(
            "WITH s AS (
                 INSERT INTO streams (name) VALUES ($1)
                 ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                 RETURNING last_version, deleted)
             SELECT s.last_version, s.deleted,
                 (SELECT version FROM events WHERE event_id = $2 AND stream = $1
                  ORDER BY version LIMIT 1)
             FROM s",
        )
        .await
        .map_err(storage)?;
    let row = tx
        .query_one(&stmt, &[&name, &probe])
        .await
        .map_err(storage)?;
    Ok(Locked {
        last_version: row.get(0),
        deleted: row.get(1),
        probed_version: row.get(2),
    })
}

/// The original result if `events` were already appended to `stream` as one batch under
/// `expected` (a retry after a lost acknowledgement).
pub(crate) async fn find_retry(
    tx: &deadpool_postgres::ClientWrapper,
    stream: &str,
    expected: ExpectedVersion,
    locked: &Locked,
    events: &[NewEvent],
) -> Result<Option<AppendResult>, StorageError> {
    let Some(last) = locked.last_version else {
        return Ok(None);
    };
    let first_version = match expected {
        // `Exact(u64::MAX)` can never have been satisfied, so it is never a retry.
        ExpectedVersion::Exact(v) => match v.checked_add(1) {
            Some(f) => to_i64(f),
            None => return Ok(None),
        },
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Any | ExpectedVersion::StreamExists => match locked.probed_version {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    if first_version.saturating_add(events.len() as i64 - 1) > last {
        return Ok(None);
    }
    let stmt = tx
        .prepare_cached(
            "SELECT event_id, version, position FROM events
             WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3",
        )
        .await
        .map_err(storage)?;
    let rows = tx
        .query(&stmt, &[&stream, &first_version, &(events.len() as i64)])
        .await
        .map_err(storage)?;
    if rows.len() != events.len() {
        return Ok(None);
    }
    for (row, event) in rows.iter().zip(events) {
        if row.get::<_, Uuid>(0) != event.id() {
            return Ok(None);
        }
    }
    let last_row = rows.last().expect("batches are never empty");
    Ok(Some(AppendResult {
        next_expected_version: last_row.get::<_, i64>(1) as u64,
        position: last_row.get::<_, i64>(2) as u64,
    }))
}

/// Takes positions from `log_head`, inserts `events` as versions `first_version..` of
/// `stream`, moves the stream's last version and notifies listeners, in one statement.
async fn write(
    inner: &Inner,
    tx: &Transaction<'_>,
    stream: &str,
    first_version: i64,
    events: &[NewEvent],
) -> Result<AppendResult, StorageError> {
    let n = events.len() as i64;
    let ids: Vec<Uuid> = events.iter().map(NewEvent::id).collect();
    let types: Vec<&str> = events.iter().map(NewEvent::event_type).collect();
    let data: Vec<&[u8]> = events.iter().map(|e| &e.data()[..]).collect();
    let metadata: Vec<&[u8]> = events.iter().map(|e| &e.metadata()[..]).collect();
    let correlation: Vec<Uuid> = events
        .iter()
        .map(|e| e.correlation_id().unwrap_or(e.id()))
        .collect();
    let causation: Vec<Uuid> = events
        .iter()
        .map(|e| e.causation_id().unwrap_or(e.id()))
        .collect();
    let sql = format!(
        "WITH head AS (
             UPDATE log_head SET next_position = next_position + $1
             RETURNING next_position - $1 AS first),
         ins AS (
             INSERT INTO events (position, stream, version, category, event_id, event_type,
                 data, metadata, correlation_id, causation_id, recorded_at_us)
             SELECT head.first + t.ord - 1, $2, $3 + t.ord - 1, $4, t.id, t.ty, t.data,
                 t.meta, t.corr, t.caus, {NOW_US_SQL}
             FROM head, UNNEST($5::uuid[], $6::text[], $7::bytea[], $8::bytea[],
                 $9::uuid[], $10::uuid[]) WITH ORDINALITY AS t(id, ty, data, meta, corr, caus, ord)
             RETURNING 1),
         upd AS (
             UPDATE streams SET last_version = $3 + $1 - 1 WHERE name = $2 RETURNING 1)
         SELECT head.first, pg_notify($11, (head.first + $1 - 1)::text),
             (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)
         FROM head"
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(storage)?;
    let channel = inner.config.channel();
    let row = tx
        .query_one(
            &stmt,
            &[
                &n,
                &stream,
                &first_version,
                &category_of(stream),
                &ids,
                &types,
                &data,
                &metadata,
                &correlation,
                &causation,
                &channel,
            ],
        )
        .await
        .map_err(storage)?;
    let first: i64 = row.get(0);
    apply_system_events(&**tx, stream, events).await?;
    Ok(AppendResult {
        next_expected_version: (first_version + n - 1) as u64,
        position: (first + n - 1) as u64,
    })
}

/// Events in a metadata stream `$${x}` change `x`'s row: deletion and retention.
pub(crate) async fn apply_system_events(
    tx: &impl tokio_postgres::GenericClient,
    stream: &str,
    events: &[NewEvent],
) -> Result<(), StorageError> {
    let Some(target) = stream.strip_prefix("$$").filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    for event in events {
        match event.event_type() {
            STREAM_DELETED_TYPE => {
                tx.execute(
                    "UPDATE streams SET deleted = true WHERE name = $1",
                    &[&target],
                )
                .await
                .map_err(storage)?;
            }
            METADATA_TYPE => {
                // Like every backend, a metadata event that does not decode changes nothing.
                if let Ok(m) = serde_json::from_slice::<StreamMetadata>(event.data()) {
                    let count = m.max_count.map(to_i64);
                    let age = m.max_age_s.map(to_i64);
                    tx.execute(
                        "UPDATE streams SET max_count = $2, max_age_s = $3 WHERE name = $1",
                        &[&target, &count, &age],
                    )
                    .await
                    .map_err(storage)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Commits, then raises the known head and wakes the follower so local subscribers see
/// the batch without waiting for the notification round trip.
async fn commit(
    inner: &Inner,
    tx: Transaction<'_>,
    result: AppendResult,
) -> Result<AppendResult, AppendError> {
    tx.commit().await.map_err(storage)?;
    inner.raise_next_position(result.position + 1);
    inner.wake.notify_one();
    Ok(result)
}

/// Locks `stream` and its metadata stream, refuses a deleted stream, then appends `event`
/// (built from the locked state) to the metadata stream.
async fn write_system_event(
    inner: &Inner,
    stream: &StreamName,
    expected: ExpectedVersion,
    make_event: impl FnOnce(ActualVersion) -> NewEvent,
) -> Result<AppendResult, AppendError> {
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(storage)?;
    let target = lock_stream(&tx, stream.as_str(), None).await?;
    let meta_stream = stream.metadata_stream();
    let meta = lock_stream(&tx, meta_stream.as_str(), None).await?;
    if target.deleted {
        return Err(AppendError::StreamDeleted {
            stream: stream.to_string(),
        });
    }
    AppendError::check_expected(stream.as_str(), expected, target.actual())?;
    let event = make_event(target.actual());
    let first_version = meta.last_version.map_or(0, |v| v + 1);
    let result = write(inner, &tx, meta_stream.as_str(), first_version, &[event]).await?;
    commit(inner, tx, result).await
}

pub(crate) async fn delete_stream(
    inner: &Inner,
    stream: &StreamName,
    expected: ExpectedVersion,
) -> Result<AppendResult, AppendError> {
    write_system_event(inner, stream, expected, |actual| {
        NewEvent::stream_deleted(stream, actual.as_option())
    })
    .await
}

pub(crate) async fn set_stream_metadata(
    inner: &Inner,
    stream: &StreamName,
    metadata: StreamMetadata,
) -> Result<AppendResult, AppendError> {
    let event = NewEvent::stream_metadata(&metadata);
    write_system_event(inner, stream, ExpectedVersion::Any, |_| event).await
}
