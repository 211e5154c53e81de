//! Errors of opening and verifying a data directory.

use std::path::PathBuf;

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the directory's lock.
    #[error("data directory {dir} is in use by another process (lock file {dir}/LOCK)")]
    Locked { dir: PathBuf },
    /// A record before the end of the log fails its checksum or does not decode. Nothing
    /// was served; `eventum verify --repair` truncates the log at this point.
    #[error(
        "corrupt record in {file} at byte offset {offset}: {reason}; run `eventum verify --data DIR --repair` to truncate the log there (events from that point on are lost)"
    )]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The directory holds a format this build does not read.
    #[error("{file}: unsupported format version {found} (this build reads version {supported})")]
    UnsupportedFormat {
        file: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("index {file}: {reason}")]
    Index { file: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl OpenError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        OpenError::Io {
            context: context.into(),
            source,
        }
    }
}
