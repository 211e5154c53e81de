//! Events delivered by something other than the log runner (a consumer group, a broker):
//! [`handle_delivered`] runs one delivery batch through the inbox and a [`PgHandler`] in
//! one transaction. The caller acknowledges the deliveries only after it returns `Ok`; a
//! redelivery of anything committed (a lost acknowledgement, a crash before it, the
//! broker's own at-least-once) is then dropped by the inbox.

use eventum_core::RecordedEvent;

use crate::error::{HandlerError, storage};
use crate::handler::PgHandler;
use crate::inbox;
use crate::models::PgReadModels;

/// What [`handle_delivered`] did with a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handled {
    /// Events handed to the handler and committed.
    pub new: usize,
    /// Events dropped because `consumer`'s inbox held their ids.
    pub duplicates: usize,
}

/// Records the ids of `events` in `consumer`'s inbox, hands the new ones (in the given
/// order) to `handler` with the transaction, and commits; on any error nothing of it is
/// committed. No checkpoint is moved: the deliverer keeps its own.
pub async fn handle_delivered(
    models: &PgReadModels,
    consumer: &str,
    handler: &dyn PgHandler,
    events: &[RecordedEvent],
) -> Result<Handled, HandlerError> {
    let mut client = models.client().await?;
    let mut tx = client.transaction().await.map_err(storage)?;
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    let new = inbox::record(&tx, consumer, &ids).await?;
    let fresh: Vec<RecordedEvent> = events
        .iter()
        .zip(&new)
        .filter(|(_, new)| **new)
        .map(|(e, _)| e.clone())
        .collect();
    if !fresh.is_empty() {
        handler.handle(&mut tx, &fresh).await?;
    }
    tx.commit().await.map_err(storage)?;
    Ok(Handled {
        new: fresh.len(),
        duplicates: events.len() - fresh.len(),
    })
}
