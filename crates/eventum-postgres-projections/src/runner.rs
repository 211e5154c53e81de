//! [`PgConsumer`]: follows the event store from a consumer's checkpoint (catch-up, then
//! live, through `EventStore::subscribe`), gathers bounded batches (size and latency) and
//! runs each in one PostgreSQL transaction: lock the checkpoint row, record the batch's
//! ids in the inbox, hand the new events to the handler with the transaction, move the
//! checkpoint, commit. A crash or an error at any step leaves all three as they were.
//!
//! Transient failures (a lost connection, a serialization failure, a handler's transient
//! error) roll back and try the same batch again after a capped exponential backoff;
//! anything else stops the consumer with [`ConsumerError::Batch`] and the checkpoint at
//! the end of the last committed batch, like a projection: skipping the batch would make
//! the read model differ from the log.

use std::sync::Arc;
use std::time::Duration;

use eventum_core::{EventStore, RecordedEvent, StorageError, SubscriptionFrom, SubscriptionTarget};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ConsumerConfig;
use crate::error::{ConsumerError, HandlerError, InvalidInput, storage};
use crate::handler::PgHandler;
use crate::models::PgReadModels;
use crate::{checkpoint, inbox};

/// Longest consumer name, in bytes.
pub const CONSUMER_NAME_BYTES_MAX: usize = 256;

/// Checks a consumer name: non-empty, bounded, no control characters.
pub fn check_consumer_name(name: &str) -> Result<(), InvalidInput> {
    let what = "consumer";
    if name.is_empty() {
        return Err(InvalidInput::EmptyName { what });
    }
    if name.len() > CONSUMER_NAME_BYTES_MAX {
        return Err(InvalidInput::NameTooLong {
            what,
            len_bytes: name.len(),
            max_bytes: CONSUMER_NAME_BYTES_MAX,
        });
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidInput::BadName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// What a consumer is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerState {
    Running,
    /// A batch failed transiently and is tried again after a backoff.
    Retrying {
        attempt: u32,
        error: String,
    },
    /// Stopped on request.
    Stopped,
    /// Stopped by an error; the checkpoint is at the end of the last committed batch.
    Failed(ConsumerError),
}

/// A consumer's progress, published after every committed batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerStatus {
    pub consumer: String,
    /// Every event below this position is handled (or was not for this consumer).
    pub position_next: u64,
    /// Events handed to the handler and committed by this runner.
    pub events_handled: u64,
    /// Events this runner dropped because the inbox held their ids.
    pub duplicates_dropped: u64,
    /// Batches committed by this runner.
    pub batches_committed: u64,
    /// Tries of a batch that failed transiently and were rolled back to be tried again.
    pub retries: u64,
    pub state: ConsumerState,
}

/// A consumer running in the background. Dropping it stops it after its current batch.
pub struct PgConsumer {
    status: watch::Receiver<ConsumerStatus>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ConsumerError>>,
}

struct Runner {
    models: PgReadModels,
    events: Arc<dyn EventStore>,
    consumer: String,
    target: SubscriptionTarget,
    handler: Arc<dyn PgHandler>,
    config: ConsumerConfig,
    cursor: u64,
    recorded_since_prune: u64,
    status: watch::Sender<ConsumerStatus>,
}

/// How one try of a batch failed.
enum Failure {
    Retry(HandlerError),
    Stop(ConsumerError),
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Failure::Retry(e.into())
    }
}

impl PgConsumer {
    /// Creates `consumer`'s checkpoint at `config.start_position` if it has none and
    /// starts following `target` in `events` from it.
    pub async fn start(
        models: PgReadModels,
        events: Arc<dyn EventStore>,
        consumer: &str,
        target: SubscriptionTarget,
        handler: Arc<dyn PgHandler>,
        config: ConsumerConfig,
    ) -> Result<Self, ConsumerError> {
        check_consumer_name(consumer).map_err(|source| ConsumerError::Invalid {
            consumer: consumer.to_owned(),
            source,
        })?;
        let storage_err = |source| ConsumerError::Storage {
            consumer: consumer.to_owned(),
            source,
        };
        let cursor = {
            let client = models.client().await.map_err(storage_err)?;
            checkpoint::ensure(&client, consumer, config.start_position)
                .await
                .map_err(storage_err)?
        };
        let status = watch::Sender::new(ConsumerStatus {
            consumer: consumer.to_owned(),
            position_next: cursor,
            events_handled: 0,
            duplicates_dropped: 0,
            batches_committed: 0,
            retries: 0,
            state: ConsumerState::Running,
        });
        let receiver = status.subscribe();
        let runner = Runner {
            models,
            events,
            consumer: consumer.to_owned(),
            target,
            handler,
            config,
            cursor,
            recorded_since_prune: 0,
            status,
        };
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(runner.run(stop_rx));
        Ok(Self {
            status: receiver,
            stop,
            task,
        })
    }

    /// The latest published status.
    pub fn status(&self) -> ConsumerStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every status change.
    pub fn watch(&self) -> watch::Receiver<ConsumerStatus> {
        self.status.clone()
    }

    /// Waits until the consumer has committed every event up to `position` (its checkpoint
    /// is past it), or it stops.
    pub async fn wait_for_position(&self, position: u64) -> Result<ConsumerStatus, ConsumerError> {
        let mut rx = self.status.clone();
        loop {
            {
                let s = rx.borrow_and_update();
                match &s.state {
                    ConsumerState::Failed(e) => return Err(e.clone()),
                    ConsumerState::Stopped => return Err(stopped(&s.consumer)),
                    _ if s.position_next > position => return Ok(s.clone()),
                    _ => {}
                }
            }
            if rx.changed().await.is_err() {
                let s = rx.borrow();
                return Err(match &s.state {
                    ConsumerState::Failed(e) => e.clone(),
                    _ => stopped(&s.consumer),
                });
            }
        }
    }

    /// Stops after the batch in progress (committed or not at all) and returns how the
    /// consumer ended: `Ok` when it was running, the error when it had failed.
    pub async fn stop(self) -> Result<(), ConsumerError> {
        let _ = self.stop.send(true);
        let consumer = self.status.borrow().consumer.clone();
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(ConsumerError::Storage {
                consumer,
                source: StorageError::new(
                    eventum_core::StorageErrorKind::Io,
                    format!("consumer task: {e}"),
                ),
            }),
        }
    }
}

fn stopped(consumer: &str) -> ConsumerError {
    ConsumerError::Storage {
        consumer: consumer.to_owned(),
        source: StorageError::new(
            eventum_core::StorageErrorKind::Unavailable,
            "the consumer has stopped",
        ),
    }
}

impl Runner {
    async fn run(mut self, stop: watch::Receiver<bool>) -> Result<(), ConsumerError> {
        let result = self.follow(stop).await;
        let state = match &result {
            Ok(()) => ConsumerState::Stopped,
            Err(e) => {
                tracing::error!(consumer = %self.consumer, error = %e, "consumer stopped");
                ConsumerState::Failed(e.clone())
            }
        };
        self.status.send_modify(|s| s.state = state);
        result
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let min = self.config.retry_delay_ms_min.max(1);
        let ms = min
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
            .min(self.config.retry_delay_ms_max.max(min));
        Duration::from_millis(ms)
    }

    /// Sleeps `delay` unless asked to stop first; `false` when asked to stop.
    async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            _ = stop.changed() => false,
            _ = tokio::time::sleep(delay) => !*stop.borrow(),
        }
    }

    async fn follow(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), ConsumerError> {
        let batch_max = self.config.batch_events_max.max(1);
        let latency = Duration::from_millis(self.config.batch_latency_ms_max);
        let mut read_failures = 0u32;
        'subscribe: loop {
            let mut sub = self
                .events
                .subscribe(self.target.clone(), SubscriptionFrom::Position(self.cursor));
            loop {
                if *stop.borrow() {
                    return Ok(());
                }
                let first = tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    item = sub.next() => item,
                };
                let mut batch = Vec::new();
                let mut resubscribe = None;
                match first {
                    None => {
                        return Err(ConsumerError::EventStoreClosed {
                            consumer: self.consumer.clone(),
                        });
                    }
                    Some(Err(e)) => resubscribe = Some(e),
                    Some(Ok(e)) => batch.push(e),
                }
                let deadline = tokio::time::Instant::now() + latency;
                while resubscribe.is_none() && batch.len() < batch_max {
                    match tokio::time::timeout_at(deadline, sub.next()).await {
                        Err(_) | Ok(None) => break,
                        Ok(Some(Err(e))) => resubscribe = Some(e),
                        Ok(Some(Ok(e))) => batch.push(e),
                    }
                }
                batch.retain(|e| e.position >= self.cursor);
                if !batch.is_empty() {
                    read_failures = 0;
                    if !self.commit_with_retries(batch, &mut stop).await? {
                        return Ok(());
                    }
                }
                if let Some(e) = resubscribe {
                    read_failures += 1;
                    if self
                        .config
                        .retry_attempts_max
                        .is_some_and(|max| read_failures >= max)
                    {
                        return Err(ConsumerError::Storage {
                            consumer: self.consumer.clone(),
                            source: e,
                        });
                    }
                    tracing::warn!(consumer = %self.consumer, error = %e, "reading the event store failed; resubscribing");
                    if !Self::pause(self.backoff(read_failures), &mut stop).await {
                        return Ok(());
                    }
                    continue 'subscribe;
                }
            }
        }
    }

    /// Commits `batch`, trying transient failures again; `false` when asked to stop
    /// while waiting to try again.
    async fn commit_with_retries(
        &mut self,
        batch: Vec<RecordedEvent>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, ConsumerError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let error = match self.commit_batch(&batch).await {
                Ok(()) => return Ok(true),
                Err(Failure::Stop(e)) => return Err(e),
                Err(Failure::Retry(e)) => e,
            };
            let out_of_attempts = self
                .config
                .retry_attempts_max
                .is_some_and(|max| attempt >= max);
            if !error.transient || out_of_attempts {
                return Err(ConsumerError::Batch {
                    consumer: self.consumer.clone(),
                    first: batch.first().map_or(0, |e| e.position),
                    last: batch.last().map_or(0, |e| e.position),
                    attempts: attempt,
                    source: error,
                });
            }
            tracing::warn!(consumer = %self.consumer, attempt, error = %error, "batch failed; trying again");
            self.status.send_modify(|s| {
                s.retries += 1;
                s.state = ConsumerState::Retrying {
                    attempt,
                    error: error.message.clone(),
                }
            });
            if !Self::pause(self.backoff(attempt), stop).await {
                return Ok(false);
            }
        }
    }

    /// One try of one batch, in one transaction.
    async fn commit_batch(&mut self, batch: &[RecordedEvent]) -> Result<(), Failure> {
        let end = batch.last().expect("batches are never empty").position + 1;
        let mut client = self.models.client().await?;
        let mut tx = client.transaction().await.map_err(storage)?;
        // The stored checkpoint, locked: a runner that lost its connection during a commit
        // that did happen, or a second runner of this consumer, finds the events it would
        // repeat below it and skips them.
        let from = match checkpoint::lock(&tx, &self.consumer).await? {
            Some(stored) if stored < self.cursor => {
                return Err(Failure::Stop(ConsumerError::CheckpointMovedBack {
                    consumer: self.consumer.clone(),
                    expected: self.cursor,
                    found: stored,
                }));
            }
            Some(stored) => stored,
            None => self.cursor,
        };
        if from >= end {
            drop(tx);
            self.advance(from, 0, 0, false);
            return Ok(());
        }
        let offered: Vec<&RecordedEvent> = batch
            .iter()
            .filter(|e| e.position >= from)
            .filter(|e| self.config.include_system_streams || !e.stream.starts_with('$'))
            .collect();
        let ids: Vec<_> = offered.iter().map(|e| e.id).collect();
        let new = inbox::record(&tx, &self.consumer, &ids).await?;
        let fresh: Vec<RecordedEvent> = offered
            .iter()
            .zip(&new)
            .filter(|(_, new)| **new)
            .map(|(e, _)| (*e).clone())
            .collect();
        let duplicates = (offered.len() - fresh.len()) as u64;
        if !fresh.is_empty() {
            self.handler
                .handle(&mut tx, &fresh)
                .await
                .map_err(Failure::Retry)?;
        }
        checkpoint::save(&tx, &self.consumer, end, fresh.len() as u64).await?;
        let recorded = self.recorded_since_prune + fresh.len() as u64;
        let prune_every = (self.config.inbox_ids_max / 8).max(1);
        let pruned = recorded >= prune_every;
        if pruned {
            inbox::prune(&tx, &self.consumer, self.config.inbox_ids_max).await?;
        }
        tx.commit().await.map_err(storage)?;
        self.recorded_since_prune = if pruned { 0 } else { recorded };
        self.advance(end, fresh.len() as u64, duplicates, true);
        Ok(())
    }

    fn advance(&mut self, position_next: u64, handled: u64, duplicates: u64, committed: bool) {
        self.cursor = self.cursor.max(position_next);
        let cursor = self.cursor;
        self.status.send_modify(|s| {
            s.position_next = cursor;
            s.events_handled += handled;
            s.duplicates_dropped += duplicates;
            s.batches_committed += u64::from(committed);
            s.state = ConsumerState::Running;
        });
    }
}
