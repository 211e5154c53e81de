//! Segment files: the header, creation with preallocation, a sequential record cursor,
//! and single-record reads at a known offset. A segment holds the records of consecutive
//! positions starting at its base position; its name is that base position.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::codec::{self, Decoded};
use crate::disk::{Disk, PAGE_BYTES, SegmentFile, segment_path};
use crate::error::OpenError;

pub const SEGMENT_MAGIC: [u8; 8] = *b"EVTMSEG\0";
/// Version of the on-disk format described in docs/FORMAT.md. Version 2 marks the last
/// record of every group ([`codec::GROUP_END_FLAG`]); recovery of a version-1 log would
/// take its unmarked groups for cut-short ones, so version 1 is refused, not misread.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes before the first record of a segment.
pub const SEGMENT_HEADER_BYTES: u64 = 32;

/// An open segment file.
pub struct Segment {
    pub base_position: u64,
    pub path: PathBuf,
    pub file: Arc<dyn SegmentFile>,
}

fn header(base_position: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&base_position.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[0..12]), &h[16..32]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

impl Segment {
    /// Creates, preallocates and syncs a new segment (and its directory entry).
    pub fn create(
        disk: &dyn Disk,
        log_dir: &Path,
        base_position: u64,
        size_bytes: u64,
    ) -> io::Result<Segment> {
        let path = segment_path(log_dir, base_position);
        let file = disk.open(&path, true)?;
        let result = (|| {
            file.allocate(size_bytes.max(SEGMENT_HEADER_BYTES))?;
            file.write_at(&header(base_position), 0)?;
            file.sync_data()?;
            disk.sync_dir(log_dir)
        })();
        if let Err(e) = result {
            // A half-made segment would confuse recovery; it holds no event.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Segment {
            base_position,
            path,
            file,
        })
    }

    /// Opens an existing segment and checks its header.
    pub fn open(disk: &dyn Disk, path: &Path, base_position: u64) -> Result<Segment, OpenError> {
        let file = disk
            .open(path, false)
            .map_err(|e| OpenError::io(format!("opening {}", path.display()), e))?;
        let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
        let n = file
            .read_at(&mut h, 0)
            .map_err(|e| OpenError::io(format!("reading {}", path.display()), e))?;
        let corrupt = |reason: &str| OpenError::Corrupt {
            file: path.to_owned(),
            offset: 0,
            reason: reason.to_owned(),
        };
        if n < h.len() || h[0..8] != SEGMENT_MAGIC {
            return Err(corrupt("not an Eventum segment (bad magic)"));
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&h[0..12]), &h[16..32]);
        if crc != u32::from_le_bytes(h[12..16].try_into().expect("4 bytes")) {
            return Err(corrupt("segment header checksum mismatch"));
        }
        let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(OpenError::UnsupportedFormat {
                file: path.to_owned(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if codec::u64_at(&h, 16) != base_position {
            return Err(corrupt(
                "segment header names another base position than its file name",
            ));
        }
        Ok(Segment {
            base_position,
            path: path.to_owned(),
            file,
        })
    }

    /// Reads the one record at `offset`.
    pub fn read_record(&self, offset: u64) -> io::Result<Result<Bytes, &'static str>> {
        let mut buf = BytesMut::zeroed(4096);
        let n = self.file.read_at(&mut buf, offset)?;
        buf.truncate(n);
        match codec::check(&buf) {
            Decoded::Record(len) => Ok(Ok(buf.freeze().slice(..len))),
            Decoded::Incomplete { needed } => {
                let mut buf = BytesMut::zeroed(needed);
                let n = self.file.read_at(&mut buf, offset)?;
                buf.truncate(n);
                match codec::check(&buf) {
                    Decoded::Record(len) => Ok(Ok(buf.freeze().slice(..len))),
                    Decoded::Invalid(reason) => Ok(Err(reason)),
                    _ => Ok(Err("record cut short")),
                }
            }
            Decoded::End => Ok(Err("no record at this offset")),
            Decoded::Invalid(reason) => Ok(Err(reason)),
        }
    }
}

/// Lists `(base_position, path)` of the segment files in `log_dir`, in order.
pub fn list(log_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(log_dir)? {
        let path = entry?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(base) = base {
            out.push((base, path));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What a [`Cursor`] found next.
pub enum Step {
    Record {
        offset: u64,
        record: Bytes,
    },
    /// The written part of the segment ends here.
    End {
        offset: u64,
    },
    Invalid {
        offset: u64,
        reason: &'static str,
    },
}

/// Reads a segment's records in order through a buffer of `chunk_bytes`, so that decoded
/// events share a few large allocations instead of one each.
pub struct Cursor<'a> {
    segment: &'a Segment,
    offset: u64,
    buf: Bytes,
    buf_start: u64,
    chunk_bytes: usize,
    eof: bool,
    /// Pages before this offset are dropped from the page cache once read past (see
    /// [`Cursor::dropping_read_pages_before`]); 0 drops none.
    drop_before: u64,
    /// Pages before this offset were dropped.
    dropped_to: u64,
}

impl<'a> Cursor<'a> {
    pub fn new(segment: &'a Segment, offset: u64, chunk_bytes: usize) -> Self {
        Self {
            segment,
            offset,
            buf: Bytes::new(),
            buf_start: offset,
            chunk_bytes: chunk_bytes.max(4096),
            eof: false,
            drop_before: 0,
            dropped_to: offset / PAGE_BYTES * PAGE_BYTES,
        }
    }

    /// Makes the cursor drop the pages it has read past from the page cache, up to
    /// `end`, as it goes, so that a scan of old events reuses a few warm pages instead of
    /// growing the cache by all it reads (why that matters:
    /// [`crate::disk::SegmentFile::drop_cached`]). For old parts of sealed segments only:
    /// recent events stay cached for the readers that want them again. A failed drop
    /// only stops dropping.
    pub fn dropping_read_pages_before(mut self, end: u64) -> Self {
        self.drop_before = end;
        self
    }

    fn drop_read_pages(&mut self) {
        let end = self.offset.min(self.drop_before) / PAGE_BYTES * PAGE_BYTES;
        if end <= self.dropped_to {
            return;
        }
        if self
            .segment
            .file
            .drop_cached(self.dropped_to, end - self.dropped_to)
            .is_err()
        {
            self.drop_before = 0;
        }
        self.dropped_to = end;
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn fill(&mut self, needed: usize) -> io::Result<()> {
        if self.drop_before > 0 {
            self.drop_read_pages();
        }
        let mut buf = BytesMut::zeroed(self.chunk_bytes.max(needed));
        let n = self.segment.file.read_at(&mut buf, self.offset)?;
        buf.truncate(n);
        self.eof = n < buf.capacity().min(self.chunk_bytes.max(needed));
        self.buf = buf.freeze();
        self.buf_start = self.offset;
        Ok(())
    }

    pub fn next_step(&mut self) -> io::Result<Step> {
        loop {
            let at = (self.offset - self.buf_start) as usize;
            let available = self.buf.len().saturating_sub(at);
            let window = &self.buf[at.min(self.buf.len())..];
            let decoded = if available == 0 {
                Decoded::Incomplete { needed: 4 }
            } else {
                codec::check(window)
            };
            match decoded {
                Decoded::Record(len) => {
                    let record = self.buf.slice(at..at + len);
                    let offset = self.offset;
                    self.offset += len as u64;
                    return Ok(Step::Record { offset, record });
                }
                Decoded::End => {
                    return Ok(Step::End {
                        offset: self.offset,
                    });
                }
                Decoded::Invalid(reason) => {
                    return Ok(Step::Invalid {
                        offset: self.offset,
                        reason,
                    });
                }
                Decoded::Incomplete { needed } => {
                    if self.eof && at + needed > self.buf.len() && self.buf_start == self.offset {
                        return Ok(if available == 0 || window.iter().all(|b| *b == 0) {
                            Step::End {
                                offset: self.offset,
                            }
                        } else {
                            Step::Invalid {
                                offset: self.offset,
                                reason: "record cut short by the end of the file",
                            }
                        });
                    }
                    self.fill(needed)?;
                }
            }
        }
    }
}
