//! Bounds and knobs of repositories and the command bus, with their defaults.

use std::time::Duration;

/// How a repository loads, caches, snapshots and retries one aggregate type.
#[derive(Clone, Debug)]
pub struct RepositoryConfig {
    /// Attempts of decide-and-append before a persisting version conflict is reported.
    pub conflict_attempts_max: u32,
    /// Delay before the second attempt; doubled each time up to `conflict_delay_max`,
    /// with jitter, so that contending writers spread out.
    pub conflict_delay_initial: Duration,
    pub conflict_delay_max: Duration,
    /// Write a snapshot whenever the version crosses a multiple of this; `None` never
    /// (and loads read no snapshot).
    pub snapshot_every_events: Option<u64>,
    /// Snapshot writes running at once; more are skipped (the next boundary retries).
    pub snapshot_writes_in_flight_max: usize,
    /// Loaded aggregates kept in memory (least recently used evicted).
    pub cache_aggregates_max: usize,
    /// Commands per aggregate whose outcome is remembered for idempotency, in memory and
    /// in snapshots. A command id repeated after this many later commands on the same
    /// aggregate runs again.
    pub idempotency_commands_per_aggregate: usize,
    /// Events per read while loading.
    pub load_page_events: usize,
    /// Aggregate locks: commands to aggregates that hash to one stripe run one at a time
    /// in this process, so they do not conflict with each other.
    pub lock_stripes: usize,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        Self {
            conflict_attempts_max: 5,
            conflict_delay_initial: Duration::from_millis(1),
            conflict_delay_max: Duration::from_millis(50),
            snapshot_every_events: Some(100),
            snapshot_writes_in_flight_max: 16,
            cache_aggregates_max: 10_000,
            idempotency_commands_per_aggregate: 64,
            load_page_events: 1_000,
            lock_stripes: 1_024,
        }
    }
}

/// Bounds of the command bus.
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// Commands being dispatched at once; more are refused with `Overloaded`.
    pub commands_in_flight_max: usize,
    /// Outcomes remembered by command id for every handler (including refusals and
    /// commands that appended nothing, which leave no trace in the log).
    pub outcome_cache_entries_max: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            commands_in_flight_max: 4_096,
            outcome_cache_entries_max: 100_000,
        }
    }
}
