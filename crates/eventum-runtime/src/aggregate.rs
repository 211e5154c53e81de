//! The aggregate contract: pure, synchronous `decide` and `evolve` over typed commands and
//! events. No I/O happens here; the repository loads and stores.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::command::Command;

/// A business rule's refusal, kept apart from technical failures.
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    /// A stable machine-readable code such as `requirement_not_found`.
    fn code(&self) -> &str;
}

/// A consistency boundary whose state is a left fold of its events.
///
/// Events and commands are serde enums in the default (externally tagged) shape: a
/// variant's name is the event or command type recorded in the log. The state is
/// serializable so that it can be snapshotted.
pub trait Aggregate:
    Default + Clone + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// The category of this aggregate's streams: an instance `id` lives in
    /// `{CATEGORY}-{id}`.
    const CATEGORY: &'static str;
    /// Bump when the state's serialized shape changes: older snapshots are then ignored
    /// and the state is rebuilt from events.
    const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

    type Command: Command;
    type Event: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    type Error: DomainError;

    /// The instance a command addresses.
    fn aggregate_id(command: &Self::Command) -> String;

    /// The events that carrying out `command` on this state produces, or the domain's
    /// refusal. Must not have side effects: it may run again after a version conflict.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`.
    fn evolve(self, event: &Self::Event) -> Self;
}

/// Folds `events` over `state`.
pub fn fold<'a, A: Aggregate>(state: A, events: impl IntoIterator<Item = &'a A::Event>) -> A {
    events.into_iter().fold(state, |s, e| s.evolve(e))
}
