//! `verify`: an offline check of every record of a data directory, and the operator's
//! repair, which truncates the log at the first corrupt record and drops the index so that
//! the next open rebuilds it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogConfig;
use crate::disk::RealDisk;
use crate::error::OpenError;
use crate::recovery::{self, ScanEnd};
use crate::segment::SEGMENT_HEADER_BYTES;

/// What `verify` found (and, with repair, did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub segments: usize,
    /// Valid events of whole groups before any corruption or torn tail: those a repair
    /// (or the next open) keeps.
    pub events: u64,
    pub head_position: Option<u64>,
    /// The first corrupt record: file, byte offset, reason.
    pub corruption: Option<(PathBuf, u64, String)>,
    /// Where a torn tail (the remains of a write cut short by a crash) starts; opening the
    /// store truncates it.
    pub torn_tail_at: Option<(PathBuf, u64)>,
    /// Whether the log was repaired (truncated at the corruption, index dropped).
    pub repaired: bool,
}

impl VerifyReport {
    /// Whether the log is fit to open without losing anything further.
    pub fn is_healthy(&self) -> bool {
        self.corruption.is_none() || self.repaired
    }
}

/// Checks every record of the log in `dir`; with `repair`, truncates the log at the first
/// corrupt record, or at the start of the append it belongs to (events from there on are
/// lost), and removes the index. Takes the directory's lock, so it refuses to run beside
/// a server.
pub fn verify(dir: &Path, repair: bool) -> Result<VerifyReport, OpenError> {
    let _lock = recovery::lock(dir)?;
    let config = LogConfig::default();
    let log_dir = dir.join("log");
    if !log_dir.is_dir() {
        return Err(OpenError::io(
            format!("{} holds no Eventum log", dir.display()),
            std::io::ErrorKind::NotFound.into(),
        ));
    }
    let segments = recovery::open_segments(&RealDisk, &log_dir, &config)?;
    let mut events = 0u64;
    let end = recovery::scan(
        &segments,
        (0, SEGMENT_HEADER_BYTES, 0),
        config.read_buffer_bytes,
        |_, _, _, _| {
            events += 1;
            Ok(())
        },
    )?;
    let mut report = VerifyReport {
        segments: segments.len(),
        events,
        head_position: events.checked_sub(1),
        corruption: None,
        torn_tail_at: None,
        repaired: false,
    };
    match end {
        ScanEnd::Clean { torn_at, .. } => {
            let last = segments.last().expect("at least one segment");
            report.torn_tail_at = torn_at.map(|at| (last.path.clone(), at));
            if let (Some(at), true) = (torn_at, repair) {
                recovery::truncate(last, at, last.file.len().unwrap_or(config.segment_bytes))?;
                report.repaired = true;
            }
        }
        ScanEnd::Corrupt {
            segment,
            offset,
            reason,
            keep_until,
        } => {
            report.corruption = Some((segments[segment].path.clone(), offset, reason));
            if repair {
                cut(&segments, segment, keep_until, &config)?;
                let index = dir.join("index.redb");
                if index.exists() {
                    std::fs::remove_file(&index)
                        .map_err(|e| OpenError::io(format!("removing {}", index.display()), e))?;
                }
                report.repaired = true;
            }
        }
    }
    Ok(report)
}

/// Truncates segment `i` at `offset` (or removes it when the cut is at its header) and
/// removes every later segment.
fn cut(
    segments: &[Arc<crate::segment::Segment>],
    i: usize,
    offset: u64,
    config: &LogConfig,
) -> Result<(), OpenError> {
    for later in &segments[i + 1..] {
        std::fs::remove_file(&later.path)
            .map_err(|e| OpenError::io(format!("removing {}", later.path.display()), e))?;
    }
    let segment = &segments[i];
    if offset < SEGMENT_HEADER_BYTES && i > 0 {
        return std::fs::remove_file(&segment.path)
            .map_err(|e| OpenError::io(format!("removing {}", segment.path.display()), e));
    }
    // Keep the segment's own preallocated size, which may differ from the default.
    let size_bytes = segment.file.len().unwrap_or(config.segment_bytes);
    recovery::truncate(segment, offset.max(SEGMENT_HEADER_BYTES), size_bytes)
}
