//! [`DocumentTx`]: the documents of one JSON document read model, read and written inside
//! a consumer's transaction. A write-back cache decodes each touched document once and
//! writes each changed one once per flush (two statements for all of them), however many
//! events of the batch touch it.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::ReadConfig;
use crate::error::{HandlerError, InvalidInput, storage};

/// One cached document: as loaded or last written, and whether it changed.
#[derive(Debug)]
struct Slot {
    current: Option<Value>,
    dirty: bool,
}

/// The bounds a [`DocumentTx`] checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DocLimits {
    pub doc_bytes_max: usize,
    pub key_bytes_max: usize,
    pub cached_docs_max: usize,
}

impl From<&ReadConfig> for DocLimits {
    fn from(c: &ReadConfig) -> Self {
        Self {
            doc_bytes_max: c.doc_bytes_max,
            key_bytes_max: c.key_bytes_max,
            cached_docs_max: c.tx_cached_docs_max.max(1),
        }
    }
}

/// The documents of read model `model` inside an open transaction. Nothing is written
/// until [`DocumentTx::flush`] (the document projection runner flushes before it
/// commits); dropping it unflushed discards the changes.
pub struct DocumentTx<'a, 't> {
    tx: &'a Transaction<'t>,
    model: String,
    limits: DocLimits,
    cache: HashMap<String, Slot>,
}

impl<'a, 't> DocumentTx<'a, 't> {
    /// The documents of `model` (any name; a document projection's name is its model's)
    /// with the bounds of `config`.
    pub fn new(tx: &'a Transaction<'t>, model: impl Into<String>, config: &ReadConfig) -> Self {
        Self::with_limits(tx, model.into(), config.into())
    }

    pub(crate) fn with_limits(tx: &'a Transaction<'t>, model: String, limits: DocLimits) -> Self {
        Self {
            tx,
            model,
            limits,
            cache: HashMap::new(),
        }
    }

    /// The transaction, for the handler's own SQL next to its documents.
    pub fn transaction(&self) -> &'a Transaction<'t> {
        self.tx
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn check_key(&self, key: &str) -> Result<(), InvalidInput> {
        if key.is_empty() {
            return Err(InvalidInput::EmptyKey);
        }
        if key.len() > self.limits.key_bytes_max {
            return Err(InvalidInput::KeyTooLong {
                len_bytes: key.len(),
                max_bytes: self.limits.key_bytes_max,
            });
        }
        Ok(())
    }

    /// Loads every key of `keys` not cached yet, in one query (a projection that knows
    /// which documents a batch touches saves a round trip per document).
    pub async fn prefetch(&mut self, keys: &[String]) -> Result<(), HandlerError> {
        let mut missing: Vec<&str> = Vec::new();
        for key in keys {
            self.check_key(key)?;
            if !self.cache.contains_key(key.as_str()) {
                missing.push(key);
            }
        }
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        if self.cache.len() + missing.len() > self.limits.cached_docs_max {
            self.spill().await?;
        }
        let stmt = self
            .tx
            .prepare_cached(
                "SELECT key, doc::text FROM documents WHERE model = $1 AND key = ANY($2::text[])",
            )
            .await
            .map_err(storage)?;
        let rows = self
            .tx
            .query(&stmt, &[&self.model, &missing])
            .await
            .map_err(storage)?;
        let mut found: HashMap<String, Value> = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = row.get(0);
            let text: String = row.get(1);
            found.insert(key, decode(&self.model, &text)?);
        }
        for key in missing {
            let current = found.remove(key);
            self.cache.insert(
                key.to_owned(),
                Slot {
                    current,
                    dirty: false,
                },
            );
        }
        Ok(())
    }

    /// The cached slot of `key`, loading it on first use.
    async fn slot(&mut self, key: &str) -> Result<&mut Slot, HandlerError> {
        self.check_key(key)?;
        if !self.cache.contains_key(key) {
            if self.cache.len() >= self.limits.cached_docs_max {
                self.spill().await?;
            }
            let stmt = self
                .tx
                .prepare_cached("SELECT doc::text FROM documents WHERE model = $1 AND key = $2")
                .await
                .map_err(storage)?;
            let row = self
                .tx
                .query_opt(&stmt, &[&self.model, &key])
                .await
                .map_err(storage)?;
            let current = match row {
                Some(row) => Some(decode(&self.model, row.get::<_, &str>(0))?),
                None => None,
            };
            self.cache.insert(
                key.to_owned(),
                Slot {
                    current,
                    dirty: false,
                },
            );
        }
        Ok(self.cache.get_mut(key).expect("inserted above"))
    }

    /// The document at `key`, as this transaction left it so far.
    pub async fn get(&mut self, key: &str) -> Result<Option<&Value>, HandlerError> {
        Ok(self.slot(key).await?.current.as_ref())
    }

    /// The document at `key` decoded as `T`.
    pub async fn get_as<T: DeserializeOwned>(
        &mut self,
        key: &str,
    ) -> Result<Option<T>, HandlerError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(v) => Ok(Some(T::deserialize(v)?)),
        }
    }

    /// The document at `key` for in-place change: `None` is absent; assign `Some(..)` to
    /// create, `None` to delete.
    pub async fn document_mut(&mut self, key: &str) -> Result<&mut Option<Value>, HandlerError> {
        let slot = self.slot(key).await?;
        slot.dirty = true;
        Ok(&mut slot.current)
    }

    /// Creates or replaces the document at `key` (without reading it first).
    pub async fn put(&mut self, key: &str, doc: Value) -> Result<(), HandlerError> {
        self.check_key(key)?;
        if !self.cache.contains_key(key) && self.cache.len() >= self.limits.cached_docs_max {
            self.spill().await?;
        }
        self.cache.insert(
            key.to_owned(),
            Slot {
                current: Some(doc),
                dirty: true,
            },
        );
        Ok(())
    }

    /// Creates or replaces the document at `key` with `doc` serialized to JSON.
    pub async fn put_as<T: Serialize>(&mut self, key: &str, doc: &T) -> Result<(), HandlerError> {
        self.put(key, serde_json::to_value(doc)?).await
    }

    /// Deletes the document at `key`; `true` when it existed.
    pub async fn delete(&mut self, key: &str) -> Result<bool, HandlerError> {
        Ok(self.document_mut(key).await?.take().is_some())
    }

    /// Writes the changed documents into the transaction, then forgets every cached one.
    async fn spill(&mut self) -> Result<(), HandlerError> {
        self.flush().await?;
        self.cache.clear();
        Ok(())
    }

    /// Writes every changed document into the transaction: one upsert for the present
    /// ones, one delete for the removed ones, in key order (so that concurrent writers of
    /// one model lock rows in the same order).
    pub async fn flush(&mut self) -> Result<(), HandlerError> {
        let mut dirty: Vec<(&String, &mut Slot)> =
            self.cache.iter_mut().filter(|(_, s)| s.dirty).collect();
        if dirty.is_empty() {
            return Ok(());
        }
        dirty.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut put_keys: Vec<&str> = Vec::new();
        let mut put_docs: Vec<String> = Vec::new();
        let mut deleted: Vec<&str> = Vec::new();
        for (key, slot) in &dirty {
            match &slot.current {
                Some(doc) => {
                    let text = serde_json::to_string(doc)?;
                    if text.len() > self.limits.doc_bytes_max {
                        return Err(InvalidInput::DocTooLarge {
                            key: (*key).clone(),
                            size_bytes: text.len(),
                            max_bytes: self.limits.doc_bytes_max,
                        }
                        .into());
                    }
                    put_keys.push(key);
                    put_docs.push(text);
                }
                None => deleted.push(key),
            }
        }
        if !put_keys.is_empty() {
            let stmt = self
                .tx
                .prepare_cached(
                    "INSERT INTO documents (model, key, doc)
                     SELECT $1, t.key, t.doc::jsonb FROM UNNEST($2::text[], $3::text[]) AS t(key, doc)
                     ON CONFLICT (model, key) DO UPDATE SET doc = EXCLUDED.doc",
                )
                .await
                .map_err(storage)?;
            self.tx
                .execute(&stmt, &[&self.model, &put_keys, &put_docs])
                .await
                .map_err(storage)?;
        }
        if !deleted.is_empty() {
            let stmt = self
                .tx
                .prepare_cached("DELETE FROM documents WHERE model = $1 AND key = ANY($2::text[])")
                .await
                .map_err(storage)?;
            self.tx
                .execute(&stmt, &[&self.model, &deleted])
                .await
                .map_err(storage)?;
        }
        for (_, slot) in dirty {
            slot.dirty = false;
        }
        Ok(())
    }
}

fn decode(model: &str, text: &str) -> Result<Value, HandlerError> {
    serde_json::from_str(text)
        .map_err(|e| HandlerError::fatal(format!("a document of {model} does not decode: {e}")))
}
