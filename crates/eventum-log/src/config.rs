//! The embedded store's tunables. Every queue, batch, buffer and cache has a bound here.

use eventum_core::Limits;

/// Configuration of a [`crate::LogStore`]. The defaults suit a 2-core machine with a few
/// hundred MiB to spare.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Input limits (event size, batch size, read size).
    pub limits: Limits,
    /// Size a new segment file is preallocated to; a segment rolls over when the next
    /// group would not fit.
    pub segment_bytes: u64,
    /// Bytes of the active segment, past the last record, that the writer readies
    /// ([`crate::disk::SegmentFile::prepare`]: zeros written and written back) while it
    /// has nothing else to do, so that syncs of later appends write no file metadata.
    /// 0 turns this off.
    pub prepare_ahead_bytes: u64,
    /// Bytes readied in one step; the writer checks for appends between steps.
    pub prepare_chunk_bytes: u64,
    /// Bytes of the active segment behind the write offset left in the page cache; the
    /// writer drops older pages as it passes them (see
    /// [`crate::disk::SegmentFile::drop_cached`]), so that the cache the log occupies
    /// stays bounded and new writes reuse warm pages. Recent events, which live readers
    /// and aggregates read, stay cached; reads further back go to the disk. 0 keeps
    /// everything.
    pub cache_behind_bytes: u64,
    /// Bytes dropped from the page cache in one step (one `posix_fadvise` call).
    pub cache_drop_chunk_bytes: u64,
    /// Most append requests queued for the writer; further callers wait (backpressure).
    pub append_queue_requests_max: usize,
    /// Most events written and synced as one group.
    pub group_commit_events_max: usize,
    /// Most bytes written and synced as one group.
    pub group_commit_bytes_max: usize,
    /// Most written groups waiting for the syncer, all covered by its next `fdatasync`;
    /// the writer waits beyond this.
    pub sync_groups_max: usize,
    /// Longest the syncer waits, before a sync, for as many requests as its last sync
    /// answered (those callers are likely sending their next appends); 0 syncs whatever
    /// is written at once. It only waits while fewer requests are written than the last
    /// sync answered, so a lone caller never waits. Measured with 16 single-event writers
    /// on this machine's disk: 0 µs 34–38k appends/s, 100 µs 45k/s.
    pub sync_linger_us_max: u64,
    /// Committed batches the live broadcast keeps for subscribers; a subscriber further
    /// behind reads from the log instead.
    pub live_buffer_batches: usize,
    /// Events one catch-up read of a subscription fetches; a subscriber catching up
    /// holds up to this many (~2 MiB of 500-byte events at the default). Each read
    /// starts its cursor anew, so small reads cost more than their events: catching up
    /// from the disk on this machine ran at 1.2 M events/s with 1,024 and 2.0–2.2 M/s with
    /// 4,096.
    pub catch_up_batch_events: usize,
    /// Streams whose state the writer keeps in memory. The table is sized for this many
    /// at open (~48 bytes each, pages touched as it fills), so it never rehashes on the
    /// writer thread.
    pub stream_cache_entries: usize,
    /// Recent event ids kept to recognise a retried append with expected version
    /// `any`/`exists` (exact and `no_stream` retries are recognised at any age). At least
    /// this many of the latest ids are kept, and at most twice as many (two generations,
    /// both tables sized at open: ~40 bytes per id each, pages touched as they fill).
    pub dedupe_window_events: usize,
    /// Durable events the indexer may lag behind by; the writer waits beyond this. Must
    /// not exceed `dedupe_window_events` (retries of unindexed appends are recognised by
    /// the window only), and is clamped to it.
    pub index_pending_events_max: usize,
    /// Bytes of the index file's page cache.
    pub index_cache_bytes: usize,
    /// Index entries kept in memory (readable at once) before they are written to the
    /// index file; they are also written at every index sync (about once a second).
    /// Larger values turn more single-event appends into one run per stream. While a
    /// flush writes a snapshot, the memtable holds up to this many entries more (and the
    /// snapshot its own copy).
    pub index_memtable_events_max: usize,
    /// Bytes of decoded-segment read buffer per reader.
    pub read_buffer_bytes: usize,
    /// Events a stream read fetches on the caller's task before handing the rest to the
    /// blocking pool. Aggregate loads are mostly a few events already in the page cache:
    /// reading them in place saves two thread hand-offs, and the bound keeps the time a
    /// runtime worker blocks short. 0 sends every read to the pool.
    pub inline_read_events_max: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            segment_bytes: 256 * 1024 * 1024,
            prepare_ahead_bytes: 8 * 1024 * 1024,
            prepare_chunk_bytes: 1024 * 1024,
            cache_behind_bytes: 64 * 1024 * 1024,
            cache_drop_chunk_bytes: 4 * 1024 * 1024,
            append_queue_requests_max: 4096,
            group_commit_events_max: 8192,
            group_commit_bytes_max: 8 * 1024 * 1024,
            sync_groups_max: 64,
            sync_linger_us_max: 100,
            live_buffer_batches: 1024,
            catch_up_batch_events: 4096,
            stream_cache_entries: 100_000,
            dedupe_window_events: 100_000,
            index_pending_events_max: 65_536,
            index_cache_bytes: 32 * 1024 * 1024,
            index_memtable_events_max: 262_144,
            read_buffer_bytes: 1024 * 1024,
            inline_read_events_max: 64,
        }
    }
}
