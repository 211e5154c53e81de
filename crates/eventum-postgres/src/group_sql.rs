//! The statements of a group commit, each one statement for the whole group however many
//! appends it carries: lock the stream rows (in the global lock order), probe for
//! idempotent retries, and write every accepted append — either taking positions from
//! `log_head` first (`write`), or at positions predicted while the previous group still
//! commits (`insert`, then `take` them). The committer pipelines them: `BEGIN`, the lock
//! and the probe go out together (one round trip), then the write and `COMMIT` (a second
//! one), so a group costs two round trips plus the WAL flush.

use std::collections::HashMap;

use deadpool_postgres::ClientWrapper;
use eventum_core::{AppendResult, NewEvent, StorageError, category_of};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

use crate::append::Locked;
use crate::error::storage;
use crate::read::NOW_US_SQL;

/// The group's prepared statements (cached per connection).
pub(crate) struct Statements {
    pub create: Statement,
    pub lock: Statement,
    pub probe: Statement,
    /// Takes positions from `log_head` (holding its row lock to the commit), inserts the
    /// events there, moves the streams' versions, notifies.
    pub write: Statement,
    /// Inserts the events at positions from `$1` and moves the streams' versions; the
    /// positions are taken afterwards with `take`.
    pub insert: Statement,
    /// `take_positions(first, n, channel)` (migration 0006).
    pub take: Statement,
}

/// The event insert and stream update both writes share; `{first}` is where positions
/// start.
fn insert_cte(first: &str) -> String {
    format!(
        "ins AS (
             INSERT INTO events (position, stream, version, category, event_id, event_type,
                 data, metadata, correlation_id, causation_id, recorded_at_us)
             SELECT {first} + t.ord - 1, t.stream, t.version, t.category, t.id, t.ty,
                 t.data, t.meta, t.corr, t.caus, {NOW_US_SQL}
             FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::uuid[], $6::text[],
                 $7::bytea[], $8::bytea[], $9::uuid[], $10::uuid[])
                 WITH ORDINALITY AS t(stream, version, category, id, ty, data, meta, corr, caus, ord)
             RETURNING 1),
         upd AS (
             UPDATE streams s SET last_version = u.last
             FROM UNNEST($11::text[], $12::bigint[]) AS u(name, last)
             WHERE s.name = u.name
             RETURNING 1)"
    )
}

/// Prepares (or takes from the connection's cache) every statement, so that the pipelined
/// requests that follow go out in order without waiting.
pub(crate) async fn statements(client: &ClientWrapper) -> Result<Statements, StorageError> {
    let write_sql = format!(
        "WITH head AS (
             UPDATE log_head SET next_position = next_position + $1
             RETURNING next_position - $1 AS first),
         {}
         SELECT head.first, pg_notify($13, (head.first + $1 - 1)::text),
             (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)
         FROM head",
        insert_cte("(SELECT first FROM head)")
    );
    let insert_sql = format!(
        "WITH {}
         SELECT $1::bigint, (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)",
        insert_cte("$1::bigint")
    );
    Ok(Statements {
        // Creates the missing rows of the names, in the order given. (A separate statement
        // from the lock: rows another transaction creates meanwhile are waited for here
        // and seen by the lock's newer snapshot.)
        create: client
            .prepare_cached(
                "INSERT INTO streams (name)
                 SELECT t.name FROM UNNEST($1::text[]) WITH ORDINALITY AS t(name, ord)
                 ORDER BY t.ord
                 ON CONFLICT (name) DO NOTHING",
            )
            .await
            .map_err(storage)?,
        // Locks the rows of the names, in the order given, without writing them (an
        // upsert that "updates" them would write a new row version each).
        lock: client
            .prepare_cached(
                "SELECT s.name, s.last_version, s.deleted
                 FROM UNNEST($1::text[]) WITH ORDINALITY AS t(name, ord)
                 JOIN streams s ON s.name = t.name
                 ORDER BY t.ord
                 FOR UPDATE OF s",
            )
            .await
            .map_err(storage)?,
        // For each (stream, event id), the version of that event in that stream, if any.
        // Only the event id is indexable here, so no plan can walk the stream's versions
        // looking for it (`ORDER BY version LIMIT 1` on `(stream, version)` would).
        probe: client
            .prepare_cached(
                "SELECT (SELECT min(e.version) FILTER (WHERE e.stream = t.stream)
                         FROM events e WHERE e.event_id = t.id)
                 FROM UNNEST($1::text[], $2::uuid[]) WITH ORDINALITY AS t(stream, id, ord)
                 ORDER BY t.ord",
            )
            .await
            .map_err(storage)?,
        write: client.prepare_cached(&write_sql).await.map_err(storage)?,
        insert: client.prepare_cached(&insert_sql).await.map_err(storage)?,
        take: client
            .prepare_cached("SELECT take_positions($1, $2, $3)")
            .await
            .map_err(storage)?,
    })
}

/// The locked rows returned by the lock statement, by name.
pub(crate) fn locked(rows: &[Row]) -> HashMap<String, Locked> {
    rows.iter()
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
        .collect()
}

/// The probe statement's answers, in the order asked.
pub(crate) fn probed(rows: &[Row]) -> Vec<Option<i64>> {
    rows.iter().map(|r| r.get(0)).collect()
}

/// The columns of every event a group writes, as the write statement's array parameters.
pub(crate) struct WriteRows<'a> {
    total: i64,
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    categories: Vec<&'a str>,
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    data: Vec<&'a [u8]>,
    metadata: Vec<&'a [u8]>,
    correlation: Vec<Uuid>,
    causation: Vec<Uuid>,
    last_names: Vec<&'a str>,
    last_versions: Vec<i64>,
    channel: &'a str,
    /// (first version, events) of each append, for the results.
    appends: Vec<(i64, i64)>,
}

impl<'a> WriteRows<'a> {
    /// The rows of each `(stream, first_version, events)`, in order: consecutive
    /// positions, each stream's last version moved, listeners notified on `channel`.
    pub(crate) fn new(appends: &[(&'a str, i64, &'a [NewEvent])], channel: &'a str) -> Self {
        let total: usize = appends.iter().map(|a| a.2.len()).sum();
        let mut rows = Self {
            total: total as i64,
            streams: Vec::with_capacity(total),
            versions: Vec::with_capacity(total),
            categories: Vec::with_capacity(total),
            ids: Vec::with_capacity(total),
            types: Vec::with_capacity(total),
            data: Vec::with_capacity(total),
            metadata: Vec::with_capacity(total),
            correlation: Vec::with_capacity(total),
            causation: Vec::with_capacity(total),
            last_names: Vec::with_capacity(appends.len()),
            last_versions: Vec::with_capacity(appends.len()),
            channel,
            appends: Vec::with_capacity(appends.len()),
        };
        for (stream, first_version, events) in appends {
            for (i, e) in events.iter().enumerate() {
                rows.streams.push(stream);
                rows.versions.push(first_version + i as i64);
                rows.categories.push(category_of(stream));
                rows.ids.push(e.id());
                rows.types.push(e.event_type());
                rows.data.push(&e.data()[..]);
                rows.metadata.push(&e.metadata()[..]);
                rows.correlation.push(e.correlation_id().unwrap_or(e.id()));
                rows.causation.push(e.causation_id().unwrap_or(e.id()));
            }
            rows.last_names.push(stream);
            rows.last_versions
                .push(first_version + events.len() as i64 - 1);
            rows.appends.push((*first_version, events.len() as i64));
        }
        rows
    }

    /// How many events the group writes.
    pub(crate) fn total(&self) -> i64 {
        self.total
    }

    /// The parameters of `write` (`$1` the number of events, `$13` the channel).
    pub(crate) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params = self.insert_params(&self.total);
        params.push(&self.channel);
        params
    }

    /// The parameters of `insert` at positions from `*first` (`$1`).
    pub(crate) fn insert_params<'p>(&'p self, first: &'p i64) -> Vec<&'p (dyn ToSql + Sync)> {
        vec![
            first,
            &self.streams,
            &self.versions,
            &self.categories,
            &self.ids,
            &self.types,
            &self.data,
            &self.metadata,
            &self.correlation,
            &self.causation,
            &self.last_names,
            &self.last_versions,
        ]
    }

    pub(crate) fn channel(&self) -> &str {
        self.channel
    }

    /// Each append's result when the group's first position is `first`.
    pub(crate) fn results(&self, first: i64) -> Vec<AppendResult> {
        let mut position = first;
        self.appends
            .iter()
            .map(|&(first_version, n)| {
                position += n;
                AppendResult {
                    next_expected_version: (first_version + n - 1) as u64,
                    position: (position - 1) as u64,
                }
            })
            .collect()
    }
}
