//! [`PgHandler`]: what a PostgreSQL consumer runs for each batch, inside the transaction
//! that also moves the consumer's checkpoint and records its inbox ids.

use async_trait::async_trait;
use eventum_core::RecordedEvent;

use crate::error::HandlerError;

/// The open transaction a handler writes in. It dereferences to
/// [`tokio_postgres::Transaction`] (every query method) and adds `prepare_cached`.
pub type Transaction<'a> = deadpool_postgres::Transaction<'a>;

/// Handles batches of events by writing its own tables in the batch's transaction.
///
/// Whatever the handler writes through `tx` commits together with the consumer's
/// checkpoint and inbox rows, or not at all: an error (or a crash) rolls all of it back
/// and the same events come again. The events are in position order, none of them seen
/// before by this consumer (the inbox dropped repeated ids). The handler must not
/// commit or roll back `tx` itself (it cannot: both take the transaction by value);
/// savepoints through `tx.transaction()` are fine.
#[async_trait]
pub trait PgHandler: Send + Sync + 'static {
    async fn handle(
        &self,
        tx: &mut Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError>;
}
