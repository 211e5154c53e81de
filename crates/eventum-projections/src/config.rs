//! The bounds of the read-model store ([`StoreConfig`]) and of projection runners
//! ([`RunnerConfig`]), with their documented defaults.

/// Bounds of the read-model store: every document, key, query and inbox is limited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Largest stored document (its JSON text), in bytes. Default 1 MiB.
    pub doc_bytes_max: usize,
    /// Longest document key, in bytes. Default 512.
    pub key_bytes_max: usize,
    /// Longest value a lookup indexes, in bytes. Default 256.
    pub lookup_value_bytes_max: usize,
    /// Most values one document may put into one lookup (array fields). Default 64.
    pub lookup_values_per_doc_max: usize,
    /// Largest `limit` of `list` and `find`. Default 1,000.
    pub query_limit_max: usize,
    /// Event ids each consumer's inbox keeps; the oldest is evicted beyond this.
    /// Default 10,000.
    pub inbox_ids_max: u64,
    /// Documents a general transaction ([`crate::StoreTx`]) keeps decoded in memory
    /// before writing them into the transaction early. Default 20,000.
    pub tx_cached_docs_max: usize,
    /// redb page cache, in bytes. Default 64 MiB.
    pub cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            doc_bytes_max: 1024 * 1024,
            key_bytes_max: 512,
            lookup_value_bytes_max: 256,
            lookup_values_per_doc_max: 64,
            query_limit_max: 1_000,
            inbox_ids_max: 10_000,
            tx_cached_docs_max: 20_000,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Bounds of a projection runner (async, inline and rebuild share them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Most events applied and committed in one transaction while following live.
    /// Default 1,000.
    pub batch_events_max: usize,
    /// Longest a live batch waits for more events after its first one, in
    /// milliseconds. Default 20.
    pub batch_latency_ms_max: u64,
    /// Events per read (and per transaction) while catching up or rebuilding; clamped
    /// to the event store's `read_events_max`. Default 10,000.
    pub catch_up_batch_events_max: usize,
    /// Events per transaction while building a new generation (several reads of
    /// `catch_up_batch_events_max`). Default 100,000.
    pub rebuild_batch_events_max: usize,
    /// While building a new generation, only every n-th batch commit is durable (the
    /// others are not fsynced; a crash loses only rebuild progress, never consistency,
    /// because the checkpoint is in the same transaction). Default 4.
    pub rebuild_durable_every_batches: u64,
    /// Documents a projection keeps decoded, within and between batches (it is the only
    /// writer of its generation, so the cache stays true); when full, pending writes go
    /// into the transaction and the cache starts over. Default 100,000.
    pub doc_cache_entries_max: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_events_max: 1_000,
            batch_latency_ms_max: 20,
            catch_up_batch_events_max: 10_000,
            rebuild_batch_events_max: 100_000,
            rebuild_durable_every_batches: 4,
            doc_cache_entries_max: 100_000,
        }
    }
}
