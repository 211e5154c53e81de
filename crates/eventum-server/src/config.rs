//! The server's own settings: body size bound, read defaults, SSE keep-alive.

use std::time::Duration;

use eventum_core::Limits;

/// Default address the server listens on.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:2113";

/// Bytes allowed per event on top of its data and metadata, for the JSON envelope
/// (`{"id":"…","type":"…","data":…,"metadata":…}`) and some whitespace.
const ENVELOPE_BYTES_PER_EVENT: usize = 256;
/// Fixed bytes allowed for the request envelope (`expected_version`, brackets).
const ENVELOPE_BYTES_FIXED: usize = 64 * 1024;

/// How the HTTP layer behaves. Store limits come from the store itself
/// ([`eventum_core::EventStore::limits`]); this only adds what is HTTP-specific.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes. `None` derives it from the store's limits
    /// (see [`ServerConfig::body_limit_for`]), so a batch the store would accept always
    /// fits and anything far larger is refused with 413 before it is buffered.
    pub body_limit_bytes: Option<usize>,
    /// Events a read returns when the request gives no `limit`.
    pub default_read_limit: usize,
    /// Interval of SSE keep-alive comments, so proxies and clients see a live connection.
    pub keep_alive: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: None,
            default_read_limit: 100,
            keep_alive: Duration::from_secs(15),
        }
    }
}

impl ServerConfig {
    /// The effective body limit for a store with `limits`.
    pub fn body_limit_for(&self, limits: &Limits) -> usize {
        self.body_limit_bytes.unwrap_or_else(|| {
            limits
                .batch_bytes_max
                .saturating_add(
                    limits
                        .batch_events_max
                        .saturating_mul(ENVELOPE_BYTES_PER_EVENT),
                )
                .saturating_add(ENVELOPE_BYTES_FIXED)
        })
    }
}
