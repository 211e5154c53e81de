//! [`ReadConfig`] (where the read side lives and the bounds of documents and queries) and
//! [`ConsumerConfig`] (the bounds of one consumer's batches, retries and inbox), with
//! their documented defaults.

/// Where the read side lives and the bounds it keeps.
#[derive(Clone, Debug)]
pub struct ReadConfig {
    /// A libpq-style URL, e.g. `postgres://postgres@127.0.0.1:5432/eventum`.
    pub url: String,
    /// The schema holding the read-side tables; created if missing. It may be the event
    /// store's own schema (the table names do not collide). Default `eventum`.
    pub schema: String,
    /// Most pooled connections (one per running batch or query). Default 8.
    pub pool_size_max: usize,
    /// Longest an operation waits for a pooled connection. Default 5,000 ms.
    pub pool_wait_ms_max: u64,
    /// Longest a new connection may take. Default 5,000 ms.
    pub connect_timeout_ms: u64,
    /// Largest stored document (its JSON text), in bytes. Default 1 MiB.
    pub doc_bytes_max: usize,
    /// Longest document key, in bytes. Default 512.
    pub key_bytes_max: usize,
    /// Largest `limit` of `list` and `find`. Default 1,000.
    pub query_limit_max: usize,
    /// Documents one [`crate::DocumentTx`] keeps decoded before it writes the changed ones
    /// into the transaction early and starts over. Default 20,000.
    pub tx_cached_docs_max: usize,
}

impl ReadConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "eventum".to_owned(),
            pool_size_max: 8,
            pool_wait_ms_max: 5_000,
            connect_timeout_ms: 5_000,
            doc_bytes_max: 1024 * 1024,
            key_bytes_max: 512,
            query_limit_max: 1_000,
            tx_cached_docs_max: 20_000,
        }
    }

    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }
}

/// The bounds of one consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Most events handed to the handler and committed in one transaction. Default 500.
    pub batch_events_max: usize,
    /// Longest a batch waits for more events after its first one, in ms. Default 10.
    pub batch_latency_ms_max: u64,
    /// Where a consumer without a checkpoint starts. Default 0 (the whole log).
    pub start_position: u64,
    /// Event ids the inbox keeps per consumer (at least the largest window of events that
    /// can be delivered again beyond the checkpoint: a batch for a log consumer, a consumer
    /// group's checkpoint interval plus its in-flight window for a group consumer). Pruned
    /// once `inbox_ids_max / 8` more ids were recorded. Default 10,000.
    pub inbox_ids_max: u64,
    /// Whether events of `$`-prefixed system streams (checkpoints, metadata, registries)
    /// reach the handler; they move the checkpoint either way. Default false.
    pub include_system_streams: bool,
    /// First delay before a failed batch is tried again (transient failures only: a lost
    /// connection, a serialization failure, a handler's [`crate::HandlerError::transient`]).
    /// Doubles up to `retry_delay_ms_max`. Default 100 ms.
    pub retry_delay_ms_min: u64,
    /// Longest delay between tries. Default 5,000 ms.
    pub retry_delay_ms_max: u64,
    /// Most tries of one batch before the consumer stops as failed; `None` retries until
    /// the database is back. Default `None`.
    pub retry_attempts_max: Option<u32>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            batch_events_max: 500,
            batch_latency_ms_max: 10,
            start_position: 0,
            inbox_ids_max: 10_000,
            include_system_streams: false,
            retry_delay_ms_min: 100,
            retry_delay_ms_max: 5_000,
            retry_attempts_max: None,
        }
    }
}
