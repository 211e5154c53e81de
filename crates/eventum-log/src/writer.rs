//! The writer thread: takes append requests from a bounded queue, decides each against the
//! streams' current versions, encodes a whole group into one buffer and writes it with one
//! `write`, then hands the group to the syncer, which makes it durable (one `fdatasync`
//! for every group written meanwhile), acknowledges it and passes it to the indexer.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use eventum_core::{
    ActualVersion, AppendError, AppendResult, ExpectedVersion, NewEvent, RecordedEvent,
    StorageError, StorageErrorKind, StreamMetadata, StreamName,
};
use tokio::sync::{mpsc, oneshot};

use crate::codec::{self, RecordHeader};
use crate::dedupe::Dedupe;
use crate::index::{IndexEntry, IndexTail, StreamChange};
use crate::segment::{SEGMENT_HEADER_BYTES, Segment};
use crate::shared::{Shared, io_error, now_us};
use crate::syncer::{GroupIndex, SyncJob, WrittenGroup};

pub(crate) type Reply = oneshot::Sender<Result<AppendResult, AppendError>>;

/// What a write request does besides appending its events.
pub(crate) enum WriteKind {
    Append,
    /// Soft-deletes the target; the writer records the marker in `$${target}`.
    Delete,
    /// Sets the target's metadata; the events are the record for `$${target}`.
    Metadata(StreamMetadata),
}

pub(crate) struct WriteRequest {
    /// The stream whose version is checked.
    pub target: StreamName,
    pub kind: WriteKind,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub reply: Reply,
}

pub(crate) enum Command {
    Write(WriteRequest),
    Shutdown(std::sync::mpsc::Sender<()>),
}

#[derive(Clone)]
struct CachedStream {
    last_version: Option<u64>,
    deleted: bool,
    /// The next position after this stream's last change; once the index has reached it,
    /// the entry may be evicted and reloaded from the index.
    touched: u64,
}

enum Decision {
    Retry(AppendResult),
    Write {
        stream: Arc<str>,
        first_version: u64,
        change: Option<StreamChange>,
        /// Events written instead of the request's: the deletion marker, built from the
        /// version checked here so that it cannot record a stale one.
        events: Option<Vec<NewEvent>>,
    },
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub rx: mpsc::Receiver<Command>,
    pub syncer: SyncSender<SyncJob>,
    pub active: Arc<Segment>,
    pub offset: u64,
    pub next_position: u64,
    /// Keyed by a shared name, so that a cached stream costs no allocation per append: the
    /// same `Arc` goes to the index entries and the dedupe window.
    streams: foldhash::HashMap<Arc<str>, CachedStream>,
    dedupe: Dedupe,
    buf: Vec<u8>,
    last_ts_us: i64,
    /// The active segment's readied bytes end here (see `prepare_ahead`).
    prepared_to: u64,
    /// The active segment's allocated length, which readying never goes past.
    active_len: u64,
    /// The active segment's pages before this offset were dropped from the page cache
    /// (see `drop_behind`).
    dropped_to: u64,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
        syncer: SyncSender<SyncJob>,
        active: Arc<Segment>,
        offset: u64,
        next_position: u64,
        recent: Vec<RecordedEvent>,
    ) -> Self {
        let mut dedupe = Dedupe::new(shared.config.dedupe_window_events);
        for e in recent {
            let key = dedupe.stream_key(&e.stream);
            dedupe.insert(e.id, key, e.version, e.position);
        }
        // Unknown (an unreadable length) leaves readying off for this segment.
        let active_len = active.file.len().unwrap_or(0);
        let streams_max = shared.config.stream_cache_entries;
        Self {
            shared,
            rx,
            syncer,
            active,
            offset,
            next_position,
            // Sized once: a cache that doubles as it fills rehashes every entry on the
            // writer thread, a pause of several milliseconds at tens of thousands.
            streams: foldhash::HashMap::with_capacity_and_hasher(streams_max, Default::default()),
            dedupe,
            buf: Vec::new(),
            last_ts_us: 0,
            prepared_to: 0,
            active_len,
            dropped_to: 0,
        }
    }

    pub fn run(mut self) {
        let mut group = Vec::new();
        loop {
            let command = match self.rx.try_recv() {
                Ok(command) => command,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Idle: ready the segment ahead a chunk at a time, checking for
                    // appends between chunks.
                    if self.prepare_ahead() {
                        continue;
                    }
                    match self.rx.blocking_recv() {
                        Some(command) => command,
                        None => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            let mut shutdown = None;
            match command {
                Command::Write(r) => group.push(r),
                Command::Shutdown(ack) => shutdown = Some(ack),
            }
            if shutdown.is_none() {
                let (mut events, mut bytes) = (group[0].events.len(), 0usize);
                while events < self.shared.config.group_commit_events_max
                    && bytes < self.shared.config.group_commit_bytes_max
                {
                    match self.rx.try_recv() {
                        Ok(Command::Write(r)) => {
                            events += r.events.len();
                            bytes += r.events.iter().map(NewEvent::size_bytes).sum::<usize>();
                            group.push(r);
                        }
                        Ok(Command::Shutdown(ack)) => {
                            shutdown = Some(ack);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                self.commit_group(&mut group);
            }
            if let Some(ack) = shutdown {
                // The syncer finishes what was handed over, then stops the indexer.
                let (tx, rx) = std::sync::mpsc::channel();
                if self.syncer.send(SyncJob::Shutdown(tx)).is_ok() {
                    let _ = rx.recv();
                }
                let _ = ack.send(());
                return;
            }
        }
    }

    /// The stream's cached state, with the shared name it is cached under.
    fn lookup(&mut self, name: &str) -> Result<(Arc<str>, CachedStream), StorageError> {
        if let Some((key, s)) = self.streams.get_key_value(name) {
            return Ok((key.clone(), s.clone()));
        }
        if self.streams.len() >= self.shared.config.stream_cache_entries {
            let indexed = self.shared.visible_next();
            self.streams.retain(|_, s| s.touched > indexed);
        }
        let row = self.shared.index.stream_row(name)?;
        let cached = CachedStream {
            last_version: row.as_ref().and_then(|r| r.last_version),
            deleted: row.is_some_and(|r| r.deleted),
            touched: 0,
        };
        let key: Arc<str> = Arc::from(name);
        self.streams.insert(key.clone(), cached.clone());
        Ok((key, cached))
    }

    fn commit_group(&mut self, group: &mut Vec<WriteRequest>) {
        if let Some(err) = self.shared.failed() {
            for r in group.drain(..) {
                let _ = r.reply.send(Err(err.clone().into()));
            }
            return;
        }
        self.buf.clear();
        let group_first = self.next_position;
        let ts = now_us().max(self.last_ts_us);
        self.last_ts_us = ts;
        // Sized up front: these grow by one element per event, and regrowing vectors of
        // events showed up as copies in the writer's profile.
        let group_events: usize = group.iter().map(|r| r.events.len().max(1)).sum();
        let mut undo: Vec<(Arc<str>, Option<CachedStream>)> = Vec::with_capacity(group.len());
        let mut entries = Vec::with_capacity(group_events);
        let mut written = Vec::with_capacity(group_events);
        let mut replies: Vec<(Reply, Result<AppendResult, AppendError>)> =
            Vec::with_capacity(group.len());
        let mut ids = Vec::with_capacity(group_events);
        let mut position = group_first;
        let mut last_record_at = None;
        for req in group.drain(..) {
            let decision = match self.decide(&req, position, &mut undo) {
                Ok(d) => d,
                Err(e) => {
                    replies.push((req.reply, Err(e)));
                    continue;
                }
            };
            let (stream, first_version, change, events) = match decision {
                Decision::Retry(result) => {
                    replies.push((req.reply, Ok(result)));
                    continue;
                }
                Decision::Write {
                    stream,
                    first_version,
                    change,
                    events,
                } => (stream, first_version, change, events.unwrap_or(req.events)),
            };
            let mut version = first_version;
            let key = self.dedupe.stream_key(&stream);
            for event in events {
                let id = event.id();
                let offset = self.buf.len() as u64;
                last_record_at = Some(offset as usize);
                let header = RecordHeader {
                    position,
                    group_first_position: group_first,
                    stream_version: version,
                    recorded_at_us: ts,
                    id,
                    correlation_id: event.correlation_id().unwrap_or(id),
                    causation_id: event.causation_id().unwrap_or(id),
                    stream: &stream,
                    event_type: event.event_type(),
                    data: event.data(),
                    metadata: event.metadata(),
                };
                codec::encode(&header, &mut self.buf);
                entries.push(IndexEntry {
                    position,
                    offset,
                    stream: stream.clone(),
                    version,
                    change: change.clone(),
                });
                ids.push((id, key, version, position));
                // Moved, not copied: the indexer builds the live event from it, and only
                // when someone is subscribed.
                written.push(event);
                position += 1;
                version += 1;
            }
            let result = AppendResult {
                next_expected_version: version - 1,
                position: position - 1,
            };
            replies.push((req.reply, Ok(result)));
        }
        let Some(last_record_at) = last_record_at else {
            // Nothing written: the replies still wait for the groups before them.
            self.hand_over(WrittenGroup {
                segment: self.active.clone(),
                replies,
                index: None,
            });
            return;
        };
        // Recovery keeps a group only when its last record is there and marked.
        codec::mark_group_end(&mut self.buf[last_record_at..]);
        match self.write_group(group_first) {
            Ok(base) => {
                for e in &mut entries {
                    e.offset += base;
                }
                self.offset = base + self.buf.len() as u64;
                self.drop_behind();
                self.next_position = position;
                // Written, not yet durable: a retry of these ids is answered through the
                // syncer, after the sync that covers them.
                for (id, key, version, position) in ids {
                    self.dedupe.insert(id, key, version, position);
                }
                let tail = IndexTail {
                    next_position: position,
                    segment_base: self.active.base_position,
                    offset: self.offset,
                };
                self.hand_over(WrittenGroup {
                    segment: self.active.clone(),
                    replies,
                    index: Some(GroupIndex {
                        entries,
                        tail,
                        events: written,
                        recorded_at_us: ts,
                    }),
                });
            }
            Err(err) => {
                for (name, previous) in undo.into_iter().rev() {
                    match previous {
                        Some(s) => self.streams.insert(name, s),
                        None => self.streams.remove(&name),
                    };
                }
                for (reply, result) in replies {
                    let _ = reply.send(result.and(Err(err.clone().into())));
                }
            }
        }
    }

    /// Queues a written group for the syncer, waiting while its queue is full.
    fn hand_over(&self, group: WrittenGroup) {
        if let Err(std::sync::mpsc::SendError(SyncJob::Group(group))) =
            self.syncer.send(SyncJob::Group(group))
        {
            let err = StorageError::new(StorageErrorKind::Unavailable, "the syncer stopped");
            self.shared.fail(err.clone());
            for (reply, _) in group.replies {
                let _ = reply.send(Err(err.clone().into()));
            }
        }
    }

    /// Writes the encoded group with one write (the syncer makes it durable), rolling over
    /// to a new segment first when it would not fit. Returns the offset it was written at.
    /// A failed write leaves the offset where it was: the next group overwrites whatever
    /// part landed, and recovery truncates it if the process dies first.
    fn write_group(&mut self, group_first: u64) -> Result<u64, StorageError> {
        let segment_bytes = self.shared.config.segment_bytes;
        if self.offset > SEGMENT_HEADER_BYTES && self.offset + self.buf.len() as u64 > segment_bytes
        {
            let segment = Segment::create(
                &*self.shared.disk,
                &self.shared.log_dir,
                group_first,
                segment_bytes,
            )
            .map_err(|e| io_error("creating a segment", e))?;
            let segment = Arc::new(segment);
            self.drop_behind();
            self.shared
                .segments
                .write()
                .expect("segments lock poisoned")
                .push(segment.clone());
            self.active = segment;
            self.offset = SEGMENT_HEADER_BYTES;
            self.prepared_to = 0;
            self.dropped_to = 0;
            self.active_len = segment_bytes.max(SEGMENT_HEADER_BYTES);
        }
        let base = self.offset;
        self.active
            .file
            .write_at(&self.buf, base)
            .map_err(|e| io_error(&format!("writing {}", self.active.path.display()), e))?;
        Ok(base)
    }

    /// Drops the active segment's pages more than `cache_behind_bytes` behind the write
    /// offset from the page cache ([`crate::disk::SegmentFile::drop_cached`]). They were
    /// written long enough ago to be durable; any still dirty stay cached. A failure is
    /// logged and dropping stops for this segment: it costs memory, not data.
    fn drop_behind(&mut self) {
        let config = &self.shared.config;
        let range = crate::disk::next_drop_range(
            self.dropped_to,
            self.offset,
            config.cache_behind_bytes,
            config.cache_drop_chunk_bytes,
        );
        let Some((from, len)) = range else {
            return;
        };
        self.dropped_to = from + len;
        if let Err(e) = self.active.file.drop_cached(from, len) {
            tracing::warn!(segment = %self.active.path.display(), error = %e, "dropping written pages from the page cache failed");
            self.dropped_to = u64::MAX;
        }
    }

    /// Readies the next chunk of the active segment past the last record
    /// ([`crate::disk::SegmentFile::prepare`]); false when there is nothing to do. Only
    /// this thread writes the segment, so the range never overlaps a record: it starts
    /// at the page after the write offset. A failure is logged and readying stops for
    /// this segment: appends work without it, syncing only more slowly.
    fn prepare_ahead(&mut self) -> bool {
        let config = &self.shared.config;
        let range = crate::disk::next_prepare_range(
            self.prepared_to,
            self.offset,
            config.prepare_ahead_bytes,
            config.prepare_chunk_bytes,
            self.active_len,
        );
        let Some((from, len)) = range else {
            return false;
        };
        if self.shared.failed().is_some() {
            return false;
        }
        match self.active.file.prepare(from, len) {
            Ok(()) => self.prepared_to = from + len,
            Err(e) => {
                tracing::warn!(segment = %self.active.path.display(), error = %e, "readying the segment ahead of the writer failed; syncs stay slower");
                self.prepared_to = self.active_len;
            }
        }
        true
    }

    fn remember(
        &mut self,
        undo: &mut Vec<(Arc<str>, Option<CachedStream>)>,
        name: &Arc<str>,
        update: CachedStream,
    ) {
        let previous = self.streams.insert(name.clone(), update);
        undo.push((name.clone(), previous));
    }

    fn decide(
        &mut self,
        req: &WriteRequest,
        position: u64,
        undo: &mut Vec<(Arc<str>, Option<CachedStream>)>,
    ) -> Result<Decision, AppendError> {
        let (target_key, target) = self.lookup(req.target.as_str())?;
        if target.deleted {
            return Err(AppendError::StreamDeleted {
                stream: req.target.to_string(),
            });
        }
        let actual = ActualVersion::from_option(target.last_version);
        // A deletion carries no events: the writer writes its one marker itself.
        let n = match req.kind {
            WriteKind::Delete => 1,
            _ => req.events.len() as u64,
        };
        if let WriteKind::Append = req.kind
            && let Some(result) = self.find_retry(req, actual)?
        {
            return Ok(Decision::Retry(result));
        }
        AppendError::check_expected(req.target.as_str(), req.expected, actual)?;
        match &req.kind {
            WriteKind::Append => {
                let first_version = actual.next_version();
                let update = CachedStream {
                    last_version: Some(first_version + n - 1),
                    deleted: false,
                    touched: position + n,
                };
                self.remember(undo, &target_key, update);
                Ok(Decision::Write {
                    stream: target_key,
                    first_version,
                    change: None,
                    events: None,
                })
            }
            WriteKind::Delete | WriteKind::Metadata(_) => {
                let meta_name = req.target.metadata_stream();
                let (meta_key, meta) = self.lookup(meta_name.as_str())?;
                let first_version = ActualVersion::from_option(meta.last_version).next_version();
                let update = CachedStream {
                    last_version: Some(first_version + n - 1),
                    deleted: false,
                    touched: position + n,
                };
                self.remember(undo, &meta_key, update);
                let target_name = req.target.to_string();
                let mut events = None;
                let change = match &req.kind {
                    WriteKind::Delete => {
                        events = Some(vec![NewEvent::stream_deleted(
                            &req.target,
                            target.last_version,
                        )]);
                        let update = CachedStream {
                            deleted: true,
                            touched: position + n,
                            ..target
                        };
                        self.remember(undo, &target_key, update);
                        StreamChange::Deleted {
                            target: target_name,
                        }
                    }
                    WriteKind::Metadata(m) => StreamChange::Metadata {
                        target: target_name,
                        metadata: m.clone(),
                    },
                    WriteKind::Append => unreachable!("handled above"),
                };
                Ok(Decision::Write {
                    stream: meta_key,
                    first_version,
                    change: Some(change),
                    events,
                })
            }
        }
    }

    /// The original result when `req` repeats an append that already succeeded.
    fn find_retry(
        &self,
        req: &WriteRequest,
        actual: ActualVersion,
    ) -> Result<Option<AppendResult>, StorageError> {
        let stream = req.target.as_str();
        let first_version = match req.expected {
            // An expectation at u64::MAX cannot name versions that exist.
            ExpectedVersion::Exact(v) => Some(v.checked_add(1).ok_or(()).ok()),
            ExpectedVersion::NoStream => Some(Some(0)),
            ExpectedVersion::Any | ExpectedVersion::StreamExists => None,
        };
        let Some(first_version) = first_version
            .map_or(Ok(None), |f| f.ok_or(()).map(Some))
            .ok()
        else {
            return Ok(None);
        };
        let n = req.events.len() as u64;
        // Recent appends: the id window, whatever the expectation.
        if let Some((key, version, _)) = self.dedupe.get(&req.events[0].id()) {
            if key != self.dedupe.stream_key(stream) || first_version.is_some_and(|f| f != version)
            {
                return Ok(None);
            }
            let mut last = None;
            for (i, event) in req.events.iter().enumerate() {
                match self.dedupe.get(&event.id()) {
                    Some((k, v, p)) if k == key && v == version + i as u64 => last = Some((v, p)),
                    _ => return Ok(None),
                }
            }
            return Ok(last.map(|(v, p)| AppendResult {
                next_expected_version: v,
                position: p,
            }));
        }
        // Older appends with an exact expectation: compare the ids stored at those versions.
        let Some(first) = first_version else {
            return Ok(None);
        };
        if actual
            .as_option()
            .is_none_or(|last| last < first || last - first < n - 1)
        {
            return Ok(None);
        }
        let Some(row) = self.shared.index.stream_row(stream)? else {
            return Ok(None);
        };
        let mut last = None;
        for (i, event) in req.events.iter().enumerate() {
            let Some((position, offset)) = self
                .shared
                .index
                .stream_event(row.stream_no, first + i as u64)?
            else {
                return Ok(None);
            };
            let stored = self.shared.read_event(position, offset)?;
            if stored.id != event.id() {
                return Ok(None);
            }
            last = Some(AppendResult {
                next_expected_version: stored.version,
                position,
            });
        }
        Ok(last)
    }
}
