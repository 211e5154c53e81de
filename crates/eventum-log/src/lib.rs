//! Eventum's embedded storage engine: an append-only, checksummed, preallocated segment
//! log with group commit, a persisted stream index, crash recovery and verification.

pub mod config;
pub mod error;
mod store;
pub mod verify;

pub use config::LogConfig;
pub use error::OpenError;
pub use store::LogStore;
pub use verify::{VerifyReport, verify};
