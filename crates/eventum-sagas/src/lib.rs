//! Sagas and process managers: long-running workflows whose state lives in the log
//! (one stream per instance), orchestration with compensations, choreography, and
//! durable deadlines.
//!
//! A [`Saga`] is pure logic; the [`SagaRunner`] follows its source from a durable
//! checkpoint, records every step in the instance stream with the exact expected version,
//! then sends its commands (with deterministic ids) through an
//! [`eventum_core::CommandSender`]. [`Orchestrator`] is a declarative saga of steps and
//! compensations; [`ReactorRunner`] runs stateless [`Reactor`]s; [`SagaStatus`] answers
//! status queries; [`testing`] is a given/when/then harness.

mod cache;
mod checkpoint;
pub mod choreography;
pub mod clock;
pub mod config;
mod deadlines;
mod dispatch;
pub mod error;
pub mod instance;
mod load;
pub mod orchestrator;
mod pipeline;
pub mod records;
pub mod runner;
pub mod saga;
pub mod status;
mod step;
pub mod testing;

pub use choreography::{Choreography, Reactor, ReactorHandle, ReactorRunner, ReactorStats};
pub use clock::{Clock, SystemClock, TestClock};
pub use config::{ReactorConfig, SagaConfig};
pub use error::{QueryError, RunError, StartError};
pub use orchestrator::{Orchestrator, OrchestratorState, Phase, StepDef};
pub use runner::{SagaHandle, SagaRunner};
pub use saga::{Action, CommandRejection, CommandSpec, FiredDeadline, Saga, Status, Trigger};
pub use status::{HistoryEntry, InstancePage, InstanceSummary, InstanceView, SagaStatus};
