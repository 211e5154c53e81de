//! [`ReadModelStore`]: the embedded read-model database (one redb file in a directory the
//! caller gives). It answers queries from each read model's active generation, runs
//! general transactions, and keeps track of which projections run in this process.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{Database, DatabaseError, ReadableDatabase, WriteTransaction};
use serde_json::Value;

use crate::config::StoreConfig;
use crate::error::{InvalidRequest, OpenError, QueryError, RunError, TxError, corrupt, db_error};
use crate::model::{Lookup, check_consumer_name, check_lookups, check_name};
use crate::tables::{
    CURSORS, DocsDef, LookupsDef, MODELS, ModelRow, Owner, docs_table_name, lookups_table_name,
    projection_consumer, read_row, write_row,
};
use crate::tx::StoreTx;

/// The file name of the database inside the caller's directory.
pub const DB_FILE: &str = "readmodels.redb";

/// One document and its key.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub key: String,
    pub doc: Value,
}

/// A read model's registry entry, as queries see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub version: u64,
    /// The generation queries read.
    pub generation: u64,
    /// `(generation, version)` being built while the active one serves.
    pub building: Option<(u64, u64)>,
    /// The active generation's checkpoint: every event below it has been applied.
    pub position_next: u64,
    pub events_applied: u64,
}

/// The embedded read-model store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct ReadModelStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    config: Arc<StoreConfig>,
    path: PathBuf,
    /// Read models a runner of this process drives (one driver per model).
    claims: Mutex<HashSet<String>>,
}

impl ReadModelStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Self, OpenError> {
        let dir = dir.as_ref();
        let path = dir.join(DB_FILE);
        let io = |message: String| OpenError::Io {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(format!("creating the directory: {e}")))?;
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(&path)
            .map_err(|e| match e {
                DatabaseError::DatabaseAlreadyOpen => OpenError::Locked { path: path.clone() },
                other => io(other.to_string()),
            })?;
        let txn = db.begin_write().map_err(|e| io(e.to_string()))?;
        txn.open_table(MODELS).map_err(|e| io(e.to_string()))?;
        txn.open_table(CURSORS).map_err(|e| io(e.to_string()))?;
        txn.commit().map_err(|e| io(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                config: Arc::new(config),
                path,
                claims: Mutex::new(HashSet::new()),
            }),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub(crate) fn config_arc(&self) -> Arc<StoreConfig> {
        self.inner.config.clone()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Runs `f` in one write transaction and commits it durably when `f` returns `Ok`;
    /// on `Err` nothing is written. Inbox ids, checkpoints and documents written through
    /// the [`StoreTx`] land together or not at all. Blocking (it waits for redb's single
    /// writer and for the fsync): from async code call it inside `spawn_blocking`.
    pub fn transaction<T, E: From<TxError>>(
        &self,
        f: impl FnOnce(&mut StoreTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self
            .inner
            .db
            .begin_write()
            .map_err(|e| TxError::Storage(db_error(e)))?;
        let result = {
            let mut tx = StoreTx::new(&txn, self.inner.config.clone());
            let out = f(&mut tx)?;
            tx.finish()?;
            out
        };
        txn.commit().map_err(|e| TxError::Storage(db_error(e)))?;
        Ok(result)
    }

    /// [`ReadModelStore::transaction`] on the blocking pool, for async callers (a
    /// consumer-group handler, a saga).
    pub async fn transaction_async<T, E>(
        &self,
        f: impl FnOnce(&mut StoreTx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<TxError> + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.transaction(f)).await {
            Ok(result) => result,
            Err(e) => Err(TxError::Storage(eventum_core::StorageError::new(
                eventum_core::StorageErrorKind::Io,
                format!("read-model transaction task failed: {e}"),
            ))
            .into()),
        }
    }

    /// Defines a read model written by user code through [`StoreTx`] (not by a
    /// projection). Idempotent; a model of that name with other lookups, or one a
    /// projection owns, is refused.
    pub fn define_model(&self, model: &str, lookups: Vec<Lookup>) -> Result<(), TxError> {
        check_name("read model", model)?;
        check_lookups(&lookups)?;
        let txn = self.inner.db.begin_write().map_err(db_error)?;
        let existing = {
            let table = txn.open_table(MODELS).map_err(db_error)?;
            read_row(&table, model)?
        };
        match existing {
            Some(row) if row.owner != Owner::User => {
                return Err(TxError::ModelOwnedByProjection {
                    model: model.to_owned(),
                });
            }
            Some(row) if row.lookups != lookups => {
                return Err(TxError::ModelMismatch {
                    model: model.to_owned(),
                });
            }
            Some(_) => return Ok(()),
            None => {}
        }
        let row = ModelRow {
            owner: Owner::User,
            version: 0,
            generation: 1,
            lookups,
            building: None,
        };
        write_row(&txn, model, &row)?;
        create_generation_tables(&txn, model, 1)?;
        txn.commit().map_err(db_error)?;
        Ok(())
    }

    fn check_limit(&self, limit: usize) -> Result<(), InvalidRequest> {
        let max = self.inner.config.query_limit_max;
        if limit == 0 || limit > max {
            return Err(InvalidRequest::LimitOutOfRange { limit, max });
        }
        Ok(())
    }

    fn active_row(&self, txn: &redb::ReadTransaction, model: &str) -> Result<ModelRow, QueryError> {
        check_name("read model", model)?;
        let table = txn.open_table(MODELS).map_err(db_error)?;
        read_row(&table, model)?.ok_or_else(|| QueryError::ModelNotFound {
            model: model.to_owned(),
        })
    }

    /// The document at `key` of the active generation of `model`.
    pub fn get(&self, model: &str, key: &str) -> Result<Option<Value>, QueryError> {
        let txn = self.inner.db.begin_read().map_err(db_error)?;
        let row = self.active_row(&txn, model)?;
        let name = docs_table_name(model, row.generation);
        let docs = txn.open_table(DocsDef::new(&name)).map_err(db_error)?;
        match docs.get(key).map_err(db_error)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode(model, key, bytes.value())?)),
        }
    }

    /// Up to `limit` documents in key order, starting at `from_key` (inclusive).
    pub fn list(
        &self,
        model: &str,
        from_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Document>, QueryError> {
        self.check_limit(limit)?;
        let txn = self.inner.db.begin_read().map_err(db_error)?;
        let row = self.active_row(&txn, model)?;
        let name = docs_table_name(model, row.generation);
        let docs = txn.open_table(DocsDef::new(&name)).map_err(db_error)?;
        let mut out = Vec::new();
        for item in docs.range(from_key.unwrap_or("")..).map_err(db_error)? {
            let (k, v) = item.map_err(db_error)?;
            out.push(Document {
                key: k.value().to_owned(),
                doc: decode(model, k.value(), v.value())?,
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `limit` documents whose lookup `lookup` has `value`, in key order, starting
    /// at `from_key` (inclusive).
    pub fn find(
        &self,
        model: &str,
        lookup: &str,
        value: &str,
        from_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Document>, QueryError> {
        self.check_limit(limit)?;
        let txn = self.inner.db.begin_read().map_err(db_error)?;
        let row = self.active_row(&txn, model)?;
        if !row.lookups.iter().any(|l| l.name == lookup) {
            return Err(InvalidRequest::UnknownLookup {
                model: model.to_owned(),
                lookup: lookup.to_owned(),
            }
            .into());
        }
        let lookups_name = lookups_table_name(model, row.generation);
        let lookups = txn
            .open_table(LookupsDef::new(&lookups_name))
            .map_err(db_error)?;
        let docs_name = docs_table_name(model, row.generation);
        let docs = txn.open_table(DocsDef::new(&docs_name)).map_err(db_error)?;
        let mut out = Vec::new();
        let start = (lookup, value, from_key.unwrap_or(""));
        for item in lookups.range(start..).map_err(db_error)? {
            let (k, _) = item.map_err(db_error)?;
            let (l, v, key) = k.value();
            if l != lookup || v != value {
                break;
            }
            let bytes = docs.get(key).map_err(db_error)?.ok_or_else(|| {
                corrupt(format!("lookup {lookup} of {model} names missing {key:?}"))
            })?;
            out.push(Document {
                key: key.to_owned(),
                doc: decode(model, key, bytes.value())?,
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// The registry entry of `model`, if it exists.
    pub fn model_info(&self, model: &str) -> Result<Option<ModelInfo>, QueryError> {
        let txn = self.inner.db.begin_read().map_err(db_error)?;
        let row = match self.active_row(&txn, model) {
            Ok(row) => row,
            Err(QueryError::ModelNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let cursors = txn.open_table(CURSORS).map_err(db_error)?;
        let consumer = projection_consumer(model, row.generation);
        let (position_next, events_applied, _) = cursors
            .get(consumer.as_str())
            .map_err(db_error)?
            .map_or((0, 0, 0), |g| g.value());
        Ok(Some(ModelInfo {
            version: row.version,
            generation: row.generation,
            building: row.building.map(|b| (b.generation, b.version)),
            position_next,
            events_applied,
        }))
    }

    /// A user consumer's committed checkpoint.
    pub fn checkpoint(&self, consumer: &str) -> Result<Option<u64>, QueryError> {
        check_consumer_name(consumer)?;
        let txn = self.inner.db.begin_read().map_err(db_error)?;
        let cursors = txn.open_table(CURSORS).map_err(db_error)?;
        Ok(cursors
            .get(consumer)
            .map_err(db_error)?
            .map(|g| g.value().0))
    }

    /// Marks `model` as driven by a runner of this process until the claim drops.
    pub(crate) fn claim(&self, model: &str) -> Result<Claim, RunError> {
        let mut claims = self.inner.claims.lock().expect("claims lock poisoned");
        if !claims.insert(model.to_owned()) {
            return Err(RunError::Busy {
                model: model.to_owned(),
            });
        }
        Ok(Claim {
            store: self.clone(),
            model: model.to_owned(),
        })
    }
}

/// One runner's hold on a read model.
pub(crate) struct Claim {
    store: ReadModelStore,
    model: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut claims) = self.store.inner.claims.lock() {
            claims.remove(&self.model);
        }
    }
}

/// Creates a generation's (empty) tables, so that queries find them at once.
pub(crate) fn create_generation_tables(
    txn: &WriteTransaction,
    model: &str,
    generation: u64,
) -> Result<(), eventum_core::StorageError> {
    let docs = docs_table_name(model, generation);
    let lookups = lookups_table_name(model, generation);
    txn.open_table(DocsDef::new(&docs)).map_err(db_error)?;
    txn.open_table(LookupsDef::new(&lookups))
        .map_err(db_error)?;
    Ok(())
}

fn decode(model: &str, key: &str, bytes: &[u8]) -> Result<Value, QueryError> {
    serde_json::from_slice(bytes)
        .map_err(|e| corrupt(format!("document {key:?} of {model}: {e}")).into())
}
