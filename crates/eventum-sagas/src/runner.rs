//! The saga runner: follows the saga's source from a durable checkpoint, routes events to
//! instances by correlation key and fires due deadlines. Each piece of work runs as an
//! instance task (`step.rs`); different instances proceed concurrently, one instance's
//! work strictly in order (`pipeline.rs`), and the checkpoint never passes an event whose
//! work is unfinished.

use std::sync::Arc;
use std::time::Duration;

use eventum_core::{
    AppendError, CommandSender, EventStore, ExpectedVersion, NewEvent, ReadDirection,
    RecordedEvent, SubscriptionFrom, SubscriptionTarget,
};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use crate::cache::InstanceCache;
use crate::checkpoint::Checkpoint;
use crate::clock::Clock;
use crate::config::SagaConfig;
use crate::deadlines::DeadlineBook;
use crate::error::{RunError, StartError};
use crate::pipeline::{Finished, Pipeline};
use crate::records;
use crate::saga::Saga;
use crate::step::{self, Context, Outcome, Work};

/// Starts saga runners.
pub struct SagaRunner;

impl SagaRunner {
    /// Loads the checkpoint and the deadline book, then runs `saga` in a new task until
    /// [`SagaHandle::stop`] or an error.
    pub async fn start<G: Saga>(
        store: Arc<dyn EventStore>,
        sender: Arc<dyn CommandSender>,
        saga: G,
        config: SagaConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<SagaHandle, StartError> {
        config.check()?;
        let name = saga.name().to_owned();
        let (checkpoint, from) =
            Checkpoint::open(store.clone(), records::checkpoint_stream("saga", &name)?).await?;
        let book = DeadlineBook::new(
            store.clone(),
            records::deadlines_stream(&name)?,
            config.deadlines_in_memory_max,
            config.read_batch_events,
        );
        book.load().await?;
        let registry = records::registry_stream(&name)?;
        let run_id = uuid::Uuid::now_v7();
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = Runner {
            cache: InstanceCache::new(config.cache_instances_max),
            pipeline: Pipeline::new(
                from,
                config.instances_in_flight_max,
                config.events_in_flight_max,
            ),
            cx: Arc::new(Context {
                store,
                sender,
                saga,
                config,
                clock,
                book,
                registry,
                run_id,
                step_stamp: records::runner_stamp(run_id),
            }),
            checkpoint,
            saved_position: from,
            unsaved_events: 0,
            registrations: JoinSet::new(),
            unregistered: Vec::new(),
            checkpoint_write: None,
            firing: false,
        };
        let span = tracing::info_span!("saga", saga = %name);
        let task = tokio::spawn(runner.run(from, stop_rx).instrument(span));
        Ok(SagaHandle {
            stop: stop_tx,
            task,
        })
    }
}

/// A running saga.
pub struct SagaHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), RunError>>,
}

impl SagaHandle {
    /// Asks the runner to stop after the step in hand, saves the checkpoint and waits.
    pub async fn stop(self) -> Result<(), RunError> {
        let _ = self.stop.send(true);
        self.join().await
    }

    /// Waits for the runner to end by itself (it only does on an error).
    pub async fn join(self) -> Result<(), RunError> {
        self.task
            .await
            .map_err(|e| RunError::Aborted(e.to_string()))?
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Ends the runner at whatever await it is at, without saving the checkpoint: what a
    /// crash does. For tests of redelivery; use [`Self::stop`] otherwise.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

struct Runner<G: Saga> {
    cx: Arc<Context<G>>,
    checkpoint: Checkpoint,
    /// Instances no task holds right now; a task takes its instance out and gives it back.
    cache: InstanceCache<G::State>,
    pipeline: Pipeline<Work, Outcome<G::State>>,
    /// The position the last checkpoint write recorded.
    saved_position: u64,
    unsaved_events: u64,
    /// Registry appends in flight: off the steps' path, but done before the checkpoint
    /// passes the events that started their instances.
    registrations: JoinSet<Result<(), AppendError>>,
    /// Registry records waiting for the next registry append. Batched as a group commit:
    /// while one append is in flight, the records of the instances started meanwhile
    /// gather here and go in the next one, so that under load a new instance costs a
    /// share of one append instead of an append (and two tasks) of its own, and a lone
    /// instance is registered at once.
    unregistered: Vec<NewEvent>,
    /// The last checkpoint write, in flight.
    checkpoint_write: Option<JoinHandle<Result<(), RunError>>>,
    /// A deadline task runs: deadlines fire one at a time.
    firing: bool,
}

impl<G: Saga> Runner<G> {
    async fn run(mut self, from: u64, mut stop: watch::Receiver<bool>) -> Result<(), RunError> {
        let mut subscription = self
            .cx
            .store
            .subscribe(self.cx.saga.source(), SubscriptionFrom::Position(from));
        // The first tick comes after one period (not at once), so the checkpoint moves only
        // as configured.
        let period = Duration::from_millis(self.cx.config.checkpoint_interval_ms.max(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            if self.pipeline.is_idle() {
                // Only while no task runs: a reload replaces what tasks schedule.
                self.cx.book.refill_if_needed().await?;
            }
            let due = self.cx.book.due(self.cx.clock.now_ms()).is_some();
            // A due deadline waits until every event already in the log has been handled:
            // an answer recorded before the runner got round to the deadline (after a
            // restart, or when it lags) wins over the timeout.
            let fire = due && !self.firing && self.caught_up().await?;
            if fire {
                self.fire_due();
            }
            let sleep = match self.cx.book.next_due_ms() {
                Some(_) if due => Box::pin(futures::future::pending()),
                Some(at) => self.cx.clock.sleep_until(at),
                None => Box::pin(futures::future::pending()),
            };
            let room = self.pipeline.has_room();
            tokio::select! {
                biased;
                _ = stop.changed() => break Ok(()),
                appended = self.registrations.join_next(), if !self.registrations.is_empty() => {
                    if let Some(appended) = appended {
                        appended.map_err(|e| RunError::Aborted(e.to_string()))??;
                    }
                    self.register(Vec::new()).await?;
                }
                finished = self.pipeline.next_finished() => {
                    let finished = finished.map_err(|e| RunError::Aborted(e.to_string()))?;
                    if let Err(e) = self.on_finished(finished).await {
                        break Err(e);
                    }
                }
                item = subscription.next(), if room => match item {
                    Some(Ok(event)) => self.on_event(event).await?,
                    Some(Err(e)) => break Err(RunError::Subscription(e)),
                    None => break Err(RunError::SubscriptionEnded),
                },
                () = sleep => {}
                _ = tick.tick() => self.save_checkpoint(false).await?,
            }
        };
        // Let the tasks in hand end (queued work stays behind the checkpoint), then save
        // what is finished, also after an error: the checkpoint never passes unfinished
        // work, so saving is always safe.
        for finished in self.pipeline.drain().await {
            let finished = finished.map_err(|e| RunError::Aborted(e.to_string()))?;
            self.unregistered.extend(finished.output.registrations);
            if finished.output.result.is_ok() {
                self.pipeline.mark_finished(finished.position);
            }
        }
        let saved = self.save_checkpoint(true).await;
        result.and(saved)
    }

    /// Whether every matching event in the log now has been received and handled.
    async fn caught_up(&self) -> Result<bool, RunError> {
        if !self.pipeline.is_idle() {
            return Ok(false);
        }
        let Some(head) = self.cx.store.head_position() else {
            return Ok(true);
        };
        let next_position = self.pipeline.next_position();
        if next_position > head {
            return Ok(true);
        }
        let store = &self.cx.store;
        let next = match self.cx.saga.source() {
            SubscriptionTarget::Category(category) => {
                store.read_category(&category, next_position, 1).await?
            }
            SubscriptionTarget::All => {
                store
                    .read_all(Some(next_position), ReadDirection::Forward, 1)
                    .await?
            }
            // A single stream's versions do not map onto positions cheaply: no wait.
            SubscriptionTarget::Stream(_) => return Ok(true),
        };
        Ok(next.first().is_none_or(|e| e.position > head))
    }

    /// Writes the checkpoint in the background (or waits for it when `wait`), after the
    /// registrations started so far are durable. Writes stay in order: a new one first
    /// waits for the previous one.
    async fn save_checkpoint(&mut self, wait: bool) -> Result<(), RunError> {
        if let Some(previous) = self.checkpoint_write.take() {
            previous
                .await
                .map_err(|e| RunError::Aborted(e.to_string()))??;
        }
        self.unsaved_events = 0;
        while !self.unregistered.is_empty() {
            self.append_registrations();
        }
        let position = self.pipeline.checkpoint_position();
        if position != self.saved_position || !self.registrations.is_empty() {
            let mut registrations = std::mem::take(&mut self.registrations);
            let checkpoint = self.checkpoint.clone();
            self.saved_position = position;
            let write = tokio::spawn(async move {
                while let Some(r) = registrations.join_next().await {
                    r.map_err(|e| RunError::Aborted(e.to_string()))??;
                }
                checkpoint.save(position).await
            });
            if wait {
                write
                    .await
                    .map_err(|e| RunError::Aborted(e.to_string()))??;
            } else {
                self.checkpoint_write = Some(write);
            }
        }
        Ok(())
    }

    async fn on_event(&mut self, event: RecordedEvent) -> Result<(), RunError> {
        let position = event.position;
        let saga = &self.cx.saga;
        // System streams (saga records, checkpoints, metadata) are never routed.
        let key = if event.stream.starts_with('$') {
            None
        } else {
            saga.correlate(&event)
        };
        match key {
            Some(key) if records::instance_stream(saga.name(), &key).is_err() => {
                tracing::warn!(%key, event_id = %event.id, "correlation key makes no valid stream name; event skipped");
                self.pipeline.skip(position);
            }
            Some(key) => {
                let may_start = saga.starts(&event);
                let work = Work::Event { event, may_start };
                if let Some(work) = self.pipeline.submit(&key, Some(position), work) {
                    self.start(key, Some(position), work);
                }
                return Ok(());
            }
            None => self.pipeline.skip(position),
        }
        self.count_handled().await
    }

    async fn count_handled(&mut self) -> Result<(), RunError> {
        self.unsaved_events += 1;
        if self.unsaved_events >= self.cx.config.checkpoint_every_events {
            self.save_checkpoint(false).await?;
        }
        Ok(())
    }

    /// Starts `work` for `key` as a task, with the instance's cached copy.
    fn start(&mut self, key: String, position: Option<u64>, work: Work) {
        let span = match &work {
            // Debug level, as the command spans: per event at info they cost ~4% of the
            // shop's CPU. The warnings of a step name its instance themselves.
            Work::Event { event, .. } => tracing::debug_span!(
                "saga_event",
                %key,
                event_id = %event.id,
                event_type = %event.event_type,
                correlation_id = %event.correlation_id,
                causation_id = %event.id,
            ),
            Work::Fire(entry) => tracing::debug_span!(
                "saga_deadline",
                %key,
                deadline = %entry.name,
                deadline_id = %entry.deadline_id,
                correlation_id = %entry.correlation_id,
                causation_id = %entry.deadline_id,
            ),
        };
        let cached = self.cache.take(&key);
        let task = step::run(self.cx.clone(), key.clone(), cached, work).instrument(span);
        self.pipeline.start(key, position, task);
    }

    /// Takes a finished task's results in and starts the key's next queued work.
    async fn on_finished(&mut self, finished: Finished<Outcome<G::State>>) -> Result<(), RunError> {
        let Finished {
            key,
            position,
            output,
        } = finished;
        output.result?;
        if position.is_none() {
            self.firing = false;
        }
        if let Some(instance) = output.instance {
            self.cache.put(instance);
        }
        self.register(output.registrations).await?;
        if let Some((next_position, work)) = self.pipeline.finish(&key, position) {
            self.start(key, next_position, work);
        }
        if position.is_some() {
            self.count_handled().await?;
        }
        Ok(())
    }

    /// Queues registry records and starts the next registry append when none is in
    /// flight. A full batch waits for the append in flight first, so that at most one
    /// batch waits and one is in flight.
    async fn register(&mut self, records: Vec<NewEvent>) -> Result<(), RunError> {
        self.unregistered.extend(records);
        if self.unregistered.len() >= self.cx.config.registry_batch_events_max {
            while let Some(appended) = self.registrations.join_next().await {
                appended.map_err(|e| RunError::Aborted(e.to_string()))??;
            }
        }
        if self.registrations.is_empty() {
            self.append_registrations();
        }
        Ok(())
    }

    /// Starts one registry append of the waiting records, as many as one batch holds (by
    /// the runner's bound and the store's limits). Registrations are idempotent: each
    /// record's id derives from the instance, and readers of the registry skip a key
    /// listed twice.
    fn append_registrations(&mut self) {
        let limits = self.cx.store.limits();
        let events_max = self
            .cx
            .config
            .registry_batch_events_max
            .min(limits.batch_events_max)
            .max(1);
        let mut bytes = 0;
        let mut take = 0;
        for event in self.unregistered.iter().take(events_max) {
            bytes += event.size_bytes();
            if take > 0 && bytes > limits.batch_bytes_max {
                break;
            }
            take += 1;
        }
        if take == 0 {
            return;
        }
        let batch: Vec<NewEvent> = self.unregistered.drain(..take).collect();
        let store = self.cx.store.clone();
        let registry = self.cx.registry.clone();
        self.registrations.spawn(async move {
            store
                .append(&registry, ExpectedVersion::Any, batch)
                .await
                .map(|_| ())
        });
    }

    /// Starts a task firing the earliest due deadline. One at a time: firing may load an
    /// instance and redo its last effects, which can append answers the next deadline
    /// must wait for.
    fn fire_due(&mut self) {
        if let Some(entry) = self.cx.book.due(self.cx.clock.now_ms()) {
            let key = entry.instance_key.clone();
            self.firing = true;
            if let Some(work) = self.pipeline.submit(&key, None, Work::Fire(entry)) {
                self.start(key, None, work);
            }
        }
    }
}
