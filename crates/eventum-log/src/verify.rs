//! PLACEHOLDER API SURFACE — being implemented.
use std::path::{Path, PathBuf};

use crate::OpenError;

/// What `verify` found (and, with repair, did).
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub segments: usize,
    pub events: u64,
    pub head_position: Option<u64>,
    /// The first corrupt record: file, byte offset, reason.
    pub corruption: Option<(PathBuf, u64, String)>,
    /// Bytes cut off the log (a torn tail, or with repair everything from the corruption on).
    pub truncated_bytes: u64,
    pub repaired: bool,
}

/// Checks every record of the log in `dir`; with `repair`, truncates the log at the first
/// corrupt record and rebuilds the index.
pub fn verify(dir: &Path, repair: bool) -> Result<VerifyReport, OpenError> {
    let _ = (dir, repair);
    todo!()
}
