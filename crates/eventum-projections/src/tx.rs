//! The two views of a read-model write transaction: [`ProjectionTx`], what a projection's
//! `apply` reads and writes its documents through, and [`StoreTx`], the general
//! transaction any consumer uses to commit its inbox, checkpoint and document writes
//! together.

use std::collections::HashMap;
use std::sync::Arc;

use eventum_core::EventId;
use redb::{ReadableTable, Table, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::StoreConfig;
use crate::docs::{DocCache, Documents};
use crate::error::{ProjectionError, TxError, db_error};
use crate::inbox::Inbox;
use crate::model::{check_consumer_name, check_name};
use crate::tables::{CURSORS, MODELS, Owner, read_row};

fn not_json(key: &str, e: serde_json::Error) -> ProjectionError {
    ProjectionError::rejected(format!("document {key:?}: {e}"))
}

/// A projection's access to its own read model during one batch. Documents are read by
/// key; lookups are for queries and are kept up to date automatically.
pub struct ProjectionTx<'t> {
    pub(crate) docs: Documents<'t>,
    pub(crate) txn: &'t WriteTransaction,
    pub(crate) inbox: Option<Inbox<'t>>,
    /// The generation's own consumer name, for its inbox.
    pub(crate) consumer: String,
    pub(crate) inbox_ids_max: u64,
}

impl<'t> ProjectionTx<'t> {
    /// The document at `key`, as this batch left it so far.
    pub fn get(&mut self, key: &str) -> Result<Option<&Value>, ProjectionError> {
        Ok(self.docs.get(key)?)
    }

    /// The document at `key` decoded as `T`.
    pub fn get_as<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, ProjectionError> {
        match self.docs.get(key)? {
            None => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|e| not_json(key, e)),
        }
    }

    /// Creates or replaces the document at `key`.
    pub fn put(&mut self, key: &str, doc: Value) -> Result<(), ProjectionError> {
        Ok(self.docs.put(key, doc)?)
    }

    /// Creates or replaces the document at `key` with `doc` serialized to JSON.
    pub fn put_as<T: Serialize>(&mut self, key: &str, doc: &T) -> Result<(), ProjectionError> {
        let value = serde_json::to_value(doc).map_err(|e| not_json(key, e))?;
        self.put(key, value)
    }

    /// Deletes the document at `key`; `true` when it existed.
    pub fn delete(&mut self, key: &str) -> Result<bool, ProjectionError> {
        Ok(self.docs.delete(key)?)
    }

    /// The document at `key` for in-place change (the fast path for counters and
    /// summaries): `None` is absent; assign `Some(..)` to create, `None` to delete.
    pub fn document_mut(&mut self, key: &str) -> Result<&mut Option<Value>, ProjectionError> {
        Ok(self.docs.slot_mut(key)?)
    }

    /// Records `event_id` in this projection generation's inbox; `false` when it was
    /// recorded already. A projection following the log needs it only for effects keyed
    /// by something other than the position (its checkpoint already prevents replays).
    pub fn inbox_check_and_record(&mut self, event_id: EventId) -> Result<bool, ProjectionError> {
        if self.inbox.is_none() {
            self.inbox = Some(Inbox::open(self.txn, self.inbox_ids_max)?);
        }
        let inbox = self.inbox.as_mut().expect("opened above");
        Ok(inbox.check_and_record(&self.consumer, event_id)?)
    }

    pub(crate) fn finish(self) -> Result<DocCache, TxError> {
        drop(self.inbox);
        self.docs.finish()
    }
}

/// A general read-model transaction (see [`crate::ReadModelStore::transaction`]): inbox,
/// checkpoints and documents of user-defined read models, committed together durably.
pub struct StoreTx<'t> {
    txn: &'t WriteTransaction,
    config: Arc<StoreConfig>,
    inbox: Option<Inbox<'t>>,
    cursors: Option<Table<'t, &'static str, (u64, u64, u64)>>,
    models: HashMap<String, Documents<'t>>,
}

impl<'t> StoreTx<'t> {
    pub(crate) fn new(txn: &'t WriteTransaction, config: Arc<StoreConfig>) -> Self {
        Self {
            txn,
            config,
            inbox: None,
            cursors: None,
            models: HashMap::new(),
        }
    }

    fn inbox(&mut self) -> Result<&mut Inbox<'t>, TxError> {
        if self.inbox.is_none() {
            self.inbox = Some(Inbox::open(self.txn, self.config.inbox_ids_max)?);
        }
        Ok(self.inbox.as_mut().expect("opened above"))
    }

    fn cursors(&mut self) -> Result<&mut Table<'t, &'static str, (u64, u64, u64)>, TxError> {
        if self.cursors.is_none() {
            self.cursors = Some(self.txn.open_table(CURSORS).map_err(db_error)?);
        }
        Ok(self.cursors.as_mut().expect("opened above"))
    }

    /// Records that `consumer` processed `event_id`; `false` when it had already (skip
    /// the event: its effects are in the store). Kept for the last `inbox_ids_max` ids.
    pub fn inbox_check_and_record(
        &mut self,
        consumer: &str,
        event_id: EventId,
    ) -> Result<bool, TxError> {
        check_consumer_name(consumer)?;
        Ok(self.inbox()?.check_and_record(consumer, event_id)?)
    }

    /// Whether `consumer` has recorded `event_id` (and not evicted it yet).
    pub fn inbox_contains(&mut self, consumer: &str, event_id: EventId) -> Result<bool, TxError> {
        check_consumer_name(consumer)?;
        Ok(self.inbox()?.contains(consumer, event_id)?)
    }

    /// The consumer's checkpoint: the position it will process next.
    pub fn checkpoint(&mut self, consumer: &str) -> Result<Option<u64>, TxError> {
        check_consumer_name(consumer)?;
        let table = self.cursors()?;
        Ok(table.get(consumer).map_err(db_error)?.map(|g| g.value().0))
    }

    /// Sets the consumer's checkpoint (the position it will process next).
    pub fn set_checkpoint(&mut self, consumer: &str, position_next: u64) -> Result<(), TxError> {
        check_consumer_name(consumer)?;
        self.cursors()?
            .insert(consumer, (position_next, 0, 0))
            .map_err(db_error)?;
        Ok(())
    }

    fn model(&mut self, model: &str) -> Result<&mut Documents<'t>, TxError> {
        if !self.models.contains_key(model) {
            check_name("read model", model)?;
            let row = {
                let table = self.txn.open_table(MODELS).map_err(db_error)?;
                read_row(&table, model)?
            };
            let row = row.ok_or_else(|| TxError::ModelNotFound {
                model: model.to_owned(),
            })?;
            if row.owner != Owner::User {
                return Err(TxError::ModelOwnedByProjection {
                    model: model.to_owned(),
                });
            }
            let docs = Documents::open(
                self.txn,
                model,
                row.generation,
                row.lookups.into(),
                self.config.clone(),
                DocCache::default(),
                self.config.tx_cached_docs_max,
            )?;
            self.models.insert(model.to_owned(), docs);
        }
        Ok(self.models.get_mut(model).expect("inserted above"))
    }

    /// The document at `key` of the user-defined read model `model`.
    pub fn get(&mut self, model: &str, key: &str) -> Result<Option<Value>, TxError> {
        Ok(self.model(model)?.get(key)?.cloned())
    }

    /// Creates or replaces a document of the user-defined read model `model`.
    pub fn put(&mut self, model: &str, key: &str, doc: Value) -> Result<(), TxError> {
        self.model(model)?.put(key, doc)
    }

    /// Deletes a document; `true` when it existed.
    pub fn delete(&mut self, model: &str, key: &str) -> Result<bool, TxError> {
        self.model(model)?.delete(key)
    }

    /// Writes the pending documents; called before the commit.
    pub(crate) fn finish(self) -> Result<(), TxError> {
        for (_, docs) in self.models {
            docs.finish()?;
        }
        Ok(())
    }
}
