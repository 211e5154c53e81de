//! One saga instance in memory, folded from its stream, and the pure step planner shared
//! by the runner and the test harness: given an instance and a trigger it decides the
//! records of the next step (with deterministic ids) without any I/O.

use std::collections::{BTreeMap, HashSet};

use eventum_core::{CommandEnvelope, NewEvent, StreamName};
use uuid::Uuid;

use crate::records::{DeadlineEntry, InstanceRecord, derived_id};
use crate::saga::{Action, Saga, Status, Trigger};

/// What a recorded step still has to do outside its instance stream. After a crash the
/// last step's effects are done again (all of them are idempotent), since the runner
/// cannot know how far it got.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    pub commands: Vec<CommandEnvelope>,
    pub scheduled: Vec<DeadlineEntry>,
    pub cancelled: Vec<Uuid>,
    /// The deadline this step handled, to mark fired in the deadline book.
    pub fired: Option<Uuid>,
    /// This step started the instance: register it for listing.
    pub registered: bool,
}

/// An instance as its stream says it is.
#[derive(Clone, Debug)]
pub struct Instance<S> {
    pub key: String,
    pub stream: StreamName,
    /// The stream's last version; `None` before the first step.
    pub version: Option<u64>,
    /// Steps recorded so far (the next step's number).
    pub steps: u64,
    pub state: S,
    pub status: Status,
    pub reason: Option<String>,
    /// Ids of every trigger handled: events, deadlines, rejected commands.
    pub handled: HashSet<Uuid>,
    /// Deadlines scheduled and neither fired nor cancelled, by name.
    pub pending: BTreeMap<String, DeadlineEntry>,
    /// The effects of the last step.
    pub last_effects: Effects,
    last_effects_step: Option<u64>,
}

impl<S: Default + serde::de::DeserializeOwned> Instance<S> {
    /// An instance that has no stream yet.
    pub fn new(key: String, stream: StreamName) -> Self {
        Self {
            key,
            stream,
            version: None,
            steps: 0,
            state: S::default(),
            status: Status::Running,
            reason: None,
            handled: HashSet::new(),
            pending: BTreeMap::new(),
            last_effects: Effects::default(),
            last_effects_step: None,
        }
    }

    /// Whether the instance has been started.
    pub fn exists(&self) -> bool {
        self.version.is_some()
    }

    /// Folds one record into the instance (the stream's version is set by the caller).
    pub fn apply(&mut self, record: &InstanceRecord) -> Result<(), String> {
        match record {
            InstanceRecord::SagaStarted { .. } => {
                self.status = Status::Running;
                self.last_effects = Effects {
                    registered: true,
                    ..Effects::default()
                };
                self.last_effects_step = Some(0);
            }
            InstanceRecord::EventHandled {
                step,
                event_id,
                state,
                ..
            } => self.apply_trigger(*step, *event_id, state)?,
            InstanceRecord::CommandRejected {
                step,
                command_id,
                state,
                ..
            } => self.apply_trigger(*step, *command_id, state)?,
            InstanceRecord::DeadlineFired {
                step,
                deadline_id,
                name,
                state,
            } => {
                self.apply_trigger(*step, *deadline_id, state)?;
                self.last_effects.fired = Some(*deadline_id);
                if self
                    .pending
                    .get(name)
                    .is_some_and(|d| d.deadline_id == *deadline_id)
                {
                    self.pending.remove(name);
                }
            }
            InstanceRecord::CommandSent { command, .. } => {
                self.last_effects.commands.push(command.clone());
            }
            InstanceRecord::DeadlineScheduled { deadline, .. } => {
                self.last_effects.scheduled.push(deadline.clone());
                self.pending.insert(deadline.name.clone(), deadline.clone());
            }
            InstanceRecord::DeadlineCancelled {
                deadline_id, name, ..
            } => {
                self.last_effects.cancelled.push(*deadline_id);
                if self
                    .pending
                    .get(name)
                    .is_some_and(|d| d.deadline_id == *deadline_id)
                {
                    self.pending.remove(name);
                }
            }
            InstanceRecord::StatusChanged { status, reason, .. } => {
                self.status = *status;
                self.reason.clone_from(reason);
            }
        }
        Ok(())
    }

    fn apply_trigger(
        &mut self,
        step: u64,
        id: Uuid,
        state: &serde_json::Value,
    ) -> Result<(), String> {
        if self.last_effects_step != Some(step) {
            self.last_effects = Effects::default();
            self.last_effects_step = Some(step);
        }
        self.steps = step + 1;
        self.handled.insert(id);
        self.state = serde_json::from_value(state.clone())
            .map_err(|e| format!("instance {} step {step}: state: {e}", self.key))?;
        Ok(())
    }
}

/// The bounds a step is planned within.
#[derive(Clone, Copy, Debug)]
pub struct StepLimits {
    pub instance_steps_max: u64,
    pub step_actions_max: usize,
}

/// A decided step: the records to append atomically, as events with deterministic ids.
#[derive(Clone, Debug)]
pub struct StepPlan {
    pub step: u64,
    pub records: Vec<InstanceRecord>,
    pub events: Vec<NewEvent>,
}

/// Decides the next step of `instance` for `trigger` at time `now_ms`. Pure: the same
/// inputs give the same records and ids.
pub fn plan_step<G: Saga>(
    saga: &G,
    instance: &Instance<G::State>,
    trigger: &Trigger<'_>,
    now_ms: i64,
    limits: StepLimits,
) -> StepPlan {
    let step = instance.steps;
    let stream = instance.stream.as_str();
    let step_text = step.to_string();
    let mut records = Vec::new();
    if !instance.exists() {
        records.push(InstanceRecord::SagaStarted {
            saga: saga.name().to_owned(),
            key: instance.key.clone(),
        });
    }
    let mut actions = saga.handle(&instance.state, trigger);
    let mut state = instance.state.clone();
    saga.evolve(&mut state, trigger);
    let state = serde_json::to_value(&state).expect("saga state serializes to JSON");
    if step + 1 >= limits.instance_steps_max {
        actions = vec![Action::Fail {
            reason: format!("the instance reached {} steps", limits.instance_steps_max),
        }];
    } else if actions.len() > limits.step_actions_max {
        actions = vec![Action::Fail {
            reason: format!(
                "a step emitted {} actions; the limit is {}",
                actions.len(),
                limits.step_actions_max
            ),
        }];
    }
    records.push(match trigger {
        Trigger::Event(e) => InstanceRecord::EventHandled {
            step,
            event_id: e.id,
            event_type: e.event_type.clone(),
            stream: e.stream.clone(),
            position: e.position,
            state,
        },
        Trigger::Deadline(d) => InstanceRecord::DeadlineFired {
            step,
            deadline_id: d.deadline_id,
            name: d.name.clone(),
            state,
        },
        Trigger::CommandRejected(r) => InstanceRecord::CommandRejected {
            step,
            command_id: r.command_id,
            command_type: r.command_type.clone(),
            code: r.code.clone(),
            message: r.message.clone(),
            state,
        },
    });

    let mut status = instance.status;
    let mut pending = instance.pending.clone();
    if let Trigger::Deadline(d) = trigger {
        pending.retain(|_, p| p.deadline_id != d.deadline_id);
    }
    let cancel = |entry: DeadlineEntry, records: &mut Vec<InstanceRecord>| {
        records.push(InstanceRecord::DeadlineCancelled {
            step,
            deadline_id: entry.deadline_id,
            name: entry.name,
        });
    };
    for (i, action) in actions.into_iter().enumerate() {
        if status.is_terminal() {
            break;
        }
        let index = i.to_string();
        match action {
            Action::Send(spec) => records.push(InstanceRecord::CommandSent {
                step,
                command: CommandEnvelope {
                    command_id: derived_id(&[stream, &step_text, "command", &index]),
                    command_type: spec.command_type,
                    payload: spec.payload,
                    correlation_id: trigger.correlation_id(),
                    causation_id: trigger.id(),
                },
            }),
            Action::Schedule {
                name,
                after_ms,
                payload,
            } => {
                if let Some(old) = pending.remove(&name) {
                    cancel(old, &mut records);
                }
                let deadline = DeadlineEntry {
                    deadline_id: derived_id(&[stream, &step_text, "deadline", &index]),
                    instance_key: instance.key.clone(),
                    name: name.clone(),
                    due_at_ms: now_ms.saturating_add(after_ms.min(i64::MAX as u64) as i64),
                    payload,
                    correlation_id: trigger.correlation_id(),
                };
                pending.insert(name, deadline.clone());
                records.push(InstanceRecord::DeadlineScheduled { step, deadline });
            }
            Action::Cancel { name } => {
                if let Some(old) = pending.remove(&name) {
                    cancel(old, &mut records);
                }
            }
            Action::Compensate { reason } => {
                if status == Status::Running {
                    status = Status::Compensating;
                    records.push(InstanceRecord::StatusChanged {
                        step,
                        status,
                        reason: Some(reason),
                    });
                }
            }
            Action::Complete | Action::Compensated { .. } | Action::Fail { .. } => {
                let (new_status, reason) = match action {
                    Action::Complete => (Status::Completed, None),
                    Action::Compensated { reason } => (Status::Compensated, Some(reason)),
                    Action::Fail { reason } => (Status::Failed, Some(reason)),
                    _ => unreachable!("matched above"),
                };
                status = new_status;
                // A finished instance leaves no deadline behind.
                for (_, old) in std::mem::take(&mut pending) {
                    cancel(old, &mut records);
                }
                records.push(InstanceRecord::StatusChanged {
                    step,
                    status,
                    reason,
                });
            }
        }
    }
    let events = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.to_event(
                derived_id(&[stream, &step_text, "record", &i.to_string()]),
                trigger.correlation_id(),
                trigger.id(),
            )
        })
        .collect();
    StepPlan {
        step,
        records,
        events,
    }
}
