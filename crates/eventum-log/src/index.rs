//! The persisted index: stream → version → (position, offset), category → position →
//! offset, a sparse position → offset map for `$all`, and each stream's state. It lives in
//! a redb file beside the log and is only a cache of the log: it records how far it has
//! indexed, and whatever it lacks is rebuilt from the log on open.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use eventum_core::{StorageError, StorageErrorKind, StreamMetadata, category_of};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use crate::error::OpenError;
use crate::file_view::{FileView, ViewTable};
use crate::memtable::{MemRun, Memtable};

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
/// The tables reads use, held open in the shared [`FileView`].
const VIEW_TABLES: [&dyn ViewTable; 5] =
    [&STREAMS, &STREAM_RUNS, &CATEGORIES, &CATEGORY_RUNS, &SPARSE];

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
    /// Shared with the writer's stream cache and dedupe window.
    pub stream: std::sync::Arc<str>,
    pub version: u64,
    pub change: Option<StreamChange>,
}

/// A copy of the memtable taken for a background flush.
pub(crate) struct FlushSnapshot(MemState);

/// The index: a redb file plus an in-memory layer ([`Memtable`]) of everything indexed
/// since its last flush. Reads see both; only the indexer thread (and recovery, before the
/// store opens) adds entries and flushes.
pub struct Index {
    path: PathBuf,
    /// `None` once closed, so that a closed store releases the file even while
    /// subscriptions still hold the shared state.
    db: RwLock<Option<Database>>,
    mem: RwLock<MemState>,
    /// The file's last committed state for reads; replaced after each commit, before the
    /// memtable lets go of what the commit wrote (see `file_view`). `None` before the
    /// first commit's view or after a failure to open one: reads then open their own.
    view: RwLock<Option<Arc<FileView>>>,
    /// Entries the memtable holds before it is flushed without waiting for a sync.
    memtable_events_max: usize,
}

#[derive(Clone, Default)]
struct MemState {
    table: Memtable,
    /// Numbers the next new stream and category get (persisted at each flush).
    next_stream_no: u64,
    next_category_no: u64,
}

pub(crate) fn storage(e: impl std::fmt::Display) -> StorageError {
    StorageError::new(StorageErrorKind::Io, format!("index: {e}"))
}

fn closed() -> StorageError {
    StorageError::new(StorageErrorKind::Unavailable, "the store is shut down")
}

impl Index {
    /// Opens the index, or creates an empty one when it is missing, unreadable or of
    /// another layout version (it is rebuilt from the log afterwards).
    pub fn open(
        path: &Path,
        cache_bytes: usize,
        memtable_events_max: usize,
    ) -> Result<Self, OpenError> {
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
            mem: RwLock::new(MemState::default()),
            view: RwLock::new(None),
            memtable_events_max: memtable_events_max.max(1),
        };
        index.renew_view();
        let version = index
            .meta("format_version")
            .map_err(|e| index.open_error(e))?;
        if version.is_some_and(|v| v != INDEX_FORMAT_VERSION) {
            index.clear().map_err(|e| index.open_error(e))?;
        }
        let next_stream_no = index
            .meta("next_stream_no")
            .map_err(|e| index.open_error(e))?;
        let next_category_no = index
            .meta("next_category_no")
            .map_err(|e| index.open_error(e))?;
        {
            let mut mem = index.mem.write().expect("memtable lock poisoned");
            mem.next_stream_no = next_stream_no.unwrap_or(0);
            mem.next_category_no = next_category_no.unwrap_or(0);
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
        self.view.write().expect("view lock poisoned").take();
        self.db.write().expect("index lock poisoned").take();
    }

    /// Replaces the shared view with the file's latest commit. Called only by whoever
    /// just committed, before the memtable drops what the commit wrote.
    fn renew_view(&self) {
        let view = self
            .with_db(|db| FileView::open(db, &VIEW_TABLES))
            .map(Arc::new);
        if let Err(e) = &view {
            tracing::warn!(error = %e, "index snapshot not opened; reads open their own");
        }
        *self.view.write().expect("view lock poisoned") = view.ok();
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
        *self.mem.write().expect("memtable lock poisoned") = MemState::default();
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
        })?;
        self.renew_view();
        Ok(())
    }

    /// Indexes `entries` (consecutive positions) and records `tail` as the new reach. The
    /// entries are readable at once from the memtable; they reach the index file when the
    /// memtable holds `memtable_events_max` entries, or with `durable`, which also syncs
    /// the file. Whatever a crash loses of either is rebuilt from the log on open.
    pub fn apply<'e>(
        &self,
        entries: impl IntoIterator<Item = &'e IndexEntry>,
        tail: IndexTail,
        durable: bool,
    ) -> Result<(), StorageError> {
        let full = self.add_entries(entries, tail)?;
        if durable || full {
            self.flush(durable)?;
        }
        Ok(())
    }

    /// Indexes `entries` and records `tail` in the memtable only, without flushing it.
    /// Returns whether it now holds `memtable_events_max` entries or more.
    pub fn add_entries<'e>(
        &self,
        entries: impl IntoIterator<Item = &'e IndexEntry>,
        tail: IndexTail,
    ) -> Result<bool, StorageError> {
        let mut mem = self.mem.write().expect("memtable lock poisoned");
        for entry in entries {
            self.add(&mut mem, entry)?;
        }
        mem.table.tail = Some(tail);
        Ok(mem.table.events >= self.memtable_events_max)
    }

    /// A copy of the memtable to write to the index file with [`Index::flush_snapshot`]
    /// while entries go on being added (the indexer's background flush).
    pub fn snapshot(&self) -> FlushSnapshot {
        FlushSnapshot(self.mem.read().expect("memtable lock poisoned").clone())
    }

    /// Writes `snapshot` into the index file in one transaction (synced with `durable`),
    /// then removes from the memtable what the snapshot held, keeping what was added
    /// since. Readers see both layers throughout: before the commit they read the entries
    /// from the memtable, between the commit and the removal they bound their file reads
    /// below the memtable's first key, as for a plain flush. Not to be run concurrently
    /// with another flush.
    pub fn flush_snapshot(
        &self,
        snapshot: &FlushSnapshot,
        durable: bool,
    ) -> Result<(), StorageError> {
        self.with_db(|db| write_memtable(db, &snapshot.0, durable))?;
        self.renew_view();
        self.mem
            .write()
            .expect("memtable lock poisoned")
            .table
            .remove_flushed(&snapshot.0.table);
        Ok(())
    }

    fn add(&self, mem: &mut MemState, entry: &IndexEntry) -> Result<(), StorageError> {
        let stream_no = self.stream_no(mem, &entry.stream)?;
        let run = mem.table.stream_runs.entry(stream_no).or_default();
        debug_assert!(
            run.entries.last().is_none_or(|e| e.0 + 1 == entry.version),
            "versions of a stream are consecutive in log order"
        );
        run.entries
            .push((entry.version, entry.position, entry.offset));
        let category_no = self.category_no(mem, category_of(&entry.stream))?;
        mem.table
            .category_runs
            .entry(category_no)
            .or_default()
            .entries
            .push((entry.position, entry.position, entry.offset));
        if entry.position.is_multiple_of(SPARSE_EVERY) {
            mem.table.sparse.insert(entry.position, entry.offset);
        }
        match &entry.change {
            Some(StreamChange::Deleted { target }) => {
                self.row_mut(mem, target)?.deleted = true;
            }
            Some(StreamChange::Metadata { target, metadata }) => {
                self.row_mut(mem, target)?.metadata = metadata.clone();
            }
            None => {}
        }
        mem.table.events += 1;
        Ok(())
    }

    /// The number of stream `name`, giving a new stream the next number (its row is then
    /// written at the next flush).
    fn stream_no(&self, mem: &mut MemState, name: &str) -> Result<u64, StorageError> {
        if let Some(no) = mem.table.stream_nos.get(name) {
            return Ok(*no);
        }
        let no = match self.db_stream_row(name)? {
            Some(row) => row.stream_no,
            None => {
                let no = mem.next_stream_no;
                mem.next_stream_no += 1;
                let row = StreamRow {
                    stream_no: no,
                    ..StreamRow::default()
                };
                mem.table.rows.insert(name.to_owned(), row);
                no
            }
        };
        mem.table.stream_nos.insert(name.to_owned(), no);
        Ok(no)
    }

    /// Stream `name`'s row, to be changed and written at the next flush.
    fn row_mut<'m>(
        &self,
        mem: &'m mut MemState,
        name: &str,
    ) -> Result<&'m mut StreamRow, StorageError> {
        let no = self.stream_no(mem, name)?;
        if !mem.table.rows.contains_key(name) {
            let row = self.db_stream_row(name)?.unwrap_or(StreamRow {
                stream_no: no,
                ..StreamRow::default()
            });
            mem.table.rows.insert(name.to_owned(), row);
        }
        Ok(mem.table.rows.get_mut(name).expect("inserted above"))
    }

    fn category_no(&self, mem: &mut MemState, category: &str) -> Result<u64, StorageError> {
        if let Some((no, _)) = mem.table.category_nos.get(category) {
            return Ok(*no);
        }
        let (no, new) = match self.db_category_no(category)? {
            Some(no) => (no, false),
            None => {
                let no = mem.next_category_no;
                mem.next_category_no += 1;
                (no, true)
            }
        };
        mem.table
            .category_nos
            .insert(category.to_owned(), (no, new));
        Ok(no)
    }

    /// Writes the memtable into the index file in one transaction, one run per stream and
    /// per category, then empties it. Readers bound their file reads below the memtable's
    /// first keys, so the moment both hold the same entries shows no duplicate.
    fn flush(&self, durable: bool) -> Result<(), StorageError> {
        {
            // Only this thread changes the memtable, so a read lock keeps it still.
            let mem = self.mem.read().expect("memtable lock poisoned");
            self.with_db(|db| write_memtable(db, &mem, durable))?;
        }
        self.renew_view();
        let mut mem = self.mem.write().expect("memtable lock poisoned");
        mem.table = Memtable::default();
        Ok(())
    }

    /// A stream's row, if the stream was ever written or described.
    pub fn stream_row(&self, name: &str) -> Result<Option<StreamRow>, StorageError> {
        let (mem_row, mem_last) = {
            let mem = self.mem.read().expect("memtable lock poisoned");
            let row = mem.table.rows.get(name).cloned();
            let last = mem
                .table
                .stream_nos
                .get(name)
                .and_then(|no| mem.table.last_version(*no));
            (row, last)
        };
        let mut row = match mem_row {
            Some(row) => row,
            None => match self.db_stream_row(name)? {
                Some(row) => row,
                None => return Ok(None),
            },
        };
        row.last_version = match mem_last {
            Some(last) => Some(last),
            None => self.db_last_version(row.stream_no)?,
        };
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
        let (mem_first, mem_part) = {
            let mem = self.mem.read().expect("memtable lock poisoned");
            slice_of(
                mem.table.stream_runs.get(&stream_no),
                from_version,
                forward,
                limit,
            )
        };
        // The memtable holds a stream's newest versions, the file everything before them.
        if forward {
            let mut out = match mem_first {
                Some(first) if from_version >= first => Vec::new(),
                _ => self.db_stream_events(stream_no, from_version, true, limit, mem_first)?,
            };
            out.extend(mem_part.into_iter().take(limit - out.len()));
            Ok(out)
        } else {
            let mut out = mem_part;
            let db_from = match mem_first {
                None => Some(from_version),
                Some(first) => first.checked_sub(1).map(|f| f.min(from_version)),
            };
            if let Some(db_from) = db_from
                && out.len() < limit
            {
                let more =
                    self.db_stream_events(stream_no, db_from, false, limit - out.len(), None)?;
                out.extend(more);
            }
            Ok(out)
        }
    }

    /// The `(position, offset)` of a stream's event at `version`.
    pub fn stream_event(
        &self,
        stream_no: u64,
        version: u64,
    ) -> Result<Option<(u64, u64)>, StorageError> {
        let in_mem = {
            let mem = self.mem.read().expect("memtable lock poisoned");
            mem.table
                .stream_runs
                .get(&stream_no)
                .and_then(|run| run.get(version))
        };
        match in_mem {
            Some(found) => Ok(Some(found)),
            None => self.db_stream_event(stream_no, version),
        }
    }

    /// `(position, offset)` of a category's events from position `from`, at most `limit`.
    pub fn category_events(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        let (mem_no, mem_first, mem_part) = {
            let mem = self.mem.read().expect("memtable lock poisoned");
            let no = mem.table.category_nos.get(category).map(|(no, _)| *no);
            let run = no.and_then(|no| mem.table.category_runs.get(&no));
            let (first, part) = slice_of(run, from, true, limit);
            (no, first, part)
        };
        let category_no = match mem_no {
            Some(no) => no,
            None => match self.db_category_no(category)? {
                Some(no) => no,
                None => return Ok(Vec::new()),
            },
        };
        let mut out = match mem_first {
            Some(first) if from >= first => Vec::new(),
            _ => self.db_category_events(category_no, from, limit, mem_first)?,
        };
        out.extend(
            mem_part
                .into_iter()
                .take(limit - out.len())
                .map(|(_, position, offset)| (position, offset)),
        );
        Ok(out)
    }

    /// The recorded `(position, offset)` nearest at or before `position`.
    pub fn sparse_floor(&self, position: u64) -> Result<Option<(u64, u64)>, StorageError> {
        let in_mem = self
            .mem
            .read()
            .expect("memtable lock poisoned")
            .table
            .sparse_floor(position);
        let in_db = self.db_sparse_floor(position)?;
        Ok(match (in_mem, in_db) {
            (Some(m), Some(d)) => Some(if m.0 >= d.0 { m } else { d }),
            (m, d) => m.or(d),
        })
    }

    fn db_stream_row(&self, name: &str) -> Result<Option<StreamRow>, StorageError> {
        Ok(self
            .read(STREAMS, |t| {
                Ok(t.get(name)
                    .map_err(storage)?
                    .and_then(|v| StreamRow::decode(v.value())))
            })?
            .flatten())
    }

    fn db_last_version(&self, stream_no: u64) -> Result<Option<u64>, StorageError> {
        Ok(self
            .read(STREAM_RUNS, |t| {
                let last = t
                    .range((stream_no, 0)..=(stream_no, u64::MAX))
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
            .flatten())
    }

    fn db_category_no(&self, category: &str) -> Result<Option<u64>, StorageError> {
        Ok(self
            .read(CATEGORIES, |t| {
                Ok(t.get(category).map_err(storage)?.map(|v| v.value()))
            })?
            .flatten())
    }

    /// Like [`Self::stream_events`] on the file alone; forward reads stop before version
    /// `below`.
    fn db_stream_events(
        &self,
        stream_no: u64,
        from_version: u64,
        forward: bool,
        limit: usize,
        below: Option<u64>,
    ) -> Result<Vec<(u64, u64, u64)>, StorageError> {
        let below = below.unwrap_or(u64::MAX);
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
                        if version >= below {
                            return Ok(out);
                        }
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

    fn db_stream_event(
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

    /// A category's entries in the file from position `from`, stopping before `below`.
    fn db_category_events(
        &self,
        category_no: u64,
        from: u64,
        limit: usize,
        below: Option<u64>,
    ) -> Result<Vec<(u64, u64)>, StorageError> {
        let below = below.unwrap_or(u64::MAX);
        self.read(CATEGORY_RUNS, |t| {
            let mut out = Vec::new();
            let start = run_start(t, category_no, from)?.unwrap_or(from);
            for item in t
                .range((category_no, start)..=(category_no, u64::MAX))
                .map_err(storage)?
            {
                let (_, v) = item.map_err(storage)?;
                for (position, offset) in run_entries(v.value()) {
                    if position >= below {
                        return Ok(out);
                    }
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

    fn db_sparse_floor(&self, position: u64) -> Result<Option<(u64, u64)>, StorageError> {
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

    /// Runs `f` on a table of the file; `None` when the table does not exist yet.
    /// Reads through the shared view when there is one: callers have consulted the
    /// memtable already, so the view they get here covers whatever it no longer holds.
    fn read<K: redb::Key + 'static, V: redb::Value + 'static, T>(
        &self,
        def: TableDefinition<'static, K, V>,
        f: impl FnOnce(&redb::ReadOnlyTable<K, V>) -> Result<T, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        let view = self.view.read().expect("view lock poisoned").clone();
        if let Some(table) = view.as_ref().and_then(|v| v.table(&def)) {
            return table.map(f).transpose();
        }
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

/// The memtable's entries of one run from `from` in a direction, and the run's first
/// key.
fn slice_of(
    run: Option<&MemRun>,
    from: u64,
    forward: bool,
    limit: usize,
) -> (Option<u64>, Vec<(u64, u64, u64)>) {
    match run {
        None => (None, Vec::new()),
        Some(run) if forward => (run.first_key(), run.forward_from(from, limit)),
        Some(run) => (run.first_key(), run.backward_from(from, limit)),
    }
}

/// Packs `(key, position, offset)` entries into a run's stored form.
fn pack(entries: &[(u64, u64, u64)]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * RUN_ENTRY_BYTES);
    for (_, position, offset) in entries {
        bytes.extend_from_slice(&position.to_le_bytes());
        bytes.extend_from_slice(&offset.to_le_bytes());
    }
    bytes
}

/// One transaction writing the memtable: runs of at most `RUN_ENTRIES_MAX` entries keyed
/// by their first key, changed and new stream rows, new categories, sparse entries, the
/// counters and the reach.
fn write_memtable(db: &Database, mem: &MemState, durable: bool) -> Result<(), StorageError> {
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
        let table = &mem.table;
        let mut stream_runs = txn.open_table(STREAM_RUNS).map_err(storage)?;
        for (no, run) in &table.stream_runs {
            for chunk in run.entries.chunks(RUN_ENTRIES_MAX) {
                stream_runs
                    .insert((*no, chunk[0].0), &pack(chunk)[..])
                    .map_err(storage)?;
            }
        }
        let mut category_runs = txn.open_table(CATEGORY_RUNS).map_err(storage)?;
        for (no, run) in &table.category_runs {
            for chunk in run.entries.chunks(RUN_ENTRIES_MAX) {
                category_runs
                    .insert((*no, chunk[0].0), &pack(chunk)[..])
                    .map_err(storage)?;
            }
        }
        let mut streams = txn.open_table(STREAMS).map_err(storage)?;
        for (name, row) in &table.rows {
            streams
                .insert(name.as_str(), &row.encode()[..])
                .map_err(storage)?;
        }
        let mut categories = txn.open_table(CATEGORIES).map_err(storage)?;
        for (name, (no, new)) in &table.category_nos {
            if *new {
                categories.insert(name.as_str(), *no).map_err(storage)?;
            }
        }
        let mut sparse = txn.open_table(SPARSE).map_err(storage)?;
        for (position, offset) in &table.sparse {
            sparse.insert(*position, *offset).map_err(storage)?;
        }
        let mut meta = txn.open_table(META).map_err(storage)?;
        meta.insert("format_version", INDEX_FORMAT_VERSION)
            .map_err(storage)?;
        meta.insert("next_stream_no", mem.next_stream_no)
            .map_err(storage)?;
        meta.insert("next_category_no", mem.next_category_no)
            .map_err(storage)?;
        if let Some(tail) = table.tail {
            meta.insert("next_position", tail.next_position)
                .map_err(storage)?;
            meta.insert("tail_segment_base", tail.segment_base)
                .map_err(storage)?;
            meta.insert("tail_offset", tail.offset).map_err(storage)?;
        }
    }
    txn.commit().map_err(storage)
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
