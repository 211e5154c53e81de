//! The saga contract: pure, synchronous logic (`handle` decides actions, `evolve` folds
//! state) over triggers (events, fired deadlines, rejected commands), and the actions and
//! statuses it works with. No I/O here; the runner and the test harness drive it.

use std::fmt;

use eventum_core::{RecordedEvent, SubscriptionTarget};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A process manager. Implementations must be deterministic: the same state and trigger
/// give the same actions, because a step is decided once and recorded, and the test
/// harness relies on it.
pub trait Saga: Send + Sync + 'static {
    /// The instance's own state, recorded after every step.
    type State: Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The saga's name: it names the system streams (`$saga-{name}-{key}`, ...), so it
    /// must stay stable across versions.
    fn name(&self) -> &str;

    /// What the saga follows: a category or `$all` (system streams are never routed).
    fn source(&self) -> SubscriptionTarget;

    /// The correlation key of the instance `event` belongs to, or `None` when the event is
    /// not for this saga.
    fn correlate(&self, event: &RecordedEvent) -> Option<String>;

    /// Whether `event` starts a new instance when none exists for its key.
    fn starts(&self, event: &RecordedEvent) -> bool;

    /// The actions to take for `trigger` given the state before it.
    fn handle(&self, state: &Self::State, trigger: &Trigger<'_>) -> Vec<Action>;

    /// Folds `trigger` into the state (called after `handle`, with the same trigger).
    fn evolve(&self, state: &mut Self::State, trigger: &Trigger<'_>);

    /// The step for `trigger`: its actions and the state after it. What the runner calls;
    /// the default is `handle`, then `evolve` on a copy. A saga whose two halves share
    /// work (decoding the event, say) overrides it to do that work once; it must agree
    /// with `handle` and `evolve`.
    fn decide(&self, state: &Self::State, trigger: &Trigger<'_>) -> (Vec<Action>, Self::State) {
        let actions = self.handle(state, trigger);
        let mut next = state.clone();
        self.evolve(&mut next, trigger);
        (actions, next)
    }
}

/// What an instance reacts to.
#[derive(Clone, Copy, Debug)]
pub enum Trigger<'a> {
    /// An event routed to the instance.
    Event(&'a RecordedEvent),
    /// A deadline the instance scheduled has come.
    Deadline(&'a FiredDeadline),
    /// A command the instance sent was refused (or failed beyond its retries).
    CommandRejected(&'a CommandRejection),
}

impl Trigger<'_> {
    /// The id recorded as handled: the event id, the deadline id or the command id.
    pub fn id(&self) -> Uuid {
        match self {
            Trigger::Event(e) => e.id,
            Trigger::Deadline(d) => d.deadline_id,
            Trigger::CommandRejected(r) => r.command_id,
        }
    }

    /// The correlation id messages emitted for this trigger carry.
    pub fn correlation_id(&self) -> Uuid {
        match self {
            Trigger::Event(e) => e.correlation_id,
            Trigger::Deadline(d) => d.correlation_id,
            Trigger::CommandRejected(r) => r.correlation_id,
        }
    }

    /// The event type, when the trigger is an event.
    pub fn event_type(&self) -> Option<&str> {
        match self {
            Trigger::Event(e) => Some(&e.event_type),
            _ => None,
        }
    }
}

/// A deadline that came due.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FiredDeadline {
    pub deadline_id: Uuid,
    pub name: String,
    pub due_at_ms: i64,
    pub payload: serde_json::Value,
    /// The correlation of the trigger that scheduled it.
    pub correlation_id: Uuid,
}

/// A command that did not succeed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandRejection {
    pub command_id: Uuid,
    pub command_type: String,
    /// The domain's code, or `unknown_command`, `invalid_command`, `failed` (technical
    /// failure beyond the retries).
    pub code: String,
    pub message: String,
    pub correlation_id: Uuid,
}

/// A command a saga or reactor wants sent; the runner gives it a deterministic id and the
/// trigger's correlation and causation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandSpec {
    pub command_type: String,
    pub payload: serde_json::Value,
}

impl CommandSpec {
    pub fn new(command_type: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            command_type: command_type.into(),
            payload,
        }
    }
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send a command.
    Send(CommandSpec),
    /// Deliver [`Trigger::Deadline`] named `name` `after_ms` from now; replaces a pending
    /// deadline of the same name.
    Schedule {
        name: String,
        after_ms: u64,
        payload: serde_json::Value,
    },
    /// Cancel the pending deadline named `name` (nothing when there is none).
    Cancel { name: String },
    /// Enter `compensating`: undo what was done.
    Compensate { reason: String },
    /// End as `completed`.
    Complete,
    /// End as `compensated`: the work was undone after a failure.
    Compensated { reason: String },
    /// End as `failed` (for example, a compensation kept failing).
    Fail { reason: String },
}

impl Action {
    pub fn send(command_type: impl Into<String>, payload: serde_json::Value) -> Self {
        Action::Send(CommandSpec::new(command_type, payload))
    }
}

/// Where an instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Compensating,
    Completed,
    Compensated,
    Failed,
}

impl Status {
    /// Completed, compensated and failed instances ignore further triggers.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Compensated | Status::Failed
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Compensated => "compensated",
            Status::Failed => "failed",
        })
    }
}
