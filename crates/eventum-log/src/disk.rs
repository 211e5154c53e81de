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

/// Whether an I/O error means the device is out of space.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// The path of the segment whose first position is `base_position`.
pub fn segment_path(log_dir: &Path, base_position: u64) -> PathBuf {
    log_dir.join(format!("{base_position:020}.seg"))
}
