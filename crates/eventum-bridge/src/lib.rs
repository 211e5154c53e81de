//! Eventum's broker bridges. The store's log is the outbox: a [`Relay`] follows `$all`
//! from a durable checkpoint and publishes each event as a [`Message`] (topic per category
//! or per event type, key = stream id, CloudEvents headers) through a [`Sink`] adapter,
//! advancing its checkpoint only after the broker acknowledged.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod memory;
pub mod message;
pub mod relay;
pub mod sink;

pub use config::{RelayConfig, TopicMapping};
pub use error::{ConfigError, RelayError, SinkError};
pub use memory::MemorySink;
pub use message::{Message, header, kebab_case};
pub use relay::{Relay, RelayHandle, RelayProgress, RelayState};
pub use sink::Sink;
