//! One unit of a saga runner's work on one instance, run as its own task: load the
//! instance (or take it from the cache), record the step for the trigger with the exact
//! expected version, carry out the step's effects, and handle the rejections those cause.
//! The runner guarantees that at most one such task per instance runs at a time.

use std::collections::VecDeque;
use std::sync::Arc;

use eventum_core::{
    AppendError, CommandSender, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamName,
};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::SagaConfig;
use crate::deadlines::DeadlineBook;
use crate::dispatch::{RetryPolicy, send_with_retries};
use crate::error::RunError;
use crate::instance::{Effects, Instance, StepLimits, plan_step};
use crate::load;
use crate::records::{self, DeadlineEntry, InstanceRegistered, derived_id};
use crate::saga::{CommandRejection, FiredDeadline, Saga, Trigger};

/// What every instance task of one runner shares.
pub struct Context<G: Saga> {
    pub store: Arc<dyn EventStore>,
    pub sender: Arc<dyn CommandSender>,
    pub saga: G,
    pub config: SagaConfig,
    pub clock: Arc<dyn Clock>,
    pub book: DeadlineBook,
    pub registry: StreamName,
    /// This run of the runner (new at every start), stamped on every step event it
    /// records: a step this run recorded had its effects carried out before its instance
    /// could be cached, so reloading it after an eviction does not redo them.
    pub run_id: Uuid,
    /// An event carrying [`records::runner_stamp`] of `run_id`, built once: step
    /// events share its metadata bytes.
    pub step_stamp: NewEvent,
}

/// What [`Slot::checkout`] hands over: the instance, the rejections of the effects it
/// redid, and whether it redid any.
type CheckedOut<S> = (Instance<S>, Vec<CommandRejection>, bool);

/// A step's event with this run's stamp (its id stays the plan's, so a retried append is
/// still recognised).
fn stamped<G: Saga>(event: NewEvent, cx: &Context<G>) -> NewEvent {
    event.with_metadata_of(&cx.step_stamp)
}

/// A piece of work for one instance.
pub enum Work {
    Event {
        event: RecordedEvent,
        may_start: bool,
    },
    Fire(DeadlineEntry),
}

/// What a task hands back to the runner.
pub struct Outcome<S> {
    /// The instance as the task left it, for the cache (`None` when it was not loaded, or
    /// the task failed and the stream is the only truth).
    pub instance: Option<Instance<S>>,
    /// Registry records to append: the runner batches them (see `Runner::register`), and
    /// the checkpoint waits for them before passing the events that started the instances.
    pub registrations: Vec<NewEvent>,
    pub result: Result<(), RunError>,
}

/// A trigger the task owns while handling it.
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

/// Runs `work` for the instance `key`, starting from its cached copy if there is one.
pub async fn run<G: Saga>(
    cx: Arc<Context<G>>,
    key: String,
    cached: Option<Instance<G::State>>,
    work: Work,
) -> Outcome<G::State> {
    let mut slot = Slot {
        cx,
        key,
        instance: cached,
        registrations: Vec::new(),
    };
    let result = match work {
        Work::Event { event, may_start } => {
            slot.process(OwnedTrigger::Event(event), may_start).await
        }
        Work::Fire(entry) => slot.fire(entry).await,
    };
    Outcome {
        instance: if result.is_ok() { slot.instance } else { None },
        registrations: slot.registrations,
        result,
    }
}

/// One instance while a task owns it.
struct Slot<G: Saga> {
    cx: Arc<Context<G>>,
    key: String,
    instance: Option<Instance<G::State>>,
    registrations: Vec<NewEvent>,
}

impl<G: Saga> Slot<G> {
    fn policy(&self) -> RetryPolicy {
        let c = &self.cx.config;
        RetryPolicy {
            retries_max: c.send_retries_max,
            delay_ms: c.send_retry_delay_ms,
            delay_ms_max: c.send_retry_delay_ms_max,
        }
    }

    /// Handles `trigger` and every rejection its commands cause, in order.
    async fn process(&mut self, trigger: OwnedTrigger, may_start: bool) -> Result<(), RunError> {
        let rejections = self.step(&trigger, may_start).await?;
        self.chain(rejections).await
    }

    async fn chain(&mut self, rejections: Vec<CommandRejection>) -> Result<(), RunError> {
        let mut queue: VecDeque<_> = rejections.into();
        let mut chained = 0;
        while let Some(rejection) = queue.pop_front() {
            chained += 1;
            if chained > self.cx.config.chained_triggers_max {
                tracing::error!(key = %self.key, "too many chained command rejections; the rest wait for the instance's next load");
                break;
            }
            let more = self.step(&OwnedTrigger::Rejected(rejection), false).await?;
            queue.extend(more);
        }
        Ok(())
    }

    async fn fire(&mut self, entry: DeadlineEntry) -> Result<(), RunError> {
        let id = entry.deadline_id;
        let (instance, rejections, redone) = self.checkout().await?;
        let pending = instance.pending.values().any(|p| p.deadline_id == id);
        let handled = instance.handled.contains(&id);
        self.instance = Some(instance);
        self.chain(rejections).await?;
        if redone && pending {
            // Loading redid the instance's last effects, which may have appended an answer
            // that should come before this deadline: decide on the next round, after the
            // catch-up check.
            return Ok(());
        }
        if !pending {
            // Fired, cancelled or replaced already: only the book lagged behind.
            if handled {
                self.cx.book.fired(id).await?;
            } else {
                self.cx.book.cancelled(id).await?;
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
        self.process(OwnedTrigger::Deadline(fired), false).await
    }

    /// Takes the instance in hand, or loads it. A loaded instance's last step gets its
    /// effects carried out again when another run recorded it (a crash may have cut them
    /// short); a step of this run had them carried out before the instance was cached, so
    /// an eviction costs a read and nothing more (a failure ends the run, and the next
    /// run redoes them). Also says whether effects were redone.
    async fn checkout(&mut self) -> Result<CheckedOut<G::State>, RunError> {
        if let Some(instance) = self.instance.take() {
            return Ok((instance, Vec::new(), false));
        }
        let instance = self.load().await?;
        let redo = instance.exists() && instance.written_by != Some(self.cx.run_id);
        let rejections = if redo {
            let effects = instance.last_effects.clone();
            self.perform(&effects).await?
        } else {
            Vec::new()
        };
        Ok((instance, rejections, redo))
    }

    async fn load(&self) -> Result<Instance<G::State>, RunError> {
        let key = &self.key;
        let stream = records::instance_stream(self.cx.saga.name(), key)
            .map_err(|e| RunError::Corrupt(format!("instance key {key:?}: {e}")))?;
        let mut instance = Instance::new(key.clone(), stream.clone());
        load::fold_stream(
            self.cx.store.as_ref(),
            &mut instance,
            self.cx.config.read_batch_events,
        )
        .await?;
        Ok(instance)
    }

    /// Records one step for `trigger` (reloading on a conflicting write) and carries out
    /// its effects; returns the rejections of the commands it sent.
    async fn step(
        &mut self,
        trigger: &OwnedTrigger,
        may_start: bool,
    ) -> Result<Vec<CommandRejection>, RunError> {
        let trigger = trigger.as_trigger();
        let cx = self.cx.clone();
        let config = &cx.config;
        let mut rejections = Vec::new();
        for _ in 0..=config.conflict_retries_max {
            let (mut instance, earlier, _) = self.checkout().await?;
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
                self.instance = Some(instance);
                if restart {
                    self.register();
                }
                return Ok(rejections);
            }
            let plan = plan_step(
                &self.cx.saga,
                &instance,
                &trigger,
                self.cx.clock.now_ms(),
                StepLimits {
                    instance_steps_max: config.instance_steps_max,
                    step_actions_max: config.step_actions_max,
                },
            );
            let expected = instance
                .version
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self
                .cx
                .store
                .append(&instance.stream, expected, vec![stamped(plan.event, &cx)])
                .await
            {
                Ok(result) => {
                    for record in plan.records {
                        instance.apply_owned(record).map_err(RunError::Corrupt)?;
                    }
                    instance.version = Some(result.next_expected_version);
                    // Lent out while performed, not copied: the commands' payloads can be
                    // large, and the cached instance gets them back.
                    let effects = std::mem::take(&mut instance.last_effects);
                    tracing::debug!(step = plan.step, status = %instance.status, "step recorded");
                    self.instance = Some(instance);
                    let performed = self.perform(&effects).await;
                    if let Some(instance) = self.instance.as_mut() {
                        instance.last_effects = effects;
                    }
                    rejections.extend(performed?);
                    return Ok(rejections);
                }
                Err(AppendError::WrongExpectedVersion { .. }) => {
                    // Another runner moved the instance on: forget our copy and decide
                    // again on what the stream says.
                    tracing::info!(key = %self.key, "instance changed under the runner; reloading");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RunError::Conflict {
            key: self.key.clone(),
            retries: config.conflict_retries_max,
        })
    }

    /// Carries out a recorded step's effects. Every one is idempotent: commands have
    /// deterministic ids, book and registry records deterministic event ids.
    async fn perform(&mut self, effects: &Effects) -> Result<Vec<CommandRejection>, RunError> {
        let mut rejections = Vec::new();
        let policy = self.policy();
        for command in &effects.commands {
            if let Some(r) = send_with_retries(self.cx.sender.as_ref(), command, policy).await {
                rejections.push(r);
            }
        }
        for id in &effects.cancelled {
            self.cx.book.cancelled(*id).await?;
        }
        for deadline in &effects.scheduled {
            self.cx.book.schedule(deadline.clone()).await?;
        }
        if let Some(id) = effects.fired {
            self.cx.book.fired(id).await?;
        }
        if effects.registered {
            self.register();
        }
        Ok(rejections)
    }

    /// Records the instance in the registry; the runner appends the record (see
    /// [`Outcome::registrations`]).
    fn register(&mut self) {
        let record = InstanceRegistered {
            key: self.key.clone(),
        };
        let event = NewEvent::new("InstanceRegistered", &record)
            .expect("a registry record serializes")
            .with_id(derived_id(&["registry", self.cx.saga.name(), &self.key]));
        self.registrations.push(event);
    }
}
