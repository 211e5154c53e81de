//! The raw-disk baselines of `eventum bench`: the very records the store writes, written
//! to preallocated files with `pwrite` + `fdatasync` and nothing else, to show how close
//! the store runs to the disk.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventum_log::codec::{self, RecordHeader};
use eventum_log::disk::{Disk, RealDisk, SegmentFile};

use crate::bench::{Scenario, histogram, progress, scenario};

/// Bytes each baseline file is preallocated to, as the store's segments are.
const FILE_BYTES: u64 = 256 * 1024 * 1024;

fn record(position: u64, data: &[u8], buf: &mut Vec<u8>) {
    let id = uuid::Uuid::now_v7();
    codec::encode(
        &RecordHeader {
            position,
            group_first_position: position,
            stream_version: position,
            recorded_at_us: 0,
            id,
            correlation_id: id,
            causation_id: id,
            stream: "bench-raw",
            event_type: "BenchEvent",
            data,
            metadata: &[],
        },
        buf,
    );
}

/// A sequence of preallocated files written front to back.
struct RawLog<'a> {
    dir: &'a Path,
    file: std::sync::Arc<dyn SegmentFile>,
    offset: u64,
    files: u64,
    /// Where readying ahead (`SegmentFile::prepare`) got to in the current file.
    prepared_to: u64,
    /// The store's default readying lead and chunk, in bytes.
    prepare_ahead_bytes: u64,
    prepare_chunk_bytes: u64,
}

impl<'a> RawLog<'a> {
    fn new(dir: &'a Path) -> std::io::Result<Self> {
        let file = RealDisk.open(&dir.join("raw-0"), true)?;
        file.allocate(FILE_BYTES)?;
        let defaults = eventum_log::LogConfig::default();
        Ok(Self {
            dir,
            file,
            offset: 0,
            files: 1,
            prepared_to: 0,
            prepare_ahead_bytes: defaults.prepare_ahead_bytes,
            prepare_chunk_bytes: defaults.prepare_chunk_bytes,
        })
    }

    /// Writes `buf` with one pwrite and one fdatasync; returns the fdatasync's duration.
    fn write_durably(&mut self, buf: &[u8]) -> std::io::Result<Duration> {
        if self.offset + buf.len() as u64 > FILE_BYTES {
            // Keep disk use bounded: one file at a time.
            let old = self.dir.join(format!("raw-{}", self.files - 1));
            self.file = RealDisk.open(&self.dir.join(format!("raw-{}", self.files)), true)?;
            self.file.allocate(FILE_BYTES)?;
            std::fs::remove_file(old)?;
            self.files += 1;
            self.offset = 0;
            self.prepared_to = 0;
        }
        self.file.write_at(buf, self.offset)?;
        self.offset += buf.len() as u64;
        let t = Instant::now();
        self.file.sync_data()?;
        Ok(t.elapsed())
    }

    /// Readies the file ahead of the write offset as the store's writer does while idle,
    /// with the store's default lead and chunk. Here it runs in the loop, between syncs.
    fn ready_ahead(&mut self) -> std::io::Result<()> {
        while let Some((from, len)) = eventum_log::disk::next_prepare_range(
            self.prepared_to,
            self.offset,
            self.prepare_ahead_bytes,
            self.prepare_chunk_bytes,
            FILE_BYTES,
        ) {
            self.file.prepare(from, len)?;
            self.prepared_to = from + len;
        }
        Ok(())
    }
}

/// Records written `per_sync` at a time: one write and one fdatasync per group; with
/// `readied`, the file is also readied ahead of the writes as the store's segments are.
pub fn batched(
    dir: &Path,
    data: &Bytes,
    per_sync: u64,
    readied: bool,
    duration: Duration,
    quiet: bool,
) -> anyhow::Result<Scenario> {
    let name = if readied {
        format!("raw write+fdatasync per {per_sync}, readied")
    } else {
        format!("raw write+fdatasync per {per_sync}")
    };
    let bar = progress(quiet, duration.as_secs(), &name);
    let mut log = RawLog::new(dir)?;
    let mut buf = Vec::new();
    let (mut events, mut latency) = (0u64, histogram());
    let started = Instant::now();
    while started.elapsed() < duration {
        buf.clear();
        for i in 0..per_sync {
            record(events + i, data, &mut buf);
        }
        let t = Instant::now();
        log.write_durably(&buf)?;
        if readied {
            log.ready_ahead()?;
        }
        latency.saturating_record(t.elapsed().as_micros() as u64);
        events += per_sync;
        bar.set_position(started.elapsed().as_secs());
    }
    bar.finish_and_clear();
    Ok(scenario(name, events, started.elapsed(), Some(&latency)))
}

/// One record per fdatasync; its latency is the fdatasync latency the single-writer
/// target is measured against.
pub fn single(
    dir: &Path,
    data: &Bytes,
    duration: Duration,
    quiet: bool,
) -> anyhow::Result<Scenario> {
    let name = "raw fdatasync per record".to_owned();
    let bar = progress(quiet, duration.as_secs(), &name);
    let mut log = RawLog::new(dir)?;
    let mut buf = Vec::new();
    let (mut events, mut fsync) = (0u64, histogram());
    let started = Instant::now();
    while started.elapsed() < duration {
        buf.clear();
        record(events, data, &mut buf);
        let took = log.write_durably(&buf)?;
        fsync.saturating_record(took.as_micros() as u64);
        events += 1;
        bar.set_position(started.elapsed().as_secs());
    }
    bar.finish_and_clear();
    Ok(scenario(name, events, started.elapsed(), Some(&fsync)))
}
