//! The contract between whatever emits commands (sagas, choreography handlers, HTTP) and
//! the command bus that runs them, plus the correlation/causation rule every emitter
//! follows. Data only; the bus lives in `eventum-runtime`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{NewEvent, RecordedEvent};

/// Which conversation a message belongs to and which message caused it.
///
/// The rule: a message handled while processing message `m` gets
/// `correlation_id = m.correlation_id` and `causation_id = m.id`. A message that starts a
/// conversation correlates to itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Causation {
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
}

impl Causation {
    /// The causation for messages emitted while handling `event`.
    pub fn caused_by_event(event: &RecordedEvent) -> Self {
        Self {
            correlation_id: event.correlation_id,
            causation_id: event.id,
        }
    }

    /// The causation for events emitted while handling `command`.
    pub fn caused_by_command(command: &CommandEnvelope) -> Self {
        Self {
            correlation_id: command.correlation_id,
            causation_id: command.command_id,
        }
    }

    /// Stamps `event` with this causation.
    pub fn stamp(&self, event: NewEvent) -> NewEvent {
        event
            .with_correlation_id(self.correlation_id)
            .with_causation_id(self.causation_id)
    }
}

/// A command in transit: its type name routes it to exactly one handler, its id is the
/// idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    /// The idempotency key: dispatching the same id twice runs the command once.
    pub command_id: Uuid,
    /// The registered name of the command type, for example `CreateRequirement`.
    pub command_type: String,
    /// The command itself as JSON.
    pub payload: serde_json::Value,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
}

impl CommandEnvelope {
    /// A command that starts a conversation: it correlates to, and is caused by, itself.
    pub fn new(command_type: impl Into<String>, payload: serde_json::Value) -> Self {
        let id = Uuid::now_v7();
        Self {
            command_id: id,
            command_type: command_type.into(),
            payload,
            correlation_id: id,
            causation_id: id,
        }
    }

    pub fn with_id(mut self, id: Uuid) -> Self {
        if self.correlation_id == self.command_id {
            self.correlation_id = id;
        }
        if self.causation_id == self.command_id {
            self.causation_id = id;
        }
        self.command_id = id;
        self
    }

    /// Sets where this command comes from.
    pub fn caused_by(mut self, causation: Causation) -> Self {
        self.correlation_id = causation.correlation_id;
        self.causation_id = causation.causation_id;
        self
    }
}

/// What a successfully dispatched command produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAccepted {
    /// The stream the command's events went to (empty when it appended nothing).
    pub stream: String,
    /// The stream's version after the command; `None` when the stream has no events.
    pub version: Option<u64>,
    /// Global position of the last appended event, if any.
    pub position: Option<u64>,
    /// Ids of the appended events, in order.
    pub event_ids: Vec<Uuid>,
    /// True when this command id had already run and this is its first outcome, returned
    /// again without appending anything.
    pub duplicate: bool,
}

/// Why a command was not carried out.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The domain refused it (a business rule); retrying the same command will not help.
    #[error("rejected: {code}: {message}")]
    Rejected { code: String, message: String },
    /// No handler is registered for this command type.
    #[error("no handler for command type {0:?}")]
    UnknownCommand(String),
    /// The payload does not decode into the command type.
    #[error("invalid command: {0}")]
    Invalid(String),
    /// A technical failure (storage, timeouts, exhausted conflict retries); retrying may
    /// help.
    #[error("failed: {0}")]
    Failed(String),
}

/// Anything that accepts commands: the command bus, or a test double that records them.
#[async_trait]
pub trait CommandSender: Send + Sync + 'static {
    async fn send(&self, command: CommandEnvelope) -> Result<CommandAccepted, SendError>;

    /// Sends `command` and leaves it to the caller, who keeps it to retry. The default
    /// sends a copy; a sender that can read a command without owning it overrides this,
    /// which saves copying (and freeing) its payload on every send.
    async fn send_ref(&self, command: &CommandEnvelope) -> Result<CommandAccepted, SendError> {
        self.send(command.clone()).await
    }
}
