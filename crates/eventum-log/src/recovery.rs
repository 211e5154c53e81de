//! Opening a data directory: the lock, the segments, and the scan of the log from where
//! the durable index ends, which re-indexes what the index lacks, truncates a torn tail
//! and refuses to go past a corrupt record.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use eventum_core::StreamMetadata;
use eventum_core::stream::{METADATA_TYPE, STREAM_DELETED_TYPE};

use crate::codec;
use crate::config::LogConfig;
use crate::disk::Disk;
use crate::error::OpenError;
use crate::index::{Index, IndexEntry, IndexTail, StreamChange};
use crate::segment::{self, Cursor, SEGMENT_HEADER_BYTES, Segment, Step};

/// Entries indexed per transaction while rebuilding.
const REBUILD_BATCH_EVENTS: usize = 65_536;

/// Takes the directory's exclusive lock, so that two processes never write one log.
pub(crate) fn lock(dir: &Path) -> Result<File, OpenError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| OpenError::io(format!("opening {}", path.display()), e))?;
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(OpenError::Locked {
                dir: dir.to_owned(),
            });
        }
        return Err(OpenError::io(format!("locking {}", path.display()), e));
    }
    let _ = file
        .set_len(0)
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(file)
}

/// Where the log ends after recovery.
pub(crate) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub next_position: u64,
    pub offset: u64,
}

/// Opens every segment, creating the first one in an empty directory.
pub(crate) fn open_segments(
    disk: &dyn Disk,
    log_dir: &Path,
    config: &LogConfig,
) -> Result<Vec<Arc<Segment>>, OpenError> {
    let listed = segment::list(log_dir)
        .map_err(|e| OpenError::io(format!("listing {}", log_dir.display()), e))?;
    let mut segments = Vec::with_capacity(listed.len());
    let count = listed.len();
    for (i, (base, path)) in listed.into_iter().enumerate() {
        match Segment::open(disk, &path, base) {
            Ok(s) => segments.push(Arc::new(s)),
            // A crash while a new last segment was being created leaves a file whose
            // header never reached the disk; it holds no event.
            Err(OpenError::Corrupt { .. })
                if i + 1 == count && i > 0 && is_blank_after_header(&path) =>
            {
                tracing::warn!(path = %path.display(), "removing a segment whose creation was interrupted");
                std::fs::remove_file(&path)
                    .map_err(|e| OpenError::io(format!("removing {}", path.display()), e))?;
            }
            Err(e) => return Err(e),
        }
    }
    if segments.is_empty() {
        let s = Segment::create(disk, log_dir, 0, config.segment_bytes).map_err(|e| {
            OpenError::io(
                format!("creating the first segment in {}", log_dir.display()),
                e,
            )
        })?;
        segments.push(Arc::new(s));
    }
    if segments[0].base_position != 0 {
        return Err(OpenError::Corrupt {
            file: segments[0].path.clone(),
            offset: 0,
            reason: "the first segment does not start at position 0".into(),
        });
    }
    Ok(segments)
}

fn is_blank_after_header(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| {
        b.iter()
            .skip(SEGMENT_HEADER_BYTES as usize)
            .all(|x| *x == 0)
    })
}

/// The index entry a record contributes, with the stream change a system event carries.
pub(crate) fn entry_of(record: &bytes::Bytes, offset: u64) -> IndexEntry {
    let event = codec::decode(record);
    let change = event
        .stream
        .strip_prefix("$$")
        .filter(|t| !t.is_empty())
        .and_then(|target| match event.event_type.as_str() {
            STREAM_DELETED_TYPE => Some(StreamChange::Deleted {
                target: target.to_owned(),
            }),
            METADATA_TYPE => serde_json::from_slice::<StreamMetadata>(&event.data)
                .ok()
                .map(|metadata| StreamChange::Metadata {
                    target: target.to_owned(),
                    metadata,
                }),
            _ => None,
        });
    IndexEntry {
        position: event.position,
        offset,
        stream: std::sync::Arc::from(event.stream),
        version: event.version,
        change,
    }
}

/// How a scan of the log ended.
pub(crate) enum ScanEnd {
    /// The log ends cleanly (after truncating a torn tail, if `torn_at` is set).
    Clean {
        next_position: u64,
        offset: u64,
        torn_at: Option<u64>,
    },
    /// A record before the end is corrupt.
    Corrupt {
        segment: usize,
        offset: u64,
        reason: String,
        /// Where the whole groups before it end in that segment: a repair cuts here, so
        /// that no append is left half there.
        keep_until: u64,
    },
}

/// Walks the records of `segments` from segment `i` at `offset`, expecting
/// `next_position` first, and calls `on_record` for each record of a whole group. A torn
/// tail is reported, not repaired; it starts at the first record of a group that the end
/// of the log cut short (no record marked as the group's end), so that a crash never
/// leaves part of an append visible.
pub(crate) fn scan(
    segments: &[Arc<Segment>],
    (mut i, mut offset, mut next_position): (usize, u64, u64),
    chunk_bytes: usize,
    mut on_record: impl FnMut(&Segment, &bytes::Bytes, u64, u64) -> Result<(), OpenError>,
) -> Result<ScanEnd, OpenError> {
    loop {
        let segment = &segments[i];
        let last_segment = i + 1 == segments.len();
        let mut cursor = Cursor::new(segment, offset, chunk_bytes);
        // The records of the group being read: (record, offset, offset after it).
        let mut group: Vec<(bytes::Bytes, u64, u64)> = Vec::new();
        let (end, torn_at) = loop {
            let step = cursor
                .next_step()
                .map_err(|e| OpenError::io(format!("reading {}", segment.path.display()), e))?;
            match step {
                Step::Record { offset, record } => {
                    if codec::position_of(&record) != next_position {
                        let reason = format!(
                            "expected position {next_position}, found {}",
                            codec::position_of(&record)
                        );
                        return Ok(ScanEnd::Corrupt {
                            segment: i,
                            offset,
                            reason,
                            keep_until: group.first().map_or(offset, |g| g.1),
                        });
                    }
                    next_position += 1;
                    let ends_group = codec::ends_group(&record);
                    group.push((record, offset, cursor.offset()));
                    if ends_group {
                        for (record, offset, next_offset) in group.drain(..) {
                            on_record(segment, &record, offset, next_offset)?;
                        }
                    }
                }
                Step::End { offset } => break (offset, None),
                Step::Invalid { offset, reason } => {
                    if last_segment && is_torn_tail(segment, offset, next_position)? {
                        break (offset, Some(offset));
                    }
                    return Ok(ScanEnd::Corrupt {
                        segment: i,
                        offset,
                        reason: reason.to_owned(),
                        keep_until: group.first().map_or(offset, |g| g.1),
                    });
                }
            }
        };
        if last_segment {
            // A group without its end mark was cut short: its records never were
            // acknowledged, and it goes whole.
            let (end, torn_at) = match group.first() {
                Some((_, first, _)) => {
                    next_position -= group.len() as u64;
                    (*first, Some(*first))
                }
                None => (end, torn_at),
            };
            return Ok(ScanEnd::Clean {
                next_position,
                offset: end,
                torn_at,
            });
        }
        // A group never spans segments and a later segment is only created after the
        // groups before it were synced; keep what an older build wrote without marks.
        for (record, offset, next_offset) in group.drain(..) {
            on_record(segment, &record, offset, next_offset)?;
        }
        if segments[i + 1].base_position != next_position {
            let reason = format!(
                "segment starts at position {} but the log before it ends at {next_position}",
                segments[i + 1].base_position
            );
            return Ok(ScanEnd::Corrupt {
                segment: i + 1,
                offset: 0,
                reason,
                keep_until: 0,
            });
        }
        i += 1;
        offset = SEGMENT_HEADER_BYTES;
    }
}

/// Scans the log from where the index ends to where the log ends, indexing what it finds
/// and truncating a torn tail.
pub(crate) fn recover(
    index: &Index,
    segments: &[Arc<Segment>],
    config: &LogConfig,
) -> Result<Recovered, OpenError> {
    let index_err = |e: eventum_core::StorageError| OpenError::Index {
        file: "index.redb".into(),
        reason: e.message,
    };
    let tail = index.tail().map_err(index_err)?;
    let start = tail.and_then(|t| {
        let i = segments
            .iter()
            .position(|s| s.base_position == t.segment_base)?;
        (t.next_position >= t.segment_base && t.offset >= SEGMENT_HEADER_BYTES).then_some((
            i,
            t.offset,
            t.next_position,
        ))
    });
    let start = match start {
        Some(s) => s,
        None => {
            if tail.is_some() {
                tracing::warn!("the index does not match the log; rebuilding it");
            }
            index.clear().map_err(index_err)?;
            (0, SEGMENT_HEADER_BYTES, 0)
        }
    };
    let mut entries = Vec::new();
    let end = scan(
        segments,
        start,
        config.read_buffer_bytes,
        |segment, record, offset, next_offset| {
            entries.push(entry_of(record, offset));
            if entries.len() >= REBUILD_BATCH_EVENTS {
                let next_position = entries.last().map_or(0, |e| e.position + 1);
                let tail = IndexTail {
                    next_position,
                    segment_base: segment.base_position,
                    offset: next_offset,
                };
                index.apply(&entries, tail, false).map_err(index_err)?;
                entries.clear();
            }
            Ok(())
        },
    )?;
    match end {
        ScanEnd::Clean {
            next_position,
            offset,
            torn_at,
        } => {
            let last = segments.last().expect("at least one segment");
            if let Some(at) = torn_at {
                tracing::warn!(file = %last.path.display(), offset = at, "truncating a torn tail left by a crash");
                truncate(last, at, config.segment_bytes)?;
            }
            let tail = IndexTail {
                next_position,
                segment_base: last.base_position,
                offset,
            };
            index.apply(&entries, tail, true).map_err(index_err)?;
            Ok(Recovered {
                segments: segments.to_vec(),
                next_position,
                offset,
            })
        }
        ScanEnd::Corrupt {
            segment,
            offset,
            reason,
            ..
        } => Err(OpenError::Corrupt {
            file: segments[segment].path.clone(),
            offset,
            reason,
        }),
    }
}

/// Whether the bad bytes at `offset` are the remains of the last group, cut short by a
/// crash: no record of a later group follows them. A later group is only ever written
/// after the earlier one was synced, so finding one means the bad record was durable and
/// is corrupt.
pub(crate) fn is_torn_tail(
    segment: &Segment,
    offset: u64,
    expected_position: u64,
) -> Result<bool, OpenError> {
    let len = segment
        .file
        .len()
        .map_err(|e| OpenError::io(format!("reading {}", segment.path.display()), e))?;
    let mut rest = vec![0u8; len.saturating_sub(offset) as usize];
    let n = segment
        .file
        .read_at(&mut rest, offset)
        .map_err(|e| OpenError::io(format!("reading {}", segment.path.display()), e))?;
    rest.truncate(n);
    let mut at = 1;
    while at + 4 <= rest.len() {
        match codec::check(&rest[at..]) {
            codec::Decoded::Record(len) => {
                if codec::group_first_position_of(&rest[at..]) > expected_position {
                    return Ok(false);
                }
                at += len;
            }
            _ => at += 1,
        }
    }
    Ok(true)
}

/// Cuts the segment at `offset` and restores its preallocated zeros.
pub(crate) fn truncate(
    segment: &Segment,
    offset: u64,
    segment_bytes: u64,
) -> Result<(), OpenError> {
    let ctx = || format!("truncating {}", segment.path.display());
    segment
        .file
        .set_len(offset)
        .map_err(|e| OpenError::io(ctx(), e))?;
    segment
        .file
        .allocate(segment_bytes.max(offset))
        .map_err(|e| OpenError::io(ctx(), e))?;
    segment
        .file
        .sync_data()
        .map_err(|e| OpenError::io(ctx(), e))
}
