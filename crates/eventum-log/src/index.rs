//! The persisted index: stream → version → (position, offset), category → position →
//! offset, a sparse position → offset map for `$all`, and each stream's state. It lives in
//! a redb file beside the log and is only a cache of the log: it records how far it has
//! indexed, and whatever it lacks is rebuilt from the log on open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use eventum_core::{StorageError, StorageErrorKind, StreamMetadata, category_of};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::OpenError;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");
/// (stream no, first version) → packed `(position, offset)` pairs (16 bytes each) of
/// consecutive versions. One run per stream per indexing transaction: a redb insert
/// rebuilds a whole leaf page, so indexing runs instead of single events keeps the cost
/// per transaction proportional to the streams it touches, not to its events.
const STREAM_RUNS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("stream_runs");
const CATEGORIES: TableDefinition<&str, u64> = TableDefinition::new("categories");
/// (category no, first position) → packed `(position, offset)` pairs in position order.
const CATEGORY_RUNS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("category_runs");
const SPARSE: TableDefinition<u64, u64> = TableDefinition::new("sparse");

/// Every `SPARSE_EVERY`th position has its offset recorded, so a `$all` read starts at
/// most this many records before its first wanted one.
pub const SPARSE_EVERY: u64 = 64;
/// Version of the index's own layout; an index of another version is rebuilt.
const INDEX_FORMAT_VERSION: u64 = 3;
const ROW_BYTES: usize = 26;
/// Most `(position, offset)` pairs in one run.
const RUN_ENTRIES_MAX: usize = 4096;
const RUN_ENTRY_BYTES: usize = 16;

/// How far the durable index reaches: everything before `next_position` is indexed, and
/// the log continues at `offset` of the segment starting at `segment_base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IndexTail {
    pub next_position: u64,
    pub segment_base: u64,
    pub offset: u64,
}

/// A stream's row.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StreamRow {
    pub stream_no: u64,
    pub last_version: Option<u64>,
    pub deleted: bool,
    pub metadata: StreamMetadata,
}

impl StreamRow {
    /// The stored form: stream no (u64), deleted (u8), metadata flags (u8), max_count
    /// (u64), max_age_s (u64). The last version is not stored here but read from the
    /// stream's last run, so appending never rewrites the row.
    fn encode(&self) -> [u8; ROW_BYTES] {
        let mut b = [0u8; ROW_BYTES];
        b[0..8].copy_from_slice(&self.stream_no.to_le_bytes());
        b[8] = u8::from(self.deleted);
        b[9] = u8::from(self.metadata.max_count.is_some())
            | (u8::from(self.metadata.max_age_s.is_some()) << 1);
        b[10..18].copy_from_slice(&self.metadata.max_count.unwrap_or(0).to_le_bytes());
        b[18..26].copy_from_slice(&self.metadata.max_age_s.unwrap_or(0).to_le_bytes());
        b
    }

    /// Decodes a stored row; `last_version` is left empty for the caller to fill.
    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != ROW_BYTES {
            return None;
        }
        let u = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        Some(Self {
            stream_no: u(0),
            last_version: None,
            deleted: b[8] != 0,
            metadata: StreamMetadata {
                max_count: (b[9] & 1 != 0).then(|| u(10)),
                max_age_s: (b[9] & 2 != 0).then(|| u(18)),
            },
        })
    }
}

#[derive(Clone, Debug)]
pub enum StreamChange {
    Deleted {
        target: String,
    },
    Metadata {
        target: String,
        metadata: StreamMetadata,
    },
}

/// One event as the index needs it.
#[derive(Clone, Debug)]
pub struct IndexEntry {
    pub position: u64,
    pub offset: u64,
    pub stream: String,
    pub version: u64,
    pub change: Option<StreamChange>,
}

pub struct Index {
    path: PathBuf,
    /// `None` once closed, so that a closed store releases the file even while
    /// subscriptions still hold the shared state.
    db: RwLock<Option<Database>>,
}

fn storage(e: impl std::fmt::Display) -> StorageError {
    StorageError::new(StorageErrorKind::Io, format!("index: {e}"))
}

fn closed() -> StorageError {
    StorageError::new(StorageErrorKind::Unavailable, "the store is shut down")
}

impl Index {
    /// Opens the index, or creates an empty one when it is missing, unreadable or of
    /// another layout version (it is rebuilt from the log afterwards).
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, OpenError> {
        let open = || Database::builder().set_cache_size(cache_bytes).create(path);
        let db = match open() {
            Ok(db) => db,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "index unreadable; rebuilding it from the log");
                std::fs::remove_file(path)
                    .map_err(|e| OpenError::io(format!("removing {}", path.display()), e))?;
                open().map_err(|e| OpenError::Index {
                    file: path.to_owned(),
                    reason: e.to_string(),
                })?
            }
        };
        let index = Self {
            path: path.to_owned(),
            db: RwLock::new(Some(db)),
        };
        let version = index
            .meta("format_version")
            .map_err(|e| index.open_error(e))?;
        if version.is_some_and(|v| v != INDEX_FORMAT_VERSION) {
            index.clear().map_err(|e| index.open_error(e))?;
        }
        Ok(index)
    }

    fn open_error(&self, e: StorageError) -> OpenError {
        OpenError::Index {
            file: self.path.clone(),
            reason: e.message,
        }
    }

    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let guard = self.db.read().expect("index lock poisoned");
        f(guard.as_ref().ok_or_else(closed)?)
    }

    /// Closes the file. Later calls fail with `unavailable`.
    pub fn close(&self) {
        self.db.write().expect("index lock poisoned").take();
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(storage)?;
            let table = match txn.open_table(META) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(storage(e)),
            };
            Ok(table.get(key).map_err(storage)?.map(|v| v.value()))
        })
    }

    /// How far the index reaches, or `None` for an empty index.
    pub fn tail(&self) -> Result<Option<IndexTail>, StorageError> {
        let Some(next_position) = self.meta("next_position")? else {
            return Ok(None);
        };
        Ok(Some(IndexTail {
            next_position,
            segment_base: self.meta("tail_segment_base")?.unwrap_or(0),
            offset: self.meta("tail_offset")?.unwrap_or(0),
        }))
    }

    /// Drops every entry (before a rebuild from the log).
    pub fn clear(&self) -> Result<(), StorageError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(storage)?;
            for t in [
                "meta",
                "streams",
                "stream_events",
                "stream_runs",
                "categories",
                "category_events",
                "category_runs",
                "sparse",
            ] {
                txn.delete_table(redb::TableDefinition::<&str, u64>::new(t))
                    .ok();
            }
            {
                let mut meta = txn.open_table(META).map_err(storage)?;
                meta.insert("format_version", INDEX_FORMAT_VERSION)
                    .map_err(storage)?;
            }
            txn.commit().map_err(storage)
        })
    }

    /// Indexes `entries` (consecutive positions) and records `tail` as the new reach. With
    /// `durable`, the index file is synced; otherwise the change is visible to readers at
    /// once but may be lost in a crash (and is then rebuilt from the log).
    pub fn apply(
        &self,
        entries: &[IndexEntry],
        tail: IndexTail,
        durable: bool,
    ) -> Result<(), StorageError> {
        self.with_db(|db| {
            let mut txn = db.begin_write().map_err(storage)?;
            txn.set_durability(if durable {
                Durability::Immediate
            } else {
                Durability::None
            })
            .map_err(storage)?;
            // Quick repair makes reopening after a crash fast, but costs every commit; only
            // durable commits are ever recovered to, so only they pay for it.
            txn.set_quick_repair(durable);
            {
                let mut meta = txn.open_table(META).map_err(storage)?;
                let mut streams = txn.open_table(STREAMS).map_err(storage)?;
                let mut stream_runs = txn.open_table(STREAM_RUNS).map_err(storage)?;
                let mut categories = txn.open_table(CATEGORIES).map_err(storage)?;
                let mut category_runs = txn.open_table(CATEGORY_RUNS).map_err(storage)?;
                let mut new_stream_runs = Runs::default();
                let mut new_category_runs = Runs::default();
                let mut sparse = txn.open_table(SPARSE).map_err(storage)?;
                let get_meta = |m: &redb::Table<&str, u64>, k: &str| -> Result<u64, StorageError> {
                    Ok(m.get(k).map_err(storage)?.map_or(0, |v| v.value()))
                };
                let mut next_stream_no = get_meta(&meta, "next_stream_no")?;
                let mut next_category_no = get_meta(&meta, "next_category_no")?;
                let mut rows: HashMap<String, RowSlot> = HashMap::new();
                let mut category_nos: HashMap<String, u64> = HashMap::new();
                for entry in entries {
                    let row = load_row(&streams, &mut rows, &entry.stream, &mut next_stream_no)?;
                    let stream_no = row.row.stream_no;
                    new_stream_runs.push(
                        stream_no,
                        entry.version,
                        entry.position,
                        entry.offset,
                        true,
                    );
                    let category = category_of(&entry.stream);
                    let category_no = match category_nos.get(category) {
                        Some(n) => *n,
                        None => {
                            let existing = categories
                                .get(category)
                                .map_err(storage)?
                                .map(|n| n.value());
                            let n = match existing {
                                Some(n) => n,
                                None => {
                                    let n = next_category_no;
                                    next_category_no += 1;
                                    categories.insert(category, n).map_err(storage)?;
                                    n
                                }
                            };
                            category_nos.insert(category.to_owned(), n);
                            n
                        }
                    };
                    new_category_runs.push(
                        category_no,
                        entry.position,
                        entry.position,
                        entry.offset,
                        false,
                    );
                    if entry.position % SPARSE_EVERY == 0 {
                        sparse
                            .insert(entry.position, entry.offset)
                            .map_err(storage)?;
                    }
                    match &entry.change {
                        Some(StreamChange::Deleted { target }) => {
                            let slot = load_row(&streams, &mut rows, target, &mut next_stream_no)?;
                            slot.row.deleted = true;
                            slot.dirty = true;
                        }
                        Some(StreamChange::Metadata { target, metadata }) => {
                            let slot = load_row(&streams, &mut rows, target, &mut next_stream_no)?;
                            slot.row.metadata = metadata.clone();
                            slot.dirty = true;
                        }
                        None => {}
                    }
                }
                for ((no, first), bytes) in &new_stream_runs.runs {
                    stream_runs
                        .insert((*no, *first), &bytes[..])
                        .map_err(storage)?;
                }
                for ((no, first), bytes) in &new_category_runs.runs {
                    category_runs
                        .insert((*no, *first), &bytes[..])
                        .map_err(storage)?;
                }
                for (name, slot) in rows.iter().filter(|(_, slot)| slot.dirty) {
                    streams
                        .insert(name.as_str(), &slot.row.encode()[..])
                        .map_err(storage)?;
                }
                meta.insert("format_version", INDEX_FORMAT_VERSION)
                    .map_err(storage)?;
                meta.insert("next_stream_no", next_stream_no)
                    .map_err(storage)?;
                meta.insert("next_category_no", next_category_no)
                    .map_err(storage)?;
                meta.insert("next_position", tail.next_position)
                    .map_err(storage)?;
                meta.insert("tail_segment_base", tail.segment_base)
                    .map_err(storage)?;
                meta.insert("tail_offset", tail.offset).map_err(storage)?;
            }
            txn.commit().map_err(storage)
        })
    }

    /// A stream's row, if the stream was ever written or described.
    pub fn stream_row(&self, name: &str) -> Result<Option<StreamRow>, StorageError> {
        let row = self
            .read(STREAMS, |t| {
                Ok(t.get(name)
                    .map_err(storage)?
                    .and_then(|v| StreamRow::decode(v.value())))
            })?
            .flatten();
        let Some(mut row) = row else { return Ok(None) };
        row.last_version = self
            .read(STREAM_RUNS, |t| {
                let last = t
                    .range((row.stream_no, 0)..=(row.stream_no, u64::MAX))
                    .map_err(storage)?
                    .next_back();
                Ok(match last {
                    Some(item) => {
                        let (k, v) = item.map_err(storage)?;
                        Some(k.value().1 + (v.value().len() / RUN_ENTRY_BYTES) as u64 - 1)
                    }
                    None => None,
                })
            })?
            .flatten();
        Ok(Some(row))
    }

    /// `(version, position, offset)` of a stream's events, from `from_version` in
    /// `direction`, at most `limit`.
    pub fn stream_events(
        &self,
        stream_no: u64,
        from_version: u64,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<(u64, u64, u64)>, StorageError> {
        self.read(STREAM_RUNS, |t| {
            let mut out = Vec::with_capacity(limit.min(1024));
            if forward {
                let start = run_start(t, stream_no, from_version)?.unwrap_or(from_version);
                for item in t
                    .range((stream_no, start)..=(stream_no, u64::MAX))
                    .map_err(storage)?
                {
                    let (k, v) = item.map_err(storage)?;
                    let first = k.value().1;
                    for (i, (position, offset)) in run_entries(v.value()).enumerate() {
                        let version = first + i as u64;
                        if version >= from_version {
                            out.push((version, position, offset));
                            if out.len() >= limit {
                                return Ok(out);
                            }
                        }
                    }
                }
            } else {
                for item in t
                    .range((stream_no, 0)..=(stream_no, from_version))
                    .map_err(storage)?
                    .rev()
                {
                    let (k, v) = item.map_err(storage)?;
                    let first = k.value().1;
                    let entries: Vec<_> = run_entries(v.value()).collect();
                    for (i, (position, offset)) in entries.into_iter().enumerate().rev() {
                        let version = first + i as u64;
                        if version <= from_version {
                            out.push((version, position, offset));
                            if out.len() >= limit {
                                return Ok(out);
                            }
                        }
                    }
                }
            }
            Ok(out)
        })
        .map(Option::unwrap_or_default)
    }

    /// The `(position, offset)` of a stream's event at `version`.
    pub fn stream_event(
        &self,
        stream_no: u64,
        version: u64,
    ) -> Result<Option<(u64, u64)>, StorageError> {
        self.read(STREAM_RUNS, |t| {
            let Some(item) = t
                .range((stream_no, 0)..=(stream_no, version))
                .map_err(storage)?
                .next_back()
            else {
                return Ok(None);
            };
            let (k, v) = item.map_err(storage)?;
            Ok(run_entries(v.value()).nth((version - k.value().1) as usize))
        })
        .map(Option::flatten)
    }

    /// `(position, offset)` of a category's events from position `from`, at most `limit`.
    pub fn category_events(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        let Some(category_no) = self
            .read(CATEGORIES, |t| {
                Ok(t.get(category).map_err(storage)?.map(|v| v.value()))
            })?
            .flatten()
        else {
            return Ok(Vec::new());
        };
        self.read(CATEGORY_RUNS, |t| {
            let mut out = Vec::new();
            let start = run_start(t, category_no, from)?.unwrap_or(from);
            for item in t
                .range((category_no, start)..=(category_no, u64::MAX))
                .map_err(storage)?
            {
                let (_, v) = item.map_err(storage)?;
                for (position, offset) in run_entries(v.value()) {
                    if position >= from {
                        out.push((position, offset));
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
            Ok(out)
        })
        .map(Option::unwrap_or_default)
    }

    /// The recorded `(position, offset)` nearest at or before `position`.
    pub fn sparse_floor(&self, position: u64) -> Result<Option<(u64, u64)>, StorageError> {
        self.read(SPARSE, |t| {
            Ok(match t.range(..=position).map_err(storage)?.next_back() {
                Some(item) => {
                    let (k, v) = item.map_err(storage)?;
                    Some((k.value(), v.value()))
                }
                None => None,
            })
        })
        .map(Option::flatten)
    }

    /// Runs `f` on a table in a read transaction; `None` when the table does not exist yet.
    fn read<K: redb::Key + 'static, V: redb::Value + 'static, T>(
        &self,
        def: TableDefinition<K, V>,
        f: impl FnOnce(&redb::ReadOnlyTable<K, V>) -> Result<T, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(storage)?;
            match txn.open_table(def) {
                Ok(t) => f(&t).map(Some),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(storage(e)),
            }
        })
    }
}

/// Runs being built in one indexing transaction, keyed by (owner no, first key).
#[derive(Default)]
struct Runs {
    runs: Vec<((u64, u64), Vec<u8>)>,
    /// Owner → (index in `runs`, the key the next entry must have to extend it).
    open: HashMap<u64, (usize, u64)>,
}

impl Runs {
    /// Adds an entry with `key` (a version, or a position) to `owner`'s open run, or
    /// starts a new run. With `consecutive`, a run only takes the next key in sequence.
    fn push(&mut self, owner: u64, key: u64, position: u64, offset: u64, consecutive: bool) {
        let extend = self.open.get(&owner).copied().filter(|(i, next)| {
            (!consecutive || *next == key)
                && self.runs[*i].1.len() < RUN_ENTRIES_MAX * RUN_ENTRY_BYTES
        });
        let i = match extend {
            Some((i, _)) => i,
            None => {
                self.runs
                    .push(((owner, key), Vec::with_capacity(RUN_ENTRY_BYTES * 4)));
                self.runs.len() - 1
            }
        };
        let bytes = &mut self.runs[i].1;
        bytes.extend_from_slice(&position.to_le_bytes());
        bytes.extend_from_slice(&offset.to_le_bytes());
        self.open.insert(owner, (i, key + 1));
    }
}

/// The `(position, offset)` pairs of a run.
fn run_entries(bytes: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    bytes.chunks_exact(RUN_ENTRY_BYTES).map(|c| {
        let u = |at: usize| u64::from_le_bytes(c[at..at + 8].try_into().expect("8 bytes"));
        (u(0), u(8))
    })
}

/// The first key of the run of `owner` that may hold `key`: the last run starting at or
/// before it.
fn run_start(
    t: &redb::ReadOnlyTable<(u64, u64), &[u8]>,
    owner: u64,
    key: u64,
) -> Result<Option<u64>, StorageError> {
    match t
        .range((owner, 0)..=(owner, key))
        .map_err(storage)?
        .next_back()
    {
        Some(item) => Ok(Some(item.map_err(storage)?.0.value().1)),
        None => Ok(None),
    }
}

/// A stream's row within one indexing transaction, and whether it must be written back.
struct RowSlot {
    row: StreamRow,
    dirty: bool,
}

/// Loads a stream's row into `rows`, creating it (dirty) with the next stream number for a
/// stream the index has not seen.
fn load_row<'a>(
    streams: &redb::Table<&str, &[u8]>,
    rows: &'a mut HashMap<String, RowSlot>,
    name: &str,
    next_stream_no: &mut u64,
) -> Result<&'a mut RowSlot, StorageError> {
    if !rows.contains_key(name) {
        let stored = streams
            .get(name)
            .map_err(storage)?
            .and_then(|v| StreamRow::decode(v.value()));
        let slot = match stored {
            Some(row) => RowSlot { row, dirty: false },
            None => {
                let row = StreamRow {
                    stream_no: *next_stream_no,
                    ..StreamRow::default()
                };
                *next_stream_no += 1;
                RowSlot { row, dirty: true }
            }
        };
        rows.insert(name.to_owned(), slot);
    }
    Ok(rows.get_mut(name).expect("inserted above"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_row_round_trips() {
        let row = StreamRow {
            stream_no: 9,
            last_version: None,
            deleted: true,
            metadata: StreamMetadata {
                max_count: Some(0),
                max_age_s: None,
            },
        };
        assert_eq!(StreamRow::decode(&row.encode()), Some(row));
        assert_eq!(
            StreamRow::decode(&StreamRow::default().encode()),
            Some(StreamRow::default())
        );
    }
}
