//! Eventum's model and contracts: events, stream names, versions, positions, the store
//! trait and the errors of each operation. This crate does no I/O and knows nothing of
//! HTTP, files or databases; every backend and every interface depends on it.

pub mod command;
pub mod error;
pub mod event;
pub mod limits;
pub mod metadata_field;
pub mod store;
pub mod stream;
pub mod subscription;
pub mod version;

pub use command::{Causation, CommandAccepted, CommandEnvelope, CommandSender, SendError};
pub use error::{AppendError, ErrorCode, InvalidInput, ReadError, StorageError, StorageErrorKind};
pub use event::{EventId, NewEvent, RecordedEvent};
pub use limits::Limits;
pub use store::{
    AppendResult, EventStore, ReadDirection, StreamMetadata, StreamState, Subscription,
    SubscriptionFrom, SubscriptionTarget,
};
pub use stream::{StreamName, category_of};
pub use version::{ActualVersion, ExpectedVersion};
