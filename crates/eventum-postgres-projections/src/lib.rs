//! Eventum's read side on PostgreSQL: consumers whose handler writes, checkpoint and inbox
//! commit in one PostgreSQL transaction, and JSON document read models on top.
//!
//! A [`PgConsumer`] follows any [`eventum_core::EventStore`] (the PostgreSQL store, or the
//! embedded log) from its checkpoint and hands each batch of events to a [`PgHandler`]
//! together with the open transaction; the handler writes its own tables in it, and the
//! runner records the batch's ids in the inbox and moves the checkpoint in the same
//! transaction. A crash or an error therefore never leaves a read model ahead of or behind
//! its checkpoint, and a restarted consumer resumes right after the last committed batch.
//! A [`DocumentProjection`] does the same for JSON documents without SQL; the
//! [`PgGroupConsumer`] consumes an `eventum-groups` consumer group the same way (inbox +
//! handler in one transaction, then ack), and [`handle_delivered`], [`inbox`] and
//! [`checkpoint`] serve consumers fed by brokers in transactions of their own.
//!
//! The tables live in one schema (it may be the event store's), created by versioned
//! migrations, one `.sql` file per object, recorded in `read_model_migrations`.

pub mod checkpoint;
pub mod config;
mod delivered;
mod documents;
pub mod error;
mod group;
mod handler;
pub mod inbox;
pub mod migrate;
mod models;
mod projection;
mod runner;

pub use config::{ConsumerConfig, ReadConfig};
pub use delivered::{Handled, handle_delivered};
pub use documents::DocumentTx;
pub use error::{ConsumerError, HandlerError, InvalidInput, QueryError};
pub use group::{GroupConsumerConfig, GroupConsumerStatus, PgGroupConsumer};
pub use handler::{PgHandler, Transaction};
pub use models::{Document, PgReadModels};
pub use projection::DocumentProjection;
pub use runner::{ConsumerState, ConsumerStatus, PgConsumer, check_consumer_name};
