//! State shared by the store's handle, its writer and indexer threads and its
//! subscriptions, and the read paths over it. Readers see only positions below
//! `visible_next`: durable in the log and present in the index.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use eventum_core::subscription::LiveBatch;
use eventum_core::{ReadError, RecordedEvent, StorageError, StorageErrorKind};
use tokio::sync::broadcast;

use crate::codec;
use crate::config::LogConfig;
use crate::disk::Disk;
use crate::index::{Index, StreamRow};
use crate::segment::{Cursor, SEGMENT_HEADER_BYTES, Segment, Step};

pub(crate) struct Shared {
    pub config: LogConfig,
    pub disk: Arc<dyn Disk>,
    pub log_dir: PathBuf,
    pub segments: RwLock<Vec<Arc<Segment>>>,
    pub index: Index,
    /// Every position below this is durable and indexed.
    pub visible_next: AtomicU64,
    /// Every position below this is durable (and acknowledged); the indexer catches up.
    pub durable_next: AtomicU64,
    /// Publishes `visible_next` to readers waiting for the index to catch up.
    pub visible_watch: tokio::sync::watch::Sender<u64>,
    /// `None` once the store is shut down, which ends every live subscription.
    pub live: RwLock<Option<broadcast::Sender<LiveBatch>>>,
    /// Set when a durable write failed; the writer refuses appends until restart.
    pub failure: Mutex<Option<StorageError>>,
    /// Set when indexing failed: nothing more can become visible until restart, so readers
    /// waiting for the index report it instead of waiting forever.
    pub index_failure: Mutex<Option<StorageError>>,
}

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub(crate) fn corrupt(segment: &Segment, offset: u64, reason: &str) -> StorageError {
    StorageError::new(
        StorageErrorKind::Corrupt,
        format!(
            "corrupt record in {} at byte offset {offset}: {reason}",
            segment.path.display()
        ),
    )
}

pub(crate) fn io_error(context: &str, e: std::io::Error) -> StorageError {
    let kind = if crate::disk::is_disk_full(&e) {
        StorageErrorKind::DiskFull
    } else {
        StorageErrorKind::Io
    };
    StorageError::new(kind, format!("{context}: {e}"))
}

impl Shared {
    pub fn visible_next(&self) -> u64 {
        self.visible_next.load(Ordering::Acquire)
    }

    pub fn durable_next(&self) -> u64 {
        self.durable_next.load(Ordering::Acquire)
    }

    /// Makes every position below `next` visible (indexer only).
    pub fn set_visible(&self, next: u64) {
        self.visible_next.store(next, Ordering::Release);
        self.visible_watch.send_replace(next);
    }

    /// The failure that stopped appends, if any.
    pub fn failed(&self) -> Option<StorageError> {
        self.failure.lock().expect("failure lock poisoned").clone()
    }

    /// Stops appends until the store is reopened; every later append gets `err`.
    pub fn fail(&self, err: StorageError) {
        *self.failure.lock().expect("failure lock poisoned") = Some(err);
    }

    /// Records an indexing failure: it stops appends and wakes waiting readers so they
    /// report it.
    pub fn fail_index(&self, err: StorageError) {
        self.fail(err.clone());
        *self.index_failure.lock().expect("failure lock poisoned") = Some(err);
        self.visible_watch.send_modify(|_| {});
    }

    /// Waits until everything acknowledged so far is indexed, so that a read sees every
    /// append acknowledged before it started (read-your-writes).
    pub async fn caught_up(&self) -> Result<(), StorageError> {
        let target = self.durable_next();
        let mut rx = self.visible_watch.subscribe();
        loop {
            if *rx.borrow_and_update() >= target {
                return Ok(());
            }
            if let Some(err) = self
                .index_failure
                .lock()
                .expect("failure lock poisoned")
                .clone()
            {
                return Err(err);
            }
            if rx.changed().await.is_err() {
                return Err(StorageError::new(
                    StorageErrorKind::Unavailable,
                    "the store is shut down",
                ));
            }
        }
    }

    /// The segment holding `position`.
    pub fn segment_for(&self, position: u64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().expect("segments lock poisoned");
        let i = segments.partition_point(|s| s.base_position <= position);
        i.checked_sub(1).map(|i| segments[i].clone())
    }

    /// Reads and decodes the event at `position`, stored at `offset` of its segment.
    pub fn read_event(&self, position: u64, offset: u64) -> Result<RecordedEvent, StorageError> {
        let segment = self.segment_for(position).ok_or_else(|| {
            StorageError::new(
                StorageErrorKind::Corrupt,
                format!("no segment holds position {position}"),
            )
        })?;
        let record = segment
            .read_record(offset)
            .map_err(|e| io_error(&format!("reading {}", segment.path.display()), e))?
            .map_err(|reason| corrupt(&segment, offset, reason))?;
        if codec::position_of(&record) != position {
            return Err(corrupt(
                &segment,
                offset,
                "the index points at a record of another position",
            ));
        }
        Ok(codec::decode(&record))
    }

    /// `$all` forward from `from`, at most `limit` events.
    pub fn read_all_forward(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError> {
        let visible = self.visible_next();
        let mut out = Vec::new();
        if from >= visible || limit == 0 {
            return Ok(out);
        }
        let segments = self
            .segments
            .read()
            .expect("segments lock poisoned")
            .clone();
        let mut i = segments
            .partition_point(|s| s.base_position <= from)
            .saturating_sub(1);
        let mut offset = match self.index.sparse_floor(from)? {
            Some((p, off)) if p >= segments[i].base_position => off,
            _ => SEGMENT_HEADER_BYTES,
        };
        let chunk_bytes =
            (limit.saturating_mul(512)).clamp(16 * 1024, self.config.read_buffer_bytes);
        out.reserve(limit.min(visible.saturating_sub(from) as usize));
        // Sealed segments are full to within a group; their last `cache_behind_bytes`
        // hold recent events and stay cached.
        let old_end = self
            .config
            .segment_bytes
            .saturating_sub(self.config.cache_behind_bytes);
        while i < segments.len() {
            let segment = &segments[i];
            let mut cursor = Cursor::new(segment, offset, chunk_bytes);
            if i + 1 < segments.len() && self.config.cache_behind_bytes > 0 {
                cursor = cursor.dropping_read_pages_before(old_end);
            }
            loop {
                match cursor
                    .next_step()
                    .map_err(|e| io_error(&format!("reading {}", segment.path.display()), e))?
                {
                    Step::Record { record, offset } => {
                        let position = codec::position_of(&record);
                        if position >= visible {
                            return Ok(out);
                        }
                        if position >= from {
                            if out
                                .last()
                                .is_some_and(|e: &RecordedEvent| e.position + 1 != position)
                            {
                                return Err(corrupt(segment, offset, "positions out of sequence"));
                            }
                            out.push(codec::decode(&record));
                            if out.len() >= limit {
                                return Ok(out);
                            }
                        }
                        // Stop at the last visible record: past it may lie the remains of
                        // a failed write, which the next group overwrites.
                        if position + 1 >= visible {
                            return Ok(out);
                        }
                    }
                    Step::End { .. } => break,
                    Step::Invalid { offset, reason } => {
                        return Err(corrupt(segment, offset, reason));
                    }
                }
            }
            i += 1;
            offset = SEGMENT_HEADER_BYTES;
        }
        Ok(out)
    }

    /// `$all` backward from `from` (default: the newest event), at most `limit` events.
    pub fn read_all_backward(
        &self,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError> {
        let visible = self.visible_next();
        let Some(last) = visible.checked_sub(1) else {
            return Ok(Vec::new());
        };
        let end = from.unwrap_or(last).min(last);
        let count = (limit as u64).min(end + 1);
        let mut events = self.read_all_forward(end + 1 - count, count as usize)?;
        events.reverse();
        Ok(events)
    }

    /// A stream's row, or the read error its absence or deletion means.
    pub fn stream_row_for_read(&self, stream: &str) -> Result<(StreamRow, u64), ReadError> {
        let row = self.index.stream_row(stream)?;
        match row {
            Some(row) if row.deleted => Err(ReadError::StreamDeleted {
                stream: stream.to_owned(),
            }),
            Some(row) => match row.last_version {
                Some(last) => Ok((row, last)),
                None => Err(ReadError::StreamNotFound {
                    stream: stream.to_owned(),
                }),
            },
            None => Err(ReadError::StreamNotFound {
                stream: stream.to_owned(),
            }),
        }
    }

    /// A stream's events from version `from` in a direction, hiding those outside its
    /// retention metadata.
    pub fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let (row, last) = self.stream_row_for_read(stream)?;
        let now = now_us();
        let min_version = row
            .metadata
            .max_count
            .map_or(0, |c| (last + 1).saturating_sub(c));
        let mut out = Vec::new();
        let mut cursor = if forward {
            from.unwrap_or(0).max(min_version)
        } else {
            from.unwrap_or(last).min(last)
        };
        loop {
            if out.len() >= limit || (!forward && cursor < min_version) {
                break;
            }
            let want = limit - out.len();
            let refs = self
                .index
                .stream_events(row.stream_no, cursor, forward, want)?;
            let Some(&(last_seen, _, _)) = refs.last() else {
                break;
            };
            let exhausted = refs.len() < want;
            for (version, position, offset) in refs {
                if version < min_version {
                    continue;
                }
                let event = self.read_event(position, offset)?;
                if row
                    .metadata
                    .is_visible(version, last, event.recorded_at_us, now)
                {
                    out.push(event);
                }
            }
            if exhausted {
                break;
            }
            cursor = if forward {
                last_seen + 1
            } else {
                match last_seen.checked_sub(1) {
                    Some(v) => v,
                    None => break,
                }
            };
        }
        Ok(out)
    }

    /// A category's events from global position `from`, in global order.
    pub fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError> {
        let visible = self.visible_next();
        let refs = self.index.category_events(category, from, limit)?;
        refs.into_iter()
            .filter(|(position, _)| *position < visible)
            .map(|(position, offset)| self.read_event(position, offset))
            .collect()
    }

    /// A stream's events whose global position is at least `from`.
    pub fn read_stream_from_position(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError> {
        let Some(row) = self.index.stream_row(stream)? else {
            return Ok(Vec::new());
        };
        let Some(last) = row.last_version else {
            return Ok(Vec::new());
        };
        // Positions grow with versions: binary-search the first version at or after `from`.
        let (mut lo, mut hi) = (0u64, last + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.index.stream_event(row.stream_no, mid)? {
                Some((position, _)) if position < from => lo = mid + 1,
                _ => hi = mid,
            }
        }
        let visible = self.visible_next();
        self.index
            .stream_events(row.stream_no, lo, true, limit)?
            .into_iter()
            .filter(|(_, position, _)| *position < visible)
            .map(|(_, position, offset)| self.read_event(position, offset))
            .collect()
    }
}
