//! The async mode: [`ProjectionRunner`] follows the event store from a projection's
//! checkpoint (catch-up by reads, then live through `EventStore::subscribe`), applies
//! events in bounded batches (size and latency), commits each batch with the checkpoint,
//! publishes its position and lag, rebuilds on request and stops cleanly.
//!
//! An error in `apply` stops the projection with [`RunError::Apply`] (also published as
//! [`RunState::Failed`]); the batch holding the event is not committed, so the checkpoint
//! stays at the end of the last good batch. The runner does not skip the event: skipping
//! would make the read model differ from a fold of the log. The fix is a new version of
//! the projection (which rebuilds it) or a fix of the code, then a restart.

use std::sync::Arc;
use std::time::Duration;

use eventum_core::{EventStore, ReadError, SubscriptionFrom, SubscriptionTarget};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::RunnerConfig;
use crate::driver::{Driver, RunState, Status, stop_requested};
use crate::error::RunError;
use crate::model::Projection;
use crate::store::ReadModelStore;

enum Command {
    Rebuild(oneshot::Sender<()>),
}

/// A projection running in the background. Dropping it stops the projection after its
/// current batch, like [`ProjectionRunner::stop`] without waiting.
pub struct ProjectionRunner {
    status: watch::Receiver<Status>,
    stop: watch::Sender<bool>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<Result<(), RunError>>,
}

impl ProjectionRunner {
    /// Registers `projection` (rebuilding it in the background when its stored version
    /// differs; the old generation serves meanwhile) and starts following `events`.
    pub async fn start(
        store: ReadModelStore,
        events: Arc<dyn EventStore>,
        projection: Arc<dyn Projection>,
        config: RunnerConfig,
    ) -> Result<Self, RunError> {
        let driver = Driver::open(store, events.clone(), projection, config.clone(), false).await?;
        let status = driver.status.subscribe();
        let (stop, stop_rx) = watch::channel(false);
        let (commands, commands_rx) = mpsc::channel(4);
        let task = tokio::spawn(run(driver, events, config, stop_rx, commands_rx));
        Ok(Self {
            status,
            stop,
            commands,
            task,
        })
    }

    /// The latest published status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver of every status change (for progress bars and health checks).
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Starts rebuilding from position 0 into a new generation; the active generation
    /// keeps serving queries until the new one has caught up and is switched in. Returns
    /// once the rebuild has started; follow it with [`ProjectionRunner::watch`].
    pub async fn rebuild(&self) -> Result<(), RunError> {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Rebuild(reply)).await.is_err() || done.await.is_err() {
            return Err(self.stopped_error());
        }
        Ok(())
    }

    fn stopped_error(&self) -> RunError {
        match &self.status.borrow().state {
            RunState::Failed(e) => e.clone(),
            _ => RunError::Storage(eventum_core::StorageError::new(
                eventum_core::StorageErrorKind::Unavailable,
                "the projection runner has stopped",
            )),
        }
    }

    /// Waits until the active generation covers `position` (the projection has applied
    /// every event up to it) and no rebuild is under way, or the runner fails.
    pub async fn wait_for_position(&self, position: u64) -> Result<Status, RunError> {
        let mut rx = self.status.clone();
        loop {
            {
                let s = rx.borrow_and_update();
                match &s.state {
                    RunState::Failed(e) => return Err(e.clone()),
                    RunState::Stopped => return Err(self.stopped_error()),
                    _ if !s.rebuilding && s.position_next > position => return Ok(s.clone()),
                    _ => {}
                }
            }
            if rx.changed().await.is_err() {
                return Err(self.stopped_error());
            }
        }
    }

    /// Stops after the batch in progress (committed or not at all) and returns how the
    /// runner ended: `Ok` when it was running, the error when it had failed.
    pub async fn stop(self) -> Result<(), RunError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(RunError::Storage(eventum_core::StorageError::new(
                eventum_core::StorageErrorKind::Io,
                format!("runner task: {e}"),
            ))),
        }
    }
}

async fn run(
    mut driver: Driver,
    events: Arc<dyn EventStore>,
    config: RunnerConfig,
    stop: watch::Receiver<bool>,
    commands: mpsc::Receiver<Command>,
) -> Result<(), RunError> {
    let result = follow(&mut driver, events, config, stop, commands).await;
    match &result {
        Ok(()) => driver.publish(RunState::Stopped),
        Err(e) => {
            tracing::error!(projection = %driver.model, error = %e, "projection stopped");
            driver.publish(RunState::Failed(e.clone()));
        }
    }
    result
}

async fn follow(
    driver: &mut Driver,
    events: Arc<dyn EventStore>,
    config: RunnerConfig,
    mut stop: watch::Receiver<bool>,
    mut commands: mpsc::Receiver<Command>,
) -> Result<(), RunError> {
    let batch_max = config.batch_events_max.max(1);
    let latency = Duration::from_millis(config.batch_latency_ms_max);
    'catch_up: loop {
        if !driver.catch_up(Some(&stop)).await? || stop_requested(&stop) {
            return Ok(());
        }
        driver.publish(RunState::Live);
        // Live: follow `$all` and filter here, so that the checkpoint (and the lag) moves
        // past events the target skips, too.
        let mut live = events.subscribe(
            SubscriptionTarget::All,
            SubscriptionFrom::Position(driver.cursor.position_next),
        );
        loop {
            let first = tokio::select! {
                _ = stop.changed() => return Ok(()),
                command = commands.recv() => match command {
                    Some(Command::Rebuild(reply)) => {
                        driver.begin_rebuild().await?;
                        let _ = reply.send(());
                        continue 'catch_up;
                    }
                    None => return Ok(()),
                },
                item = live.next() => item,
            };
            // Events the target skips are dropped as they come, not gathered first: most
            // of `$all` is other models' events, and a batch would hold hundreds of them.
            let mut batch = Vec::new();
            let mut cursor = driver.cursor;
            let mut take = |event: eventum_core::RecordedEvent| {
                cursor.position_next = event.position + 1;
                if driver.target.matches(&event) {
                    batch.push(event);
                }
            };
            take(next_event(first, &driver.model)?);
            // One timer per batch, not one per event: under load a batch gathers hundreds.
            let deadline = tokio::time::sleep(latency);
            tokio::pin!(deadline);
            for _ in 1..batch_max {
                tokio::select! {
                    biased;
                    item = live.next() => take(next_event(item, &driver.model)?),
                    _ = &mut deadline => break,
                }
            }
            if let Some(last) = batch.last() {
                cursor.stream_version_next = last.version + 1;
                driver.commit_batch(batch, cursor, false).await?;
            } else {
                driver.cursor = cursor;
            }
            driver.publish(RunState::Live);
        }
    }
}

fn next_event(
    item: Option<Result<eventum_core::RecordedEvent, eventum_core::StorageError>>,
    model: &str,
) -> Result<eventum_core::RecordedEvent, RunError> {
    match item {
        None => Err(RunError::EventStoreClosed {
            model: model.to_owned(),
        }),
        Some(Err(e)) => Err(RunError::Read {
            model: model.to_owned(),
            source: ReadError::Storage(e),
        }),
        Some(Ok(e)) => Ok(e),
    }
}
