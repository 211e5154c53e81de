//! Reads: streams (with retention metadata applied), `$all`, categories, stream state, and
//! the matching reads subscriptions catch up with. Only committed rows are ever visible,
//! and commits are position-ordered (see `append`), so every read is a gap-free prefix.

use bytes::Bytes;
use eventum_core::{
    ActualVersion, ReadDirection, ReadError, RecordedEvent, StorageError, StreamMetadata,
    StreamName, StreamState, SubscriptionTarget,
};
use tokio_postgres::Row;

use crate::error::{corrupt, storage};
use crate::store::Inner;

/// The columns every event query selects, in the order [`decode`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "position, stream, version, event_id, event_type, data, \
     metadata, correlation_id, causation_id, recorded_at_us";

/// The database clock in microseconds; appends stamp events with it and age-based
/// retention compares against it, so skewed application clocks cannot disagree.
pub(crate) const NOW_US_SQL: &str = "(extract(epoch from clock_timestamp()) * 1000000)::bigint";

fn to_u64(v: i64, what: &str) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| corrupt(format!("negative {what} {v} in the events table")))
}

/// Clamps a caller's `u64` to PostgreSQL's `bigint`.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn decode(row: &Row) -> Result<RecordedEvent, StorageError> {
    Ok(RecordedEvent {
        position: to_u64(row.get(0), "position")?,
        stream: row.get(1),
        version: to_u64(row.get(2), "version")?,
        id: row.get(3),
        event_type: row.get(4),
        data: Bytes::from(row.get::<_, Vec<u8>>(5)),
        metadata: Bytes::from(row.get::<_, Vec<u8>>(6)),
        correlation_id: row.get(7),
        causation_id: row.get(8),
        recorded_at_us: row.get(9),
    })
}

fn decode_all(rows: &[Row]) -> Result<Vec<RecordedEvent>, StorageError> {
    rows.iter().map(decode).collect()
}

/// A stream's row: last version, deletion flag and retention.
pub(crate) struct StreamRow {
    pub last_version: Option<i64>,
    pub deleted: bool,
    pub max_count: Option<i64>,
    pub max_age_s: Option<i64>,
}

async fn stream_row(inner: &Inner, name: &str) -> Result<Option<StreamRow>, StorageError> {
    let client = inner.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT last_version, deleted, max_count, max_age_s FROM streams WHERE name = $1",
        )
        .await
        .map_err(storage)?;
    let row = client.query_opt(&stmt, &[&name]).await.map_err(storage)?;
    Ok(row.map(|r| StreamRow {
        last_version: r.get(0),
        deleted: r.get(1),
        max_count: r.get(2),
        max_age_s: r.get(3),
    }))
}

fn metadata_of(row: &StreamRow) -> StreamMetadata {
    StreamMetadata {
        max_count: row.max_count.map(|v| v.max(0) as u64),
        max_age_s: row.max_age_s.map(|v| v.max(0) as u64),
    }
}

pub(crate) async fn stream_state(
    inner: &Inner,
    stream: &StreamName,
) -> Result<StreamState, StorageError> {
    Ok(match stream_row(inner, stream.as_str()).await? {
        Some(row) => StreamState {
            version: ActualVersion::from_option(row.last_version.map(|v| v as u64)),
            deleted: row.deleted,
            metadata: metadata_of(&row),
        },
        None => StreamState {
            version: ActualVersion::NoStream,
            deleted: false,
            metadata: StreamMetadata::default(),
        },
    })
}

pub(crate) async fn read_stream(
    inner: &Inner,
    stream: &StreamName,
    from: Option<u64>,
    direction: ReadDirection,
    limit: usize,
) -> Result<Vec<RecordedEvent>, ReadError> {
    let name = stream.as_str();
    let row = stream_row(inner, name).await?;
    let (last, row) = match row {
        Some(r) if r.deleted => {
            return Err(ReadError::StreamDeleted {
                stream: name.to_owned(),
            });
        }
        Some(r) => match r.last_version {
            Some(last) => (last, r),
            None => {
                return Err(ReadError::StreamNotFound {
                    stream: name.to_owned(),
                });
            }
        },
        None => {
            return Err(ReadError::StreamNotFound {
                stream: name.to_owned(),
            });
        }
    };
    // Retention: versions older than the newest `max_count` are hidden.
    let min_version = row
        .max_count
        .map_or(0, |c| last.saturating_sub(c).saturating_add(1).max(0));
    let limit = limit as i64;
    let client = inner.client().await?;
    let rows = match direction {
        ReadDirection::Forward => {
            let start = to_i64(from.unwrap_or(0)).max(min_version);
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream = $1 AND version >= $2 \
                 AND ($3::bigint IS NULL OR recorded_at_us >= {NOW_US_SQL} - $3 * 1000000) \
                 ORDER BY version LIMIT $4"
            );
            let stmt = client.prepare_cached(&sql).await.map_err(storage)?;
            client
                .query(&stmt, &[&name, &start, &row.max_age_s, &limit])
                .await
        }
        ReadDirection::Backward => {
            let end = to_i64(from.unwrap_or(u64::MAX)).min(last);
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream = $1 AND version <= $2 \
                 AND version >= $3 \
                 AND ($4::bigint IS NULL OR recorded_at_us >= {NOW_US_SQL} - $4 * 1000000) \
                 ORDER BY version DESC LIMIT $5"
            );
            let stmt = client.prepare_cached(&sql).await.map_err(storage)?;
            client
                .query(&stmt, &[&name, &end, &min_version, &row.max_age_s, &limit])
                .await
        }
    }
    .map_err(storage)?;
    Ok(decode_all(&rows)?)
}

pub(crate) async fn read_all(
    inner: &Inner,
    from: Option<u64>,
    direction: ReadDirection,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StorageError> {
    let limit = limit as i64;
    let client = inner.client().await?;
    let (sql, from) = match direction {
        ReadDirection::Forward => (
            format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT $2"
            ),
            to_i64(from.unwrap_or(0)),
        ),
        ReadDirection::Backward => (
            format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position <= $1 \
                 ORDER BY position DESC LIMIT $2"
            ),
            to_i64(from.unwrap_or(u64::MAX)),
        ),
    };
    let stmt = client.prepare_cached(&sql).await.map_err(storage)?;
    let rows = client
        .query(&stmt, &[&from, &limit])
        .await
        .map_err(storage)?;
    decode_all(&rows)
}

pub(crate) async fn read_category(
    inner: &Inner,
    category: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StorageError> {
    let client = inner.client().await?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE category = $1 AND position >= $2 \
         ORDER BY position LIMIT $3"
    );
    let stmt = client.prepare_cached(&sql).await.map_err(storage)?;
    let rows = client
        .query(&stmt, &[&category, &to_i64(from), &(limit as i64)])
        .await
        .map_err(storage)?;
    decode_all(&rows)
}

/// Committed events matching `target` from position `from`, in position order.
pub(crate) async fn read_matching(
    inner: &Inner,
    target: &SubscriptionTarget,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StorageError> {
    match target {
        SubscriptionTarget::All => read_all(inner, Some(from), ReadDirection::Forward, limit).await,
        SubscriptionTarget::Category(c) => read_category(inner, c, from, limit).await,
        SubscriptionTarget::Stream(s) => {
            let client = inner.client().await?;
            // Within a stream, versions grow with positions, so the (stream, version)
            // index serves this in position order.
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream = $1 AND position >= $2 \
                 ORDER BY version LIMIT $3"
            );
            let stmt = client.prepare_cached(&sql).await.map_err(storage)?;
            let rows = client
                .query(&stmt, &[&s.as_str(), &to_i64(from), &(limit as i64)])
                .await
                .map_err(storage)?;
            decode_all(&rows)
        }
    }
}
