//! Document writes of one read-model generation inside a write transaction: a write-back
//! cache of decoded documents (each touched document is decoded once and encoded once per
//! flush, however many events touch it) and the upkeep of its lookups, which always
//! match the documents stored in the same transaction.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};
use serde_json::Value;

use crate::config::StoreConfig;
use crate::error::{InvalidRequest, TxError, corrupt, db_error};
use crate::model::Lookup;
use crate::tables::{
    DocsDef, DocsTable, LookupsDef, LookupsTable, docs_table_name, lookups_table_name,
};

/// One cached document.
#[derive(Clone, Debug)]
struct Slot {
    /// The lookup values of the stored version, `(lookup index, value)`, sorted.
    stored_lookups: Vec<(usize, String)>,
    current: Option<Value>,
    dirty: bool,
}

/// Decoded documents of one generation. A projection runner keeps it between batches
/// (it is the only writer of its generation); it is discarded after a failed batch.
#[derive(Debug, Default)]
pub(crate) struct DocCache {
    entries: HashMap<String, Slot>,
    /// The keys of the dirty entries: a flush visits these, not the whole cache.
    dirty: Vec<String>,
}

impl DocCache {
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.dirty.clear();
    }
}

/// A generation's document and lookup tables, open in one write transaction.
pub(crate) struct Documents<'t> {
    model: String,
    docs: DocsTable<'t>,
    lookups: LookupsTable<'t>,
    defs: Arc<[Lookup]>,
    config: Arc<StoreConfig>,
    cache: DocCache,
    /// Most documents kept decoded; beyond it, pending writes go into the transaction
    /// and the cache starts over.
    entries_max: usize,
}

impl<'t> Documents<'t> {
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        model: &str,
        generation: u64,
        defs: Arc<[Lookup]>,
        config: Arc<StoreConfig>,
        cache: DocCache,
        entries_max: usize,
    ) -> Result<Self, TxError> {
        let docs_name = docs_table_name(model, generation);
        let lookups_name = lookups_table_name(model, generation);
        Ok(Self {
            model: model.to_owned(),
            docs: txn.open_table(DocsDef::new(&docs_name)).map_err(db_error)?,
            lookups: txn
                .open_table(LookupsDef::new(&lookups_name))
                .map_err(db_error)?,
            defs,
            config,
            cache,
            entries_max: entries_max.max(1),
        })
    }

    fn check_key(&self, key: &str) -> Result<(), InvalidRequest> {
        if key.is_empty() {
            return Err(InvalidRequest::EmptyKey);
        }
        if key.len() > self.config.key_bytes_max {
            return Err(InvalidRequest::KeyTooLong {
                len_bytes: key.len(),
                max_bytes: self.config.key_bytes_max,
            });
        }
        Ok(())
    }

    /// The cached slot of `key`, loading it from the table on first use.
    fn slot(&mut self, key: &str) -> Result<&mut Slot, TxError> {
        self.check_key(key)?;
        if !self.cache.entries.contains_key(key) {
            if self.cache.entries.len() >= self.entries_max {
                // Bound memory: write what is pending into the transaction and start over.
                self.flush()?;
                self.cache.clear();
            }
            let current = match self.docs.get(key).map_err(db_error)? {
                None => None,
                Some(bytes) => Some(
                    serde_json::from_slice::<Value>(bytes.value())
                        .map_err(|e| corrupt(format!("document {key:?} of {}: {e}", self.model)))?,
                ),
            };
            let stored_lookups = match &current {
                Some(doc) => lookup_values(&self.defs, &self.config, key, doc)?,
                None => Vec::new(),
            };
            self.cache.entries.insert(
                key.to_owned(),
                Slot {
                    stored_lookups,
                    current,
                    dirty: false,
                },
            );
        }
        Ok(self.cache.entries.get_mut(key).expect("inserted above"))
    }

    pub(crate) fn get(&mut self, key: &str) -> Result<Option<&Value>, TxError> {
        Ok(self.slot(key)?.current.as_ref())
    }

    /// The document at `key` for in-place change; `None` means absent (set it to create,
    /// set it to `None` to delete).
    pub(crate) fn slot_mut(&mut self, key: &str) -> Result<&mut Option<Value>, TxError> {
        let slot = self.slot(key)?;
        if !slot.dirty {
            slot.dirty = true;
            self.cache.dirty.push(key.to_owned());
        }
        let slot = self.cache.entries.get_mut(key).expect("loaded above");
        Ok(&mut slot.current)
    }

    pub(crate) fn put(&mut self, key: &str, doc: Value) -> Result<(), TxError> {
        *self.slot_mut(key)? = Some(doc);
        Ok(())
    }

    pub(crate) fn delete(&mut self, key: &str) -> Result<bool, TxError> {
        Ok(self.slot_mut(key)?.take().is_some())
    }

    /// Writes every changed document and its lookups into the transaction.
    pub(crate) fn flush(&mut self) -> Result<(), TxError> {
        let Self {
            docs,
            lookups,
            defs,
            config,
            cache,
            ..
        } = self;
        // In key order, so that the B-tree is walked once from left to right instead of
        // jumping between leaves.
        let mut dirty = std::mem::take(&mut cache.dirty);
        dirty.sort_unstable();
        let mut bytes = Vec::new();
        for key in &dirty {
            let slot = cache.entries.get_mut(key).expect("a dirty key is cached");
            let new_lookups = match &slot.current {
                Some(doc) => {
                    let values = lookup_values(defs, config, key, doc)?;
                    bytes.clear();
                    serde_json::to_writer(&mut bytes, doc).expect("a JSON value serializes");
                    if bytes.len() > config.doc_bytes_max {
                        return Err(InvalidRequest::DocTooLarge {
                            key: key.clone(),
                            size_bytes: bytes.len(),
                            max_bytes: config.doc_bytes_max,
                        }
                        .into());
                    }
                    docs.insert(key.as_str(), bytes.as_slice())
                        .map_err(db_error)?;
                    values
                }
                None => {
                    docs.remove(key.as_str()).map_err(db_error)?;
                    Vec::new()
                }
            };
            let has = |set: &[(usize, String)], (i, v): &(usize, String)| {
                set.binary_search_by(|(j, w)| (j, w.as_str()).cmp(&(i, v.as_str())))
                    .is_ok()
            };
            for entry in &slot.stored_lookups {
                if !has(&new_lookups, entry) {
                    let name = defs[entry.0].name.as_str();
                    lookups
                        .remove((name, entry.1.as_str(), key.as_str()))
                        .map_err(db_error)?;
                }
            }
            for entry in &new_lookups {
                if !has(&slot.stored_lookups, entry) {
                    let name = defs[entry.0].name.as_str();
                    lookups
                        .insert((name, entry.1.as_str(), key.as_str()), ())
                        .map_err(db_error)?;
                }
            }
            slot.stored_lookups = new_lookups;
            slot.dirty = false;
        }
        Ok(())
    }

    /// Flushes and hands the cache back for the next batch.
    pub(crate) fn finish(mut self) -> Result<DocCache, TxError> {
        self.flush()?;
        Ok(std::mem::take(&mut self.cache))
    }
}

/// The lookup values of `doc`, sorted, checked against the bounds.
fn lookup_values(
    defs: &[Lookup],
    config: &StoreConfig,
    key: &str,
    doc: &Value,
) -> Result<Vec<(usize, String)>, InvalidRequest> {
    let mut out = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let values = def.values(doc);
        if values.len() > config.lookup_values_per_doc_max {
            return Err(InvalidRequest::TooManyLookupValues {
                key: key.to_owned(),
                lookup: def.name.clone(),
                count: values.len(),
                max: config.lookup_values_per_doc_max,
            });
        }
        for v in values {
            if v.len() > config.lookup_value_bytes_max {
                return Err(InvalidRequest::LookupValueTooLong {
                    lookup: def.name.clone(),
                    len_bytes: v.len(),
                    max_bytes: config.lookup_value_bytes_max,
                });
            }
            out.push((i, v));
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase};
    use serde_json::json;

    fn lookup_rows(db: &Database) -> Vec<(String, String, String)> {
        let txn = db.begin_read().unwrap();
        let name = lookups_table_name("m", 1);
        let table = txn.open_table(LookupsDef::new(&name)).unwrap();
        table
            .iter()
            .unwrap()
            .map(|r| {
                let (k, _) = r.unwrap();
                let (a, b, c) = k.value();
                (a.to_owned(), b.to_owned(), c.to_owned())
            })
            .collect()
    }

    #[test]
    fn lookups_follow_writes_and_a_full_cache_spills_into_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        let defs: Arc<[Lookup]> = vec![Lookup::field("by_s", "/s")].into();
        let config = Arc::new(StoreConfig::default());
        let txn = db.begin_write().unwrap();
        {
            // A cache of 2 documents for 5 keys: early spills must lose nothing.
            let mut docs = Documents::open(
                &txn,
                "m",
                1,
                defs.clone(),
                config.clone(),
                DocCache::default(),
                2,
            )
            .unwrap();
            for k in 0..5 {
                docs.put(&format!("k{k}"), json!({"s": "a"})).unwrap();
            }
            docs.put("k1", json!({"s": "b"})).unwrap();
            assert!(docs.delete("k2").unwrap());
            assert!(!docs.delete("absent").unwrap());
            docs.finish().unwrap();
        }
        txn.commit().unwrap();
        let rows = lookup_rows(&db);
        let expected: Vec<(String, String, String)> =
            [("a", "k0"), ("a", "k3"), ("a", "k4"), ("b", "k1")]
                .iter()
                .map(|(v, k)| ("by_s".to_owned(), v.to_string(), k.to_string()))
                .collect();
        assert_eq!(rows, expected);
    }
}
