//! Middleware layers that run before a command's handler: authorization hooks, and any
//! cross-cutting check a user adds. Validation of a command's own fields
//! (`Command::validate`) and the tracing span with correlation and causation are built
//! into the bus.

use async_trait::async_trait;

use crate::command::CommandContext;
use crate::error::DispatchError;

/// A layer that may refuse a command before it runs.
#[async_trait]
pub trait Middleware: Send + Sync + 'static {
    async fn before(&self, ctx: &CommandContext) -> Result<(), DispatchError>;
}

/// An authorization hook: a rule over the caller and the command type.
pub struct Authorize<F>(pub F);

#[async_trait]
impl<F> Middleware for Authorize<F>
where
    F: Fn(&CommandContext) -> Result<(), DispatchError> + Send + Sync + 'static,
{
    async fn before(&self, ctx: &CommandContext) -> Result<(), DispatchError> {
        (self.0)(ctx)
    }
}

/// Refuses commands without an authenticated principal, except the listed types.
pub struct RequirePrincipal {
    pub public_command_types: Vec<&'static str>,
}

#[async_trait]
impl Middleware for RequirePrincipal {
    async fn before(&self, ctx: &CommandContext) -> Result<(), DispatchError> {
        if ctx.meta.principal.is_some() || self.public_command_types.contains(&ctx.command_type) {
            return Ok(());
        }
        Err(DispatchError::Unauthorized(format!(
            "{} needs an authenticated caller",
            ctx.command_type
        )))
    }
}
