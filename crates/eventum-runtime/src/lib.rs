//! Aggregates, repositories and the command bus: the write side of an event-sourced
//! application, over any [`eventum_core::EventStore`].
//!
//! An [`Aggregate`] is pure: `decide(&state, command) -> events | refusal` and
//! `evolve(state, &event) -> state`. A [`Repository`] loads it (snapshot + the events
//! after it, or its cache), decides, and appends with the loaded version as the expected
//! version, retrying on a conflict. The [`CommandBus`] routes each command type to one
//! handler, runs middleware and validation, traces with correlation and causation, and
//! treats the command id as an idempotency key.

pub mod aggregate;
pub mod bus;
pub mod codec;
pub mod command;
pub mod config;
pub mod error;
pub mod loaded;
pub mod middleware;
pub mod repository;
pub mod snapshot;
pub mod testing;

pub use aggregate::{Aggregate, DomainError, fold};
pub use bus::{CommandBus, CommandBusBuilder, CommandHandler};
pub use command::{Command, CommandContext, CommandMeta, Principal};
pub use config::{BusConfig, RepositoryConfig};
pub use error::{DispatchError, RegisterError};
pub use loaded::Loaded;
pub use middleware::{Authorize, Middleware, RequirePrincipal};
pub use repository::Repository;
