//! Typed commands and the context a command runs in (ids, causation, caller).

use eventum_core::{Causation, CommandEnvelope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A command type: usually an enum whose variants are the commands an aggregate accepts.
/// It dispatches under its variant names.
pub trait Command: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Every name this type dispatches under (its variant names). Each name is routed to
    /// exactly one handler; registering a name twice is refused.
    const TYPES: &'static [&'static str];

    /// The name of this command (one of [`Command::TYPES`]).
    fn command_type(&self) -> &'static str;

    /// Checks the command's own fields before anything is loaded; the validation step of
    /// the bus calls it. The message says what is wrong.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Who is dispatching, as established by an interface (for example from a JWT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<String>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Ids and caller of one dispatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandMeta {
    /// The idempotency key.
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub principal: Option<Principal>,
}

impl CommandMeta {
    /// A command that starts a conversation, with a fresh id.
    pub fn new() -> Self {
        Self::with_id(Uuid::now_v7())
    }

    /// A command that starts a conversation, with the caller's idempotency key.
    pub fn with_id(command_id: Uuid) -> Self {
        Self {
            command_id,
            correlation_id: command_id,
            causation_id: command_id,
            principal: None,
        }
    }

    pub fn caused_by(mut self, causation: Causation) -> Self {
        self.correlation_id = causation.correlation_id;
        self.causation_id = causation.causation_id;
        self
    }

    pub fn by(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    pub fn from_envelope(envelope: &CommandEnvelope) -> Self {
        Self {
            command_id: envelope.command_id,
            correlation_id: envelope.correlation_id,
            causation_id: envelope.causation_id,
            principal: None,
        }
    }
}

impl Default for CommandMeta {
    fn default() -> Self {
        Self::new()
    }
}

/// What handlers and middleware see of a dispatch.
#[derive(Clone, Debug)]
pub struct CommandContext {
    pub command_type: &'static str,
    pub meta: CommandMeta,
}

impl CommandContext {
    /// The causation of the events this command appends: same conversation, caused by
    /// the command.
    pub fn causation(&self) -> Causation {
        Causation {
            correlation_id: self.meta.correlation_id,
            causation_id: self.meta.command_id,
        }
    }
}
