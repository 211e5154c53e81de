//! The file-system boundary of the log: every segment read, write, sync and allocation
//! goes through [`Disk`], so that tests can inject I/O errors, a full disk and torn writes
//! into the real engine.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One open segment file.
#[allow(clippy::len_without_is_empty)] // a file's length, not a collection's
pub trait SegmentFile: Send + Sync {
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Makes written data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Reserves `len` bytes of zeros so later writes need no allocation.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Readies `offset..offset + len`, allocated and not yet reached by any record, for
    /// cheap syncs: writes zeros over it and starts writing them back, without waiting.
    ///
    /// Why: `allocate` leaves the blocks *unwritten* (ext4, XFS); the first sync of data in
    /// such a block also converts the extent, a metadata write of its own: on this
    /// machine's disk an `fdatasync` of 66 KB took ~290 µs there and ~120 µs (p50) over
    /// blocks already written, and under other file-system traffic the metadata write
    /// stalled syncs for milliseconds. Converting ahead of the writer, a MiB at a time,
    /// costs one metadata write per chunk instead of one per sync. The zeros equal what
    /// the range reads as already, so a crash at any point changes nothing.
    fn prepare(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Drops `offset..offset + len`, written and durable, from the page cache
    /// (`POSIX_FADV_DONTNEED`); later reads of it go to the disk. Pages still dirty are
    /// left alone (the kernel only starts their write-back).
    ///
    /// Why: a log written front to back otherwise grows the page cache by every byte it
    /// writes. On a virtual machine whose host takes back guest memory the guest has
    /// freed, each page the cache grows into is new to the host: on this machine
    /// touching such memory cost ~11 µs per 4 KiB page against ~1.5 µs for memory in
    /// recent use, and `pwrite`'s copy into fresh cache pages took 3/4 of the writer's
    /// time at ~850k events/s. Dropped pages go back to the free lists, and the next
    /// writes reuse them while they are still warm.
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
}

/// The directory operations the log needs.
pub trait Disk: Send + Sync {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>>;
    /// Makes a directory's entries (new files) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealDisk;

struct RealFile(File);

impl SegmentFile for RealFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.0.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on an fd we own; no memory is passed.
        let rc = unsafe { libc::fallocate(self.0.as_raw_fd(), 0, 0, len as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
            // File systems without fallocate: extend the file; the zeros are implicit.
            if self.0.metadata()?.len() < len {
                self.0.set_len(len)?;
            }
            return Ok(());
        }
        Err(err)
    }
    fn prepare(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // Made once, at first use: a zeroed static would add its MiB to the binary.
        static ZEROS: std::sync::OnceLock<Box<[u8]>> = std::sync::OnceLock::new();
        let zeros = ZEROS.get_or_init(|| vec![0; 1 << 20].into_boxed_slice());
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len() as u64) as usize;
            self.0.write_all_at(&zeros[..n], offset + done)?;
            done += n as u64;
        }
        // SAFETY: plain syscall on an fd we own; no memory is passed.
        let rc = unsafe {
            libc::sync_file_range(
                self.0.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on an fd we own; no memory is passed.
        let rc = unsafe {
            libc::posix_fadvise(
                self.0.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        // posix_fadvise returns the error number instead of setting errno.
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Disk for RealDisk {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)?;
        Ok(Arc::new(RealFile(file)))
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

/// Faults to inject, shared between a test and the [`FaultyDisk`] it handed to the store.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// Fail every `sync_data` with EIO once set.
    pub fail_sync: AtomicBool,
    /// While set, every `sync_data` waits until it is cleared, as a slow disk would: a
    /// test sees what the store does between writing a group and syncing it. (It checks
    /// `fail_sync` after the wait.)
    pub hold_sync: AtomicBool,
    /// Fail every `write_at` with EIO once set.
    pub fail_write: AtomicBool,
    /// Fail `allocate` (a new segment) with ENOSPC once set.
    pub disk_full: AtomicBool,
    /// Fail every `prepare` with EIO once set.
    pub fail_prepare: AtomicBool,
    /// Bytes `prepare` readied so far (a test's evidence that it ran).
    pub prepared_bytes: AtomicU64,
    /// The ranges `drop_cached` dropped so far, in order (a test's evidence).
    pub dropped_ranges: std::sync::Mutex<Vec<(u64, u64)>>,
    /// When non-zero, the next write stores only this many bytes and then fails, as a
    /// crash mid-write would leave it.
    pub torn_write_bytes: AtomicU64,
}

/// A [`Disk`] over the real file system that injects the faults of a [`FaultPlan`].
pub struct FaultyDisk {
    pub plan: Arc<FaultPlan>,
}

struct FaultyFile {
    inner: Arc<dyn SegmentFile>,
    plan: Arc<FaultPlan>,
}

fn injected(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl SegmentFile for FaultyFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.plan.fail_write.load(Ordering::SeqCst) {
            return Err(injected(libc::EIO));
        }
        if self.plan.disk_full.load(Ordering::SeqCst)
            && offset + buf.len() as u64 > self.inner.len()?
        {
            return Err(injected(libc::ENOSPC));
        }
        let torn = self.plan.torn_write_bytes.swap(0, Ordering::SeqCst) as usize;
        if torn > 0 {
            self.inner.write_at(&buf[..torn.min(buf.len())], offset)?;
            return Err(injected(libc::EIO));
        }
        self.inner.write_at(buf, offset)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        while self.plan.hold_sync.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if self.plan.fail_sync.load(Ordering::SeqCst) {
            return Err(injected(libc::EIO));
        }
        self.inner.sync_data()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        if self.plan.disk_full.load(Ordering::SeqCst) {
            return Err(injected(libc::ENOSPC));
        }
        self.inner.allocate(len)
    }
    fn prepare(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.plan.fail_write.load(Ordering::SeqCst)
            || self.plan.fail_prepare.load(Ordering::SeqCst)
        {
            return Err(injected(libc::EIO));
        }
        self.inner.prepare(offset, len)?;
        self.plan.prepared_bytes.fetch_add(len, Ordering::SeqCst);
        Ok(())
    }
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.drop_cached(offset, len)?;
        let mut dropped = self
            .plan
            .dropped_ranges
            .lock()
            .expect("dropped ranges poisoned");
        dropped.push((offset, len));
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl Disk for FaultyDisk {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(FaultyFile {
            inner: RealDisk.open(path, create)?,
            plan: self.plan.clone(),
        }))
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        RealDisk.sync_dir(path)
    }
}

/// The page size the page cache works in (readying and dropping go in whole pages).
pub const PAGE_BYTES: u64 = 4096;

/// The next range of a file to ready with [`SegmentFile::prepare`], if any: whole pages,
/// a whole `chunk_bytes` at a time (syncs then meet few partly readied pages), starting
/// at the page after `write_offset` or where readying stopped (`prepared_to`), and only
/// while it ends within `ahead_bytes` of the write offset and inside the file's
/// `allocated_bytes`. The page holding `write_offset` is never included: records end in
/// it.
pub fn next_prepare_range(
    prepared_to: u64,
    write_offset: u64,
    ahead_bytes: u64,
    chunk_bytes: u64,
    allocated_bytes: u64,
) -> Option<(u64, u64)> {
    let chunk = chunk_bytes.max(1).div_ceil(PAGE_BYTES) * PAGE_BYTES;
    let from = prepared_to.max(write_offset.div_ceil(PAGE_BYTES) * PAGE_BYTES);
    let wanted = from.saturating_add(chunk) <= write_offset.saturating_add(ahead_bytes);
    let len = chunk.min(allocated_bytes.saturating_sub(from));
    (wanted && len > 0).then_some((from, len))
}

/// Whether an I/O error means the device is out of space.
/// The next range of a file to drop from the page cache with
/// [`SegmentFile::drop_cached`], if any: from where dropping stopped (`dropped_to`) to
/// the page boundary at or before `keep_bytes` behind `write_offset`, once that is at
/// least `chunk_bytes` (one call per chunk, not per write). A `keep_bytes` of 0 turns
/// dropping off.
pub fn next_drop_range(
    dropped_to: u64,
    write_offset: u64,
    keep_bytes: u64,
    chunk_bytes: u64,
) -> Option<(u64, u64)> {
    if keep_bytes == 0 {
        return None;
    }
    let end = write_offset.checked_sub(keep_bytes)? / PAGE_BYTES * PAGE_BYTES;
    let len = end.checked_sub(dropped_to)?;
    (len > 0 && len >= chunk_bytes).then_some((dropped_to, len))
}

pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// The path of the segment whose first position is `base_position`.
pub fn segment_path(log_dir: &Path, base_position: u64) -> PathBuf {
    log_dir.join(format!("{base_position:020}.seg"))
}

#[cfg(test)]
mod tests {
    use super::{next_drop_range, next_prepare_range};

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn readying_starts_past_the_page_holding_the_last_record() {
        // A record ends mid-page at 5000: readying starts at the next page, 8192.
        assert_eq!(
            next_prepare_range(0, 5000, 8 * MIB, MIB, 256 * MIB),
            Some((8192, MIB))
        );
        // On a page boundary nothing of the last record is in the next page.
        assert_eq!(
            next_prepare_range(0, 8192, 8 * MIB, MIB, 256 * MIB),
            Some((8192, MIB))
        );
    }

    #[test]
    fn readying_goes_on_where_it_stopped_and_keeps_within_the_lead() {
        assert_eq!(
            next_prepare_range(3 * MIB, 100, 8 * MIB, MIB, 256 * MIB),
            Some((3 * MIB, MIB))
        );
        // A further chunk would end past write offset + lead: wait for the writer.
        assert_eq!(
            next_prepare_range(8 * MIB, 100, 8 * MIB, MIB, 256 * MIB),
            None
        );
        // The writer overtook the readied part: start again after it.
        assert_eq!(
            next_prepare_range(MIB, 2 * MIB + 1, 8 * MIB, MIB, 256 * MIB),
            Some((2 * MIB + 4096, MIB))
        );
    }

    #[test]
    fn readying_stays_in_the_file_and_in_whole_pages() {
        // The last chunk is cut at the allocated end; then nothing is left.
        assert_eq!(
            next_prepare_range(10 * MIB - 4096, 9 * MIB, 8 * MIB, MIB, 10 * MIB),
            Some((10 * MIB - 4096, 4096))
        );
        assert_eq!(
            next_prepare_range(10 * MIB, 9 * MIB, 8 * MIB, MIB, 10 * MIB),
            None
        );
        // Chunks are rounded up to whole pages.
        assert_eq!(next_prepare_range(0, 0, MIB, 5000, MIB), Some((0, 8192)));
    }

    #[test]
    fn a_zero_lead_turns_readying_off() {
        assert_eq!(next_prepare_range(0, 5000, 0, MIB, 256 * MIB), None);
    }

    #[test]
    fn dropping_waits_for_a_whole_chunk_behind_the_kept_bytes() {
        // 64 MiB kept, 4 MiB chunks: nothing until the writer is 68 MiB in.
        assert_eq!(next_drop_range(0, 67 * MIB, 64 * MIB, 4 * MIB), None);
        assert_eq!(
            next_drop_range(0, 68 * MIB, 64 * MIB, 4 * MIB),
            Some((0, 4 * MIB))
        );
        // It goes on from where it stopped, and takes all that is due at once.
        assert_eq!(next_drop_range(4 * MIB, 70 * MIB, 64 * MIB, 4 * MIB), None);
        assert_eq!(
            next_drop_range(4 * MIB, 80 * MIB, 64 * MIB, 4 * MIB),
            Some((4 * MIB, 12 * MIB))
        );
    }

    #[test]
    fn dropping_ends_on_a_page_boundary_and_never_reaches_the_kept_bytes() {
        let write_offset = 100 * MIB + 5000;
        let (from, len) = next_drop_range(0, write_offset, 64 * MIB, 1).unwrap();
        assert_eq!(from, 0);
        assert_eq!((from + len) % 4096, 0);
        assert!(from + len <= write_offset - 64 * MIB);
        assert!(from + len > write_offset - 64 * MIB - 4096);
    }

    #[test]
    fn keeping_zero_bytes_turns_dropping_off() {
        assert_eq!(next_drop_range(0, 256 * MIB, 0, MIB), None);
    }
}
