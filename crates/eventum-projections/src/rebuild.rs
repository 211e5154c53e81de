//! Rebuilding a projection that no runner drives (a CLI command, an upgrade step): replay
//! the log from position 0 into a new generation while the active one keeps serving,
//! then switch in one transaction and drop the old generation. A running projection is
//! rebuilt through [`crate::ProjectionRunner::rebuild`] instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventum_core::EventStore;

use crate::config::RunnerConfig;
use crate::driver::{Driver, Status};
use crate::error::RunError;
use crate::model::Projection;
use crate::store::ReadModelStore;

/// What a finished rebuild did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildReport {
    /// The generation now active.
    pub generation: u64,
    pub events_applied: u64,
    /// The new generation's checkpoint.
    pub position_next: u64,
    pub elapsed: Duration,
}

/// Rebuilds `projection` from position 0 and switches it in once it has caught up with
/// the head. `on_progress` is called after every committed batch (see
/// [`crate::progress::RebuildBar`] for a terminal progress bar). Fails with
/// [`RunError::Busy`] when a runner of this process drives the projection.
pub async fn rebuild(
    store: ReadModelStore,
    events: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    config: RunnerConfig,
    mut on_progress: impl FnMut(&Status) + Send,
) -> Result<RebuildReport, RunError> {
    let started = Instant::now();
    let mut driver = Driver::open(store, events, projection, config, true).await?;
    let mut progress = driver.status.subscribe();
    {
        let work = driver.catch_up(None);
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => {
                    result?;
                    break;
                }
                Ok(()) = progress.changed() => on_progress(&progress.borrow_and_update()),
            }
        }
    }
    debug_assert!(!driver.is_rebuilding());
    let status = driver.status.borrow().clone();
    on_progress(&status);
    Ok(RebuildReport {
        generation: status.generation,
        events_applied: status.events_applied,
        position_next: status.position_next,
        elapsed: started.elapsed(),
    })
}
