//! Eventum's embedded storage engine: an append-only, checksummed, preallocated segment
//! log with group commit, a persisted stream index, crash recovery and verification.

pub mod codec;
pub mod config;
mod dedupe;
pub mod disk;
pub mod error;
mod file_view;
mod index;
mod indexer;
mod memtable;
mod recovery;
pub mod segment;
mod shared;
mod store;
mod syncer;
pub mod verify;
mod writer;

pub use config::LogConfig;
pub use error::OpenError;
pub use store::LogStore;
pub use verify::{VerifyReport, verify};
