//! The command bus: routes each command type to exactly one handler, runs the middleware
//! and validation, and makes the command id an idempotency key.

use std::any::Any;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use eventum_core::{CommandAccepted, CommandEnvelope, CommandSender, SendError};
use lru::LruCache;
use tokio::sync::Semaphore;
use tracing::Instrument;
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::codec::join_variant_ref;
use crate::command::{Command, CommandContext, CommandMeta, Principal};
use crate::config::BusConfig;
use crate::error::{DispatchError, RegisterError};
use crate::middleware::Middleware;
use crate::repository::Repository;

/// Runs commands of one type. Most applications use [`Repository`]-backed aggregate
/// handlers (registered with [`CommandBusBuilder::aggregate`]); anything else implements
/// this.
#[async_trait]
pub trait CommandHandler: Send + Sync + 'static {
    type Command: Command;
    async fn handle(
        &self,
        command: Self::Command,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError>;
}

#[async_trait]
impl<A: Aggregate> CommandHandler for Repository<A> {
    type Command = A::Command;
    async fn handle(
        &self,
        command: A::Command,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError> {
        self.execute(&command, ctx).await
    }
}

/// A handler with its command type erased, so that the bus can hold them in one table.
#[async_trait]
trait ErasedHandler: Send + Sync {
    fn validate(&self, command: &(dyn Any + Send)) -> Result<(), DispatchError>;
    async fn handle_any(
        &self,
        command: Box<dyn Any + Send>,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError>;
    /// Decodes a JSON payload into this handler's command type.
    fn decode(
        &self,
        command_type: &str,
        payload: &serde_json::Value,
    ) -> Result<(Box<dyn Any + Send>, &'static str), DispatchError>;
}

struct Erased<H>(H);

#[async_trait]
impl<H: CommandHandler> ErasedHandler for Erased<H> {
    fn validate(&self, command: &(dyn Any + Send)) -> Result<(), DispatchError> {
        let command = command
            .downcast_ref::<H::Command>()
            .ok_or_else(|| DispatchError::Invalid("command of another type".into()))?;
        command.validate().map_err(DispatchError::Invalid)
    }

    async fn handle_any(
        &self,
        command: Box<dyn Any + Send>,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError> {
        let command = command
            .downcast::<H::Command>()
            .map_err(|_| DispatchError::Invalid("command of another type".into()))?;
        self.0.handle(*command, ctx).await
    }

    fn decode(
        &self,
        command_type: &str,
        payload: &serde_json::Value,
    ) -> Result<(Box<dyn Any + Send>, &'static str), DispatchError> {
        let command: H::Command = join_variant_ref(command_type, payload)
            .map_err(|e| DispatchError::Invalid(e.to_string()))?;
        let name = command.command_type();
        Ok((Box::new(command), name))
    }
}

/// Assembles a [`CommandBus`]: handlers, then middleware in the order they run.
pub struct CommandBusBuilder {
    routes: HashMap<&'static str, Arc<dyn ErasedHandler>>,
    middleware: Vec<Arc<dyn Middleware>>,
    config: BusConfig,
}

impl CommandBusBuilder {
    /// Routes every name in `H::Command::TYPES` to `handler`.
    pub fn handler<H: CommandHandler>(mut self, handler: H) -> Result<Self, RegisterError> {
        let types = <H::Command as Command>::TYPES;
        if types.is_empty() {
            return Err(RegisterError::NoCommandTypes);
        }
        if let Some(taken) = types.iter().find(|t| self.routes.contains_key(*t)) {
            return Err(RegisterError::DuplicateCommandType(taken));
        }
        let handler: Arc<dyn ErasedHandler> = Arc::new(Erased(handler));
        for t in types {
            self.routes.insert(t, handler.clone());
        }
        Ok(self)
    }

    /// Routes an aggregate's commands to its repository.
    pub fn aggregate<A: Aggregate>(self, repository: Repository<A>) -> Result<Self, RegisterError> {
        self.handler(repository)
    }

    /// Adds a middleware layer; layers run in the order they were added, before the
    /// command's own validation and its handler.
    pub fn layer(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    pub fn build(self) -> CommandBus {
        let outcomes =
            NonZeroUsize::new(self.config.outcome_cache_entries_max.max(1)).expect("≥ 1");
        CommandBus {
            in_flight: Semaphore::new(self.config.commands_in_flight_max),
            routes: self.routes,
            middleware: self.middleware,
            outcomes: Mutex::new(LruCache::new(outcomes)),
            config: self.config,
        }
    }
}

/// Remembered result of a command id.
type Outcome = Result<CommandAccepted, DispatchError>;

/// Routes typed or JSON commands to their handlers.
pub struct CommandBus {
    routes: HashMap<&'static str, Arc<dyn ErasedHandler>>,
    middleware: Vec<Arc<dyn Middleware>>,
    outcomes: Mutex<LruCache<Uuid, Outcome>>,
    in_flight: Semaphore,
    config: BusConfig,
}

impl CommandBus {
    pub fn builder(config: BusConfig) -> CommandBusBuilder {
        CommandBusBuilder {
            routes: HashMap::new(),
            middleware: Vec::new(),
            config,
        }
    }

    /// The command type names this bus routes.
    pub fn command_types(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.routes.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Dispatches a typed command.
    pub async fn dispatch<C: Command>(
        &self,
        command: C,
        meta: CommandMeta,
    ) -> Result<CommandAccepted, DispatchError> {
        let command_type = command.command_type();
        self.run(command_type, Box::new(command), meta).await
    }

    /// Dispatches a command given as JSON (from HTTP, a saga, a broker), on behalf of
    /// `principal`.
    pub async fn dispatch_envelope(
        &self,
        envelope: CommandEnvelope,
        principal: Option<Principal>,
    ) -> Result<CommandAccepted, DispatchError> {
        self.dispatch_envelope_ref(&envelope, principal).await
    }

    /// [`Self::dispatch_envelope`] for a caller that keeps the envelope (to retry it).
    pub async fn dispatch_envelope_ref(
        &self,
        envelope: &CommandEnvelope,
        principal: Option<Principal>,
    ) -> Result<CommandAccepted, DispatchError> {
        let handler = self
            .routes
            .get(envelope.command_type.as_str())
            .ok_or_else(|| DispatchError::UnknownCommand(envelope.command_type.clone()))?;
        let mut meta = CommandMeta::from_envelope(envelope);
        meta.principal = principal;
        let (command, name) = handler.decode(&envelope.command_type, &envelope.payload)?;
        self.run(name, command, meta).await
    }

    async fn run(
        &self,
        command_type: &'static str,
        command: Box<dyn Any + Send>,
        meta: CommandMeta,
    ) -> Result<CommandAccepted, DispatchError> {
        // Debug level: at info, formatting these ids for every command was ~4% of the
        // shop's CPU (with the saga's spans).
        let span = tracing::debug_span!(
            "command",
            command_type,
            command_id = %meta.command_id,
            correlation_id = %meta.correlation_id,
            causation_id = %meta.causation_id,
        );
        async move {
            let handler = self
                .routes
                .get(command_type)
                .ok_or_else(|| DispatchError::UnknownCommand(command_type.to_owned()))?;
            let _permit = self
                .in_flight
                .try_acquire()
                .map_err(|_| DispatchError::Overloaded {
                    in_flight_max: self.config.commands_in_flight_max,
                })?;
            let ctx = CommandContext { command_type, meta };
            // Layers and validation run first, so that a repeated id never lets a caller
            // see an outcome it would not be allowed to produce.
            for layer in &self.middleware {
                layer.before(&ctx).await?;
            }
            handler.validate(command.as_ref())?;
            if let Some(outcome) = self.remembered(ctx.meta.command_id) {
                return outcome.map(|mut accepted| {
                    accepted.duplicate = true;
                    accepted
                });
            }
            let outcome = handler.handle_any(command, &ctx).await;
            self.remember(ctx.meta.command_id, &outcome);
            if let Err(e) = &outcome {
                tracing::debug!(error = %e, "command not carried out");
            }
            outcome
        }
        .instrument(span)
        .await
    }

    fn remembered(&self, command_id: Uuid) -> Option<Outcome> {
        self.outcomes
            .lock()
            .expect("outcomes lock")
            .get(&command_id)
            .cloned()
    }

    /// Remembers final outcomes only: a transient failure must not stop a retry from
    /// running the command.
    fn remember(&self, command_id: Uuid, outcome: &Outcome) {
        if matches!(outcome, Err(e) if e.is_transient()) {
            return;
        }
        self.outcomes
            .lock()
            .expect("outcomes lock")
            .put(command_id, outcome.clone());
    }
}

#[async_trait]
impl CommandSender for CommandBus {
    async fn send(&self, command: CommandEnvelope) -> Result<CommandAccepted, SendError> {
        self.send_ref(&command).await
    }

    async fn send_ref(&self, command: &CommandEnvelope) -> Result<CommandAccepted, SendError> {
        self.dispatch_envelope_ref(command, None)
            .await
            .map_err(SendError::from)
    }
}
