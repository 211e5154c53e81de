//! Projections and read models: the read side, with checkpoints and an inbox kept in one
//! transaction.
//!
//! A [`Projection`] declares a read model (name, version, target, lookups) and folds
//! events into its documents. The [`ReadModelStore`] (one redb file) keeps the documents
//! of each read model by key with their lookups, the projections' checkpoints and the
//! consumers' inboxes; a batch of events, its documents, its checkpoint and its inbox ids
//! commit in one durable transaction. Projections run in the background
//! ([`ProjectionRunner`]), inline with appends ([`InlineProjections`]), or are rebuilt
//! into a new generation that is switched in atomically ([`rebuild()`]).

mod commit;
pub mod config;
mod docs;
mod driver;
pub mod error;
mod inbox;
pub mod inline;
pub mod model;
pub mod progress;
pub mod rebuild;
pub mod runner;
pub mod store;
mod tables;
pub mod tx;

pub use config::{RunnerConfig, StoreConfig};
pub use driver::{RunState, Status};
pub use error::{InvalidRequest, OpenError, ProjectionError, QueryError, RunError, TxError};
pub use inline::InlineProjections;
pub use model::{Lookup, Projection};
pub use rebuild::{RebuildReport, rebuild};
pub use runner::ProjectionRunner;
pub use store::{Document, ModelInfo, ReadModelStore};
pub use tx::{ProjectionTx, StoreTx};
