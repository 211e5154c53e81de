//! The relay: follows `$all` from its durable checkpoint, maps events to messages,
//! publishes them in bounded batches through a [`Sink`], retries a failed batch with
//! capped exponential backoff, and advances the checkpoint only after the broker
//! acknowledged. The store's log is the outbox: there is no second table to keep in sync.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use eventum_core::{EventStore, StreamName, SubscriptionFrom, SubscriptionTarget};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::checkpoint::Checkpoint;
use crate::config::RelayConfig;
use crate::error::{ConfigError, RelayError, SinkError};
use crate::message::Message;
use crate::relay_reader::{ReadBatch, read_batches};
use crate::sink::{Acks, Sink};

/// What a relay is doing, for status lines and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayState {
    Starting,
    Running,
    /// The last publish failed; the relay is waiting to retry the same batch.
    Retrying,
    Stopped,
}

/// A relay's progress, published on a watch channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayProgress {
    pub state: RelayState,
    /// Every event below this position is acknowledged by the broker (or skipped).
    pub next_position: u64,
    /// The next position last written to the checkpoint stream.
    pub saved_position: u64,
    /// Messages acknowledged by the broker since start (re-sent ones counted again).
    pub published_total: u64,
    /// Failed publish attempts since start.
    pub publish_failures_total: u64,
    /// The last publish failure, cleared by the next success.
    pub last_error: Option<String>,
}

/// Starts relays.
pub struct Relay;

impl Relay {
    /// Validates `config` and starts a relay from `store` to `sink` on the current tokio
    /// runtime. It runs until [`RelayHandle::stop`] or a non-retryable error.
    pub fn spawn(
        store: Arc<dyn EventStore>,
        sink: Arc<dyn Sink>,
        config: RelayConfig,
    ) -> Result<RelayHandle, ConfigError> {
        config.validate()?;
        let checkpoint_stream = StreamName::system(config.checkpoint_stream())
            .map_err(|_| ConfigError::BadName(config.name.clone()))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (progress_tx, progress_rx) = watch::channel(RelayProgress {
            state: RelayState::Starting,
            next_position: 0,
            saved_position: 0,
            published_total: 0,
            publish_failures_total: 0,
            last_error: None,
        });
        let task = tokio::spawn(async move {
            let progress = progress_tx.clone();
            let result = run(store, sink, config, checkpoint_stream, stop_rx, progress_tx).await;
            progress.send_modify(|p| {
                p.state = RelayState::Stopped;
                if let Err(e) = &result {
                    p.last_error = Some(e.to_string());
                }
            });
            result
        });
        Ok(RelayHandle {
            stop_tx,
            progress: progress_rx,
            task,
        })
    }
}

/// A running relay.
pub struct RelayHandle {
    stop_tx: watch::Sender<bool>,
    progress: watch::Receiver<RelayProgress>,
    task: JoinHandle<Result<(), RelayError>>,
}

impl RelayHandle {
    /// A receiver of the relay's progress.
    pub fn progress(&self) -> watch::Receiver<RelayProgress> {
        self.progress.clone()
    }

    /// Waits until every event below `next_position` is acknowledged; `false` on timeout
    /// or if the relay stopped first.
    pub async fn wait_acknowledged(&self, next_position: u64, timeout: Duration) -> bool {
        let mut rx = self.progress.clone();
        let reached =
            rx.wait_for(|p| p.next_position >= next_position || p.state == RelayState::Stopped);
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(p)) => p.next_position >= next_position,
            _ => false,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the relay to stop (a batch in flight is abandoned unacknowledged), waits for
    /// it, and returns how it ended. The checkpoint covers everything acknowledged.
    pub async fn stop(self) -> Result<(), RelayError> {
        let _ = self.stop_tx.send(true);
        self.join().await
    }

    /// Waits for the relay to end by itself (only an error ends it).
    pub async fn join(self) -> Result<(), RelayError> {
        self.task.await.unwrap_or(Err(RelayError::Panicked))
    }
}

/// Resolves once a stop was asked for (or the handle was dropped).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

struct Runner {
    sink: Arc<dyn Sink>,
    config: RelayConfig,
    checkpoint: Checkpoint,
    stop: watch::Receiver<bool>,
    progress: watch::Sender<RelayProgress>,
    next_position: u64,
    /// Whether something was published since the last checkpoint write. Only then is a
    /// checkpoint written: the checkpoint's own events are in `$all` too, and saving for
    /// skipped events alone would feed itself forever.
    unsaved: bool,
    last_save: Instant,
}

async fn run(
    store: Arc<dyn EventStore>,
    sink: Arc<dyn Sink>,
    config: RelayConfig,
    checkpoint_stream: StreamName,
    stop: watch::Receiver<bool>,
    progress: watch::Sender<RelayProgress>,
) -> Result<(), RelayError> {
    let (checkpoint, next_position) = Checkpoint::open(
        store.clone(),
        checkpoint_stream,
        config.checkpoint_records_kept,
    )
    .await?;
    progress.send_modify(|p| {
        p.state = RelayState::Running;
        p.next_position = next_position;
        p.saved_position = next_position;
    });
    tracing::info!(relay = %config.name, sink = sink.name(), next_position, "relay started");
    let subscription = store.subscribe(
        SubscriptionTarget::All,
        SubscriptionFrom::Position(next_position),
    );
    // Reading and mapping run in their own task, a bounded number of batches ahead, so
    // they overlap with publishing.
    let (batch_tx, mut batch_rx) = mpsc::channel(config.batches_in_flight_max);
    let reader = tokio::spawn(read_batches(subscription, config.clone(), batch_tx));
    let mut runner = Runner {
        sink,
        config,
        checkpoint,
        stop,
        progress,
        next_position,
        unsaved: false,
        last_save: Instant::now(),
    };
    let result = runner.follow(&mut batch_rx).await;
    reader.abort();
    if result.is_ok() && runner.unsaved {
        runner.save().await?;
    }
    result
}

/// A batch handed to the sink whose acknowledgements are pending.
struct InFlight {
    messages: Vec<Message>,
    /// The position of the batch's last event (system events skipped included).
    last_position: u64,
    acks: Acks,
}

/// What the relay loop does next.
enum Step {
    Stop,
    Save,
    Acked(Result<(), SinkError>),
    Read(Option<Result<ReadBatch, RelayError>>),
}

impl Runner {
    /// Takes the reader's batches and keeps up to `batches_in_flight_max` of them sent and
    /// unacknowledged. Acknowledgements are taken in batch order, so the position only
    /// ever moves past a batch once it and every batch before it are acknowledged. A
    /// failure re-sends every batch in flight, one at a time, until the broker is back.
    async fn follow(
        &mut self,
        batches: &mut mpsc::Receiver<Result<ReadBatch, RelayError>>,
    ) -> Result<(), RelayError> {
        let interval = Duration::from_millis(self.config.checkpoint_interval_ms);
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        loop {
            let save_in = interval.saturating_sub(self.last_save.elapsed());
            let room = in_flight.len() < self.config.batches_in_flight_max;
            let waiting = !in_flight.is_empty();
            let front = in_flight.front_mut().map(|f| &mut f.acks);
            let acked = async move {
                match front {
                    Some(acks) => acks.await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                biased;
                _ = stopped(&mut self.stop) => Step::Stop,
                r = acked, if waiting => Step::Acked(r),
                _ = tokio::time::sleep(save_in), if self.unsaved => Step::Save,
                read = batches.recv(), if room => Step::Read(read),
            };
            match step {
                Step::Stop => return Ok(()),
                Step::Save => self.save().await?,
                Step::Acked(Ok(())) => {
                    let done = in_flight.pop_front().expect("acks of the front batch");
                    self.acknowledged(done.last_position, done.messages.len());
                }
                Step::Acked(Err(error)) => {
                    if !self.recover(error, in_flight.drain(..).collect()).await? {
                        return Ok(());
                    }
                }
                Step::Read(read) => {
                    let read = read.unwrap_or(Err(RelayError::SubscriptionEnded))?;
                    let batch = InFlight {
                        messages: read.messages,
                        last_position: read.last_position,
                        acks: Box::pin(std::future::pending()),
                    };
                    let sent = if batch.messages.is_empty() {
                        // A batch of skipped events only has to wait its turn.
                        Ok(Box::pin(std::future::ready(Ok(()))) as Acks)
                    } else {
                        tokio::select! {
                            biased;
                            _ = stopped(&mut self.stop) => return Ok(()),
                            r = self.sink.send(&batch.messages) => r,
                        }
                    };
                    match sent {
                        Ok(acks) => in_flight.push_back(InFlight { acks, ..batch }),
                        Err(error) => {
                            let mut batches: Vec<InFlight> = in_flight.drain(..).collect();
                            batches.push(batch);
                            if !self.recover(error, batches).await? {
                                return Ok(());
                            }
                        }
                    }
                }
            }
            if self.unsaved && self.last_save.elapsed() >= interval {
                self.save().await?;
            }
        }
    }

    /// Moves the position past an acknowledged batch.
    fn acknowledged(&mut self, last_position: u64, published: usize) {
        if published > 0 {
            self.unsaved = true;
        }
        self.next_position = last_position + 1;
        let next_position = self.next_position;
        self.progress.send_modify(|p| {
            p.next_position = next_position;
            p.published_total += published as u64;
        });
    }

    /// After `error`, re-sends `batches` (every batch that was in flight, in order) one at
    /// a time with backoff until each is acknowledged. `Ok(false)` when a stop was asked
    /// for first.
    async fn recover(
        &mut self,
        error: SinkError,
        batches: Vec<InFlight>,
    ) -> Result<bool, RelayError> {
        let mut failed_before = Some(error);
        for batch in batches {
            if !batch.messages.is_empty()
                && !self
                    .publish_with_retry(&batch.messages, failed_before.take())
                    .await?
            {
                return Ok(false);
            }
            self.acknowledged(batch.last_position, batch.messages.len());
        }
        Ok(true)
    }

    /// Publishes `messages` until the sink acknowledges them; `failed_before` is a failure
    /// of them already seen (the first attempt then waits its backoff). `Ok(false)` when
    /// a stop was asked for first (nothing counts as delivered then).
    async fn publish_with_retry(
        &mut self,
        messages: &[Message],
        failed_before: Option<SinkError>,
    ) -> Result<bool, RelayError> {
        let mut attempt: u32 = 0;
        let mut failed = failed_before;
        loop {
            let outcome: Result<(), SinkError> = match failed.take() {
                Some(e) => Err(e),
                None => tokio::select! {
                    biased;
                    _ = stopped(&mut self.stop) => return Ok(false),
                    r = self.sink.publish(messages) => r,
                },
            };
            let error = match outcome {
                Ok(()) => {
                    if attempt > 0 {
                        tracing::info!(relay = %self.config.name, attempt, "broker is back; batch acknowledged");
                        self.progress.send_modify(|p| {
                            p.state = RelayState::Running;
                            p.last_error = None;
                        });
                    }
                    return Ok(true);
                }
                Err(e) => e,
            };
            attempt = attempt.saturating_add(1);
            tracing::warn!(relay = %self.config.name, attempt, error = %error, "publish failed; will retry");
            self.progress.send_modify(|p| {
                p.state = RelayState::Retrying;
                p.publish_failures_total += 1;
                p.last_error = Some(error.to_string());
            });
            if let Some(max) = self.config.retry_attempts_max
                && attempt >= max
            {
                return Err(RelayError::RetriesExhausted {
                    attempts: attempt,
                    last: error,
                });
            }
            let delay = self.config.retry_delay(attempt);
            tokio::select! {
                biased;
                _ = stopped(&mut self.stop) => return Ok(false),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn save(&mut self) -> Result<(), RelayError> {
        self.checkpoint.save(self.next_position).await?;
        self.unsaved = false;
        self.last_save = Instant::now();
        let saved = self.next_position;
        self.progress.send_modify(|p| p.saved_position = saved);
        Ok(())
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
