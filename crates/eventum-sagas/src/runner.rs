//! The saga runner: follows the saga's source from a durable checkpoint, routes events to
//! instances by correlation key, fires due deadlines, records each step in the instance
//! stream with the exact expected version and then carries out its effects (commands,
//! deadline book, registry). One task per saga, so an instance's steps never interleave.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use eventum_core::{
    AppendError, CommandSender, EventStore, ExpectedVersion, NewEvent, ReadDirection, ReadError,
    RecordedEvent, StreamName, SubscriptionFrom, SubscriptionTarget,
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
use crate::dispatch::{RetryPolicy, send_with_retries};
use crate::error::{RunError, StartError};
use crate::instance::{Effects, Instance, StepLimits, plan_step};
use crate::records::{self, DeadlineEntry, InstanceRecord, InstanceRegistered, derived_id};
use crate::saga::{CommandRejection, FiredDeadline, Saga, Trigger};

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
        let mut book = DeadlineBook::new(
            store.clone(),
            records::deadlines_stream(&name)?,
            config.deadlines_in_memory_max,
            config.read_batch_events,
        );
        book.load().await?;
        let registry = records::registry_stream(&name)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = Runner {
            cache: InstanceCache::new(config.cache_instances_max),
            store,
            sender,
            saga,
            config,
            clock,
            book,
            checkpoint,
            registry,
            next_position: from,
            saved_position: from,
            unsaved_events: 0,
            registrations: JoinSet::new(),
            checkpoint_write: None,
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

/// A trigger the runner owns while handling it.
enum OwnedTrigger {
    Event(RecordedEvent),
    Deadline(FiredDeadline),
    Rejected(CommandRejection),
}

impl OwnedTrigger {
    fn as_trigger(&self) -> Trigger<'_> {
        match self {
            OwnedTrigger::Event(e) => Trigger::Event(e),
            OwnedTrigger::Deadline(d) => Trigger::Deadline(d),
            OwnedTrigger::Rejected(r) => Trigger::CommandRejected(r),
        }
    }
}

struct Runner<G: Saga> {
    store: Arc<dyn EventStore>,
    sender: Arc<dyn CommandSender>,
    saga: G,
    config: SagaConfig,
    clock: Arc<dyn Clock>,
    book: DeadlineBook,
    checkpoint: Checkpoint,
    cache: InstanceCache<G::State>,
    registry: StreamName,
    /// Every event before this position is handled.
    next_position: u64,
    /// The position the last checkpoint write recorded.
    saved_position: u64,
    unsaved_events: u64,
    /// Registry appends in flight: off the step's path, but done before the checkpoint
    /// passes the events that started their instances.
    registrations: JoinSet<Result<(), AppendError>>,
    /// The last checkpoint write, in flight.
    checkpoint_write: Option<JoinHandle<Result<(), RunError>>>,
}

impl<G: Saga> Runner<G> {
    async fn run(mut self, from: u64, mut stop: watch::Receiver<bool>) -> Result<(), RunError> {
        let mut subscription = self
            .store
            .subscribe(self.saga.source(), SubscriptionFrom::Position(from));
        // The first tick comes after one period (not at once), so the checkpoint moves only
        // as configured.
        let period = Duration::from_millis(self.config.checkpoint_interval_ms.max(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.book.refill_if_needed().await?;
            let due = self.book.due(self.clock.now_ms()).is_some();
            // A due deadline waits until every event already in the log has been handled:
            // an answer recorded before the runner got round to the deadline (after a
            // restart, or when it lags) wins over the timeout.
            let fire = due && self.caught_up().await?;
            if fire {
                self.fire_due().await?;
            }
            let sleep = match self.book.next_due_ms() {
                Some(_) if due && !fire => Box::pin(futures::future::pending()),
                Some(at) => self.clock.sleep_until(at),
                None => Box::pin(futures::future::pending()),
            };
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                item = subscription.next() => match item {
                    Some(Ok(event)) => self.on_event(event).await?,
                    Some(Err(e)) => return Err(RunError::Subscription(e)),
                    None => return Err(RunError::SubscriptionEnded),
                },
                () = sleep => {}
                _ = tick.tick() => self.save_checkpoint(false).await?,
            }
        }
        self.save_checkpoint(true).await
    }

    /// Whether the subscription has delivered every matching event in the log now.
    async fn caught_up(&self) -> Result<bool, RunError> {
        let Some(head) = self.store.head_position() else {
            return Ok(true);
        };
        if self.next_position > head {
            return Ok(true);
        }
        let next = match self.saga.source() {
            SubscriptionTarget::Category(category) => {
                self.store
                    .read_category(&category, self.next_position, 1)
                    .await?
            }
            SubscriptionTarget::All => {
                self.store
                    .read_all(Some(self.next_position), ReadDirection::Forward, 1)
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
        if self.next_position != self.saved_position || !self.registrations.is_empty() {
            let mut registrations = std::mem::take(&mut self.registrations);
            let checkpoint = self.checkpoint.clone();
            let next_position = self.next_position;
            self.saved_position = next_position;
            let write = tokio::spawn(async move {
                while let Some(r) = registrations.join_next().await {
                    r.map_err(|e| RunError::Aborted(e.to_string()))??;
                }
                checkpoint.save(next_position).await
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

    /// Registers `key` in the background (see `registrations`).
    async fn register(&mut self, key: &str) -> Result<(), RunError> {
        // Bounded: beyond the cache size, wait for the oldest registration first.
        while self.registrations.len() >= self.config.cache_instances_max {
            if let Some(r) = self.registrations.join_next().await {
                r.map_err(|e| RunError::Aborted(e.to_string()))??;
            }
        }
        let record = InstanceRegistered {
            key: key.to_owned(),
        };
        let event = NewEvent::new("InstanceRegistered", &record)
            .expect("a registry record serializes")
            .with_id(derived_id(&["registry", self.saga.name(), key]));
        let store = self.store.clone();
        let registry = self.registry.clone();
        self.registrations.spawn(async move {
            store
                .append(&registry, ExpectedVersion::Any, vec![event])
                .await
                .map(|_| ())
        });
        Ok(())
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries_max: self.config.send_retries_max,
            delay_ms: self.config.send_retry_delay_ms,
            delay_ms_max: self.config.send_retry_delay_ms_max,
        }
    }

    async fn on_event(&mut self, event: RecordedEvent) -> Result<(), RunError> {
        let position = event.position;
        // System streams (saga records, checkpoints, metadata) are never routed.
        if !event.stream.starts_with('$')
            && let Some(key) = self.saga.correlate(&event)
        {
            if records::instance_stream(self.saga.name(), &key).is_err() {
                tracing::warn!(%key, event_id = %event.id, "correlation key makes no valid stream name; event skipped");
            } else {
                let may_start = self.saga.starts(&event);
                let span = tracing::info_span!(
                    "saga_event",
                    %key,
                    event_id = %event.id,
                    event_type = %event.event_type,
                    correlation_id = %event.correlation_id,
                    causation_id = %event.id,
                );
                self.process(&key, OwnedTrigger::Event(event), may_start)
                    .instrument(span)
                    .await?;
            }
        }
        self.next_position = position + 1;
        self.unsaved_events += 1;
        if self.unsaved_events >= self.config.checkpoint_every_events {
            self.save_checkpoint(false).await?;
        }
        Ok(())
    }

    /// Fires the earliest deadline that is due now. One at a time: firing may load an
    /// instance and redo its last effects, which can append answers the next deadline must
    /// wait for.
    async fn fire_due(&mut self) -> Result<(), RunError> {
        if let Some(entry) = self.book.due(self.clock.now_ms()) {
            let span = tracing::info_span!(
                "saga_deadline",
                key = %entry.instance_key,
                deadline = %entry.name,
                deadline_id = %entry.deadline_id,
                correlation_id = %entry.correlation_id,
                causation_id = %entry.deadline_id,
            );
            self.fire(entry).instrument(span).await?;
        }
        Ok(())
    }

    async fn fire(&mut self, entry: DeadlineEntry) -> Result<(), RunError> {
        let key = entry.instance_key.clone();
        let id = entry.deadline_id;
        let loaded = !self.cache.contains(&key);
        let (instance, rejections) = self.checkout(&key).await?;
        let pending = instance.pending.values().any(|p| p.deadline_id == id);
        let handled = instance.handled.contains(&id);
        self.cache.put(instance);
        self.chain(&key, rejections).await?;
        if loaded && pending {
            // Loading redid the instance's last effects, which may have appended an answer
            // that should come before this deadline: decide on the next round, after the
            // catch-up check.
            return Ok(());
        }
        if !pending {
            // Fired, cancelled or replaced already: only the book lagged behind.
            if handled {
                self.book.fired(id).await?;
            } else {
                self.book.cancelled(id).await?;
            }
            return Ok(());
        }
        let fired = FiredDeadline {
            deadline_id: id,
            name: entry.name,
            due_at_ms: entry.due_at_ms,
            payload: entry.payload,
            correlation_id: entry.correlation_id,
        };
        self.process(&key, OwnedTrigger::Deadline(fired), false)
            .await
    }

    /// Handles `trigger` and every rejection its commands cause, in order.
    async fn process(
        &mut self,
        key: &str,
        trigger: OwnedTrigger,
        may_start: bool,
    ) -> Result<(), RunError> {
        let rejections = self.step(key, &trigger, may_start).await?;
        self.chain(key, rejections).await
    }

    async fn chain(
        &mut self,
        key: &str,
        rejections: Vec<CommandRejection>,
    ) -> Result<(), RunError> {
        let mut queue: VecDeque<_> = rejections.into();
        let mut chained = 0;
        while let Some(rejection) = queue.pop_front() {
            chained += 1;
            if chained > self.config.chained_triggers_max {
                tracing::error!(%key, "too many chained command rejections; the rest wait for the instance's next load");
                break;
            }
            let more = self
                .step(key, &OwnedTrigger::Rejected(rejection), false)
                .await?;
            queue.extend(more);
        }
        Ok(())
    }

    /// Takes `key`'s instance out of the cache, or loads it; a loaded instance's last step
    /// gets its effects carried out again (they may not have been before a crash).
    async fn checkout(
        &mut self,
        key: &str,
    ) -> Result<(Instance<G::State>, Vec<CommandRejection>), RunError> {
        if let Some(instance) = self.cache.take(key) {
            return Ok((instance, Vec::new()));
        }
        let instance = self.load(key).await?;
        let rejections = if instance.exists() {
            let effects = instance.last_effects.clone();
            self.perform(key, &effects).await?
        } else {
            Vec::new()
        };
        Ok((instance, rejections))
    }

    async fn load(&self, key: &str) -> Result<Instance<G::State>, RunError> {
        let stream = records::instance_stream(self.saga.name(), key)
            .map_err(|e| RunError::Corrupt(format!("instance key {key:?}: {e}")))?;
        let mut instance = Instance::new(key.to_owned(), stream.clone());
        let batch = self.config.read_batch_events;
        let mut from = 0;
        loop {
            let page = match self
                .store
                .read_stream(&stream, Some(from), ReadDirection::Forward, batch)
                .await
            {
                Ok(page) => page,
                Err(ReadError::StreamNotFound { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            for event in &page {
                let record = InstanceRecord::decode(event).map_err(RunError::Corrupt)?;
                instance.apply(&record).map_err(RunError::Corrupt)?;
                instance.version = Some(event.version);
                from = event.version + 1;
            }
            if page.len() < batch {
                break;
            }
        }
        Ok(instance)
    }

    /// Records one step for `trigger` (reloading on a conflicting write) and carries out
    /// its effects; returns the rejections of the commands it sent.
    async fn step(
        &mut self,
        key: &str,
        trigger: &OwnedTrigger,
        may_start: bool,
    ) -> Result<Vec<CommandRejection>, RunError> {
        let trigger = trigger.as_trigger();
        let mut rejections = Vec::new();
        for _ in 0..=self.config.conflict_retries_max {
            let (mut instance, earlier) = self.checkout(key).await?;
            rejections.extend(earlier);
            let skip = instance.handled.contains(&trigger.id())
                || (!instance.exists() && !may_start)
                || instance.status.is_terminal()
                || matches!(trigger, Trigger::Deadline(d)
                    if !instance.pending.values().any(|p| p.deadline_id == d.deadline_id));
            if skip {
                // The start event again: its registration may not have been durable
                // before a crash (it runs in the background), and later steps do not
                // repeat it.
                let restart = instance.exists()
                    && instance.start_trigger == Some(trigger.id())
                    && instance.steps > 1;
                self.cache.put(instance);
                if restart {
                    self.register(key).await?;
                }
                return Ok(rejections);
            }
            let plan = plan_step(
                &self.saga,
                &instance,
                &trigger,
                self.clock.now_ms(),
                StepLimits {
                    instance_steps_max: self.config.instance_steps_max,
                    step_actions_max: self.config.step_actions_max,
                },
            );
            let expected = instance
                .version
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self
                .store
                .append(&instance.stream, expected, plan.events)
                .await
            {
                Ok(result) => {
                    for record in &plan.records {
                        instance.apply(record).map_err(RunError::Corrupt)?;
                    }
                    instance.version = Some(result.next_expected_version);
                    let effects = instance.last_effects.clone();
                    tracing::debug!(step = plan.step, status = %instance.status, "step recorded");
                    self.cache.put(instance);
                    rejections.extend(self.perform(key, &effects).await?);
                    return Ok(rejections);
                }
                Err(AppendError::WrongExpectedVersion { .. }) => {
                    // Another runner moved the instance on: forget our copy and decide
                    // again on what the stream says.
                    tracing::info!(%key, "instance changed under the runner; reloading");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RunError::Conflict {
            key: key.to_owned(),
            retries: self.config.conflict_retries_max,
        })
    }

    /// Carries out a recorded step's effects. Every one is idempotent: commands have
    /// deterministic ids, book and registry records deterministic event ids.
    async fn perform(
        &mut self,
        key: &str,
        effects: &Effects,
    ) -> Result<Vec<CommandRejection>, RunError> {
        let mut rejections = Vec::new();
        let policy = self.policy();
        for command in &effects.commands {
            if let Some(r) = send_with_retries(self.sender.as_ref(), command, policy).await {
                rejections.push(r);
            }
        }
        for id in &effects.cancelled {
            self.book.cancelled(*id).await?;
        }
        for deadline in &effects.scheduled {
            self.book.schedule(deadline.clone()).await?;
        }
        if let Some(id) = effects.fired {
            self.book.fired(id).await?;
        }
        if effects.registered {
            self.register(key).await?;
        }
        Ok(rejections)
    }
}
