//! The three statements a group commit runs, each one round trip and one statement for the
//! whole group however many appends it carries: lock the stream rows (in the global lock
//! order), probe for idempotent retries, and write every accepted append.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use eventum_core::{AppendResult, NewEvent, StorageError, category_of};
use uuid::Uuid;

use crate::append::Locked;
use crate::error::storage;
use crate::read::NOW_US_SQL;
use crate::store::Inner;

/// Locks (creating if missing) the rows of `names`, in the order given.
pub(crate) async fn lock_all(
    tx: &Transaction<'_>,
    names: &[String],
) -> Result<HashMap<String, Locked>, StorageError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO streams (name)
             SELECT t.name FROM UNNEST($1::text[]) WITH ORDINALITY AS t(name, ord) ORDER BY t.ord
             ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
             RETURNING name, last_version, deleted",
        )
        .await
        .map_err(storage)?;
    let rows = tx.query(&stmt, &[&names]).await.map_err(storage)?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                Locked {
                    last_version: r.get(1),
                    deleted: r.get(2),
                    probed_version: None,
                },
            )
        })
        .collect())
}

/// For each `(stream, event id)`, the version of that event in that stream, if any.
pub(crate) async fn probe_all(
    tx: &Transaction<'_>,
    probes: &[(&str, Uuid)],
) -> Result<Vec<Option<i64>>, StorageError> {
    if probes.is_empty() {
        return Ok(Vec::new());
    }
    let streams: Vec<&str> = probes.iter().map(|p| p.0).collect();
    let ids: Vec<Uuid> = probes.iter().map(|p| p.1).collect();
    let stmt = tx
        .prepare_cached(
            "SELECT (SELECT e.version FROM events e WHERE e.event_id = t.id AND e.stream = t.stream
                     ORDER BY e.version LIMIT 1)
             FROM UNNEST($1::text[], $2::uuid[]) WITH ORDINALITY AS t(stream, id, ord)
             ORDER BY t.ord",
        )
        .await
        .map_err(storage)?;
    let rows = tx.query(&stmt, &[&streams, &ids]).await.map_err(storage)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Writes each `(stream, first_version, events)` with consecutive positions, in order,
/// moves each stream's last version and notifies listeners, in one statement.
pub(crate) async fn write_all(
    inner: &Inner,
    tx: &Transaction<'_>,
    appends: &[(&str, i64, &[NewEvent])],
) -> Result<Vec<AppendResult>, StorageError> {
    let total: usize = appends.iter().map(|a| a.2.len()).sum();
    let mut streams = Vec::with_capacity(total);
    let mut versions = Vec::with_capacity(total);
    let mut categories = Vec::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    let mut types = Vec::with_capacity(total);
    let mut data: Vec<&[u8]> = Vec::with_capacity(total);
    let mut metadata: Vec<&[u8]> = Vec::with_capacity(total);
    let mut correlation = Vec::with_capacity(total);
    let mut causation = Vec::with_capacity(total);
    let mut last_names = Vec::with_capacity(appends.len());
    let mut last_versions = Vec::with_capacity(appends.len());
    for (stream, first_version, events) in appends {
        for (i, e) in events.iter().enumerate() {
            streams.push(*stream);
            versions.push(first_version + i as i64);
            categories.push(category_of(stream));
            ids.push(e.id());
            types.push(e.event_type());
            data.push(&e.data()[..]);
            metadata.push(&e.metadata()[..]);
            correlation.push(e.correlation_id().unwrap_or(e.id()));
            causation.push(e.causation_id().unwrap_or(e.id()));
        }
        last_names.push(*stream);
        last_versions.push(first_version + events.len() as i64 - 1);
    }
    let sql = format!(
        "WITH head AS (
             UPDATE log_head SET next_position = next_position + $1
             RETURNING next_position - $1 AS first),
         ins AS (
             INSERT INTO events (position, stream, version, category, event_id, event_type,
                 data, metadata, correlation_id, causation_id, recorded_at_us)
             SELECT head.first + t.ord - 1, t.stream, t.version, t.category, t.id, t.ty,
                 t.data, t.meta, t.corr, t.caus, {NOW_US_SQL}
             FROM head, UNNEST($2::text[], $3::bigint[], $4::text[], $5::uuid[], $6::text[],
                 $7::bytea[], $8::bytea[], $9::uuid[], $10::uuid[])
                 WITH ORDINALITY AS t(stream, version, category, id, ty, data, meta, corr, caus, ord)
             RETURNING 1),
         upd AS (
             UPDATE streams s SET last_version = u.last
             FROM UNNEST($11::text[], $12::bigint[]) AS u(name, last)
             WHERE s.name = u.name
             RETURNING 1)
         SELECT head.first, pg_notify($13, (head.first + $1 - 1)::text),
             (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)
         FROM head"
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(storage)?;
    let channel = inner.config.channel();
    let row = tx
        .query_one(
            &stmt,
            &[
                &(total as i64),
                &streams,
                &versions,
                &categories,
                &ids,
                &types,
                &data,
                &metadata,
                &correlation,
                &causation,
                &last_names,
                &last_versions,
                &channel,
            ],
        )
        .await
        .map_err(storage)?;
    let mut position: i64 = row.get(0);
    let mut results = Vec::with_capacity(appends.len());
    for (_, first_version, events) in appends {
        let n = events.len() as i64;
        position += n;
        results.push(AppendResult {
            next_expected_version: (first_version + n - 1) as u64,
            position: (position - 1) as u64,
        });
    }
    Ok(results)
}
