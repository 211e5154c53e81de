//! The inbox: per consumer, the ids of the last `inbox_ids_max` events it processed,
//! recorded in the same redb transaction as its checkpoint and its read-model writes, so
//! that a repeated delivery is recognised and its effects happen once.
//!
//! Why a bounded inbox is enough: a consumer commits its checkpoint together with the ids.
//! A redelivered event is either at or below the committed checkpoint (the consumer
//! skips it by position) or among the events delivered after it, of which at most the
//! delivery window is in flight (a consumer group's `in_flight_max`, a batch). As long as
//! `inbox_ids_max` is at least that window, every redelivery the checkpoint does not
//! cover is still in the inbox. Evicting the oldest ids therefore never lets a duplicate
//! through; it only bounds the table. Configure `inbox_ids_max` ≥ the largest window a
//! consumer can have outstanding.

use eventum_core::{EventId, StorageError};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::error::db_error;

/// (consumer, event id) → sequence number.
const INBOX_IDS: TableDefinition<(&str, u128), u64> = TableDefinition::new("inbox_ids");
/// (consumer, sequence number) → event id; oldest first.
const INBOX_SEQ: TableDefinition<(&str, u64), u128> = TableDefinition::new("inbox_seq");
/// Consumer → (next sequence number, ids kept).
const INBOX_META: TableDefinition<&str, (u64, u64)> = TableDefinition::new("inbox_meta");

/// The inbox tables opened in one write transaction.
pub(crate) struct Inbox<'t> {
    ids: Table<'t, (&'static str, u128), u64>,
    seq: Table<'t, (&'static str, u64), u128>,
    meta: Table<'t, &'static str, (u64, u64)>,
    ids_max: u64,
}

impl<'t> Inbox<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction, ids_max: u64) -> Result<Self, StorageError> {
        Ok(Self {
            ids: txn.open_table(INBOX_IDS).map_err(db_error)?,
            seq: txn.open_table(INBOX_SEQ).map_err(db_error)?,
            meta: txn.open_table(INBOX_META).map_err(db_error)?,
            ids_max: ids_max.max(1),
        })
    }

    /// Whether `consumer` has recorded `id` (and not evicted it yet).
    pub(crate) fn contains(&self, consumer: &str, id: EventId) -> Result<bool, StorageError> {
        Ok(self
            .ids
            .get((consumer, id.as_u128()))
            .map_err(db_error)?
            .is_some())
    }

    /// Records `id` for `consumer`; `false` when it was recorded already (skip the event).
    /// Evicts the oldest ids beyond the bound.
    pub(crate) fn check_and_record(
        &mut self,
        consumer: &str,
        id: EventId,
    ) -> Result<bool, StorageError> {
        if self.contains(consumer, id)? {
            return Ok(false);
        }
        let (seq_next, mut count) = self
            .meta
            .get(consumer)
            .map_err(db_error)?
            .map_or((0, 0), |g| g.value());
        self.ids
            .insert((consumer, id.as_u128()), seq_next)
            .map_err(db_error)?;
        self.seq
            .insert((consumer, seq_next), id.as_u128())
            .map_err(db_error)?;
        count += 1;
        while count > self.ids_max {
            let oldest = self
                .seq
                .range((consumer, 0u64)..=(consumer, u64::MAX))
                .map_err(db_error)?
                .next()
                .transpose()
                .map_err(db_error)?
                .map(|(k, v)| (k.value().1, v.value()));
            let Some((seq, old_id)) = oldest else { break };
            self.seq.remove((consumer, seq)).map_err(db_error)?;
            self.ids.remove((consumer, old_id)).map_err(db_error)?;
            count -= 1;
        }
        self.meta
            .insert(consumer, (seq_next + 1, count))
            .map_err(db_error)?;
        Ok(true)
    }
}

/// Forgets every id of `consumer` (a dropped projection generation).
pub(crate) fn clear(txn: &WriteTransaction, consumer: &str) -> Result<(), StorageError> {
    let mut inbox = Inbox::open(txn, 1)?;
    inbox
        .seq
        .retain_in((consumer, 0u64)..=(consumer, u64::MAX), |_, _| false)
        .map_err(db_error)?;
    inbox
        .ids
        .retain_in((consumer, 0u128)..=(consumer, u128::MAX), |_, _| false)
        .map_err(db_error)?;
    inbox.meta.remove(consumer).map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::Database;
    use uuid::Uuid;

    #[test]
    fn records_once_evicts_oldest_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
        let txn = db.begin_write().unwrap();
        {
            let mut inbox = Inbox::open(&txn, 3).unwrap();
            for id in &ids {
                assert!(inbox.check_and_record("c", *id).unwrap());
            }
            assert!(!inbox.check_and_record("c", ids[5]).unwrap(), "seen");
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(inbox.contains("c", *id).unwrap(), i >= 3, "id {i}");
            }
            assert!(inbox.check_and_record("other", ids[5]).unwrap());
        }
        clear(&txn, "c").unwrap();
        {
            let inbox = Inbox::open(&txn, 3).unwrap();
            assert!(ids.iter().all(|id| !inbox.contains("c", *id).unwrap()));
            assert!(inbox.contains("other", ids[5]).unwrap());
        }
        txn.commit().unwrap();
    }
}
