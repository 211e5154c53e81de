//! Consumer groups: durable, server-side subscriptions shared by competing consumers.
//!
//! A group follows a stream, a category or `$all` (`$`-prefixed system streams excluded)
//! and hands its events to whichever consumers poll ([`GroupService::receive`]), at least
//! once. In ordered mode (the default) the work is partitioned by stream: a stream's next
//! event is not handed out while an earlier one is in flight or scheduled for retry, so
//! each stream is processed in order even with many consumers.
//!
//! Failures: a nack with `retry` redelivers after an exponential backoff
//! (`retry_delay_ms_base × 2^(attempt−1)`, capped); at `max_attempts` (an ack timeout
//! counts as an attempt) the event is parked in the dead-letter stream `$dlq-{group}`
//! with its error text and attempt count. In ordered mode a later event of a stream with
//! an unresolved dead letter is parked too, with reason "held behind parked event at
//! position P": the checkpoint can then move on, and nothing is lost across restarts.
//! Replaying dead letters re-delivers them through the group in stream order; each stays
//! parked until its redelivery is acked or skipped (a `$parked-resolved` record), and the
//! stream is unblocked once none is left unreplayed.
//!
//! Durable state, all in the store through [`eventum_core::EventStore`]: definitions in
//! `$groups`, checkpoints in `$groups-{name}-checkpoint` (kept short by `max_count`),
//! dead letters in `$dlq-{name}`, folded on open to rebuild the blocked streams.

mod checkpoint;
pub mod dlq;
pub mod error;
mod group;
pub mod registry;
pub mod retry;
mod service;
pub mod settings;
mod state;

pub use dlq::ParkedEvent;
pub use error::{
    AckError, CreateError, DeleteError, InfoError, NackError, OpenError, ParkedError, ReceiveError,
    ReplayError,
};
pub use service::{AckReport, GroupInfo, GroupService};
pub use settings::{GroupSettings, GroupTarget, GroupsConfig, StartFrom};
pub use state::{Delivery, NackAction};
