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
    /// The id of the trigger that started the instance.
    pub start_trigger: Option<Uuid>,
    /// The effects of the last step.
    pub last_effects: Effects,
    last_effects_step: Option<u64>,
    /// The run of a saga runner that recorded the stream's last event, as loaded
    /// (see [`crate::records::runner_of`]); `None` for a fresh instance or an event
    /// without the stamp.
    pub written_by: Option<Uuid>,
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
            start_trigger: None,
            last_effects: Effects::default(),
            last_effects_step: None,
            written_by: None,
        }
    }

    /// Whether the instance has been started.
    pub fn exists(&self) -> bool {
        self.version.is_some()
    }

    /// [`Self::apply`] taking the record: a sent command (its payload can be large) moves
    /// into the effects instead of being copied.
    pub fn apply_owned(&mut self, record: InstanceRecord) -> Result<(), String> {
        match record {
            InstanceRecord::CommandSent { command, .. } => {
                self.last_effects.commands.push(command);
                Ok(())
            }
            other => self.apply(&other),
        }
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
        if step == 0 {
            self.start_trigger = Some(id);
        }
        self.handled.insert(id);
        // From the borrowed tree: no copy of it first.
        self.state = <S as serde::Deserialize>::deserialize(state)
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

/// A decided step: its records, and the one event (with a deterministic id) that appends
/// them atomically.
#[derive(Clone, Debug)]
pub struct StepPlan {
    pub step: u64,
    pub records: Vec<InstanceRecord>,
    pub event: NewEvent,
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
    let (mut actions, state) = saga.decide(&instance.state, trigger);
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
    let event = InstanceRecord::step_event(
        &records,
        derived_id(&[stream, &step_text, "step"]),
        trigger.correlation_id(),
        trigger.id(),
    );
    StepPlan {
        step,
        records,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::FiredDeadline;
    use eventum_core::{RecordedEvent, SubscriptionTarget};

    /// Does whatever the event's type names.
    struct Scripted;

    impl Saga for Scripted {
        type State = u32;
        fn name(&self) -> &str {
            "scripted"
        }
        fn source(&self) -> SubscriptionTarget {
            SubscriptionTarget::All
        }
        fn correlate(&self, _: &RecordedEvent) -> Option<String> {
            Some("k".into())
        }
        fn starts(&self, _: &RecordedEvent) -> bool {
            true
        }
        fn handle(&self, _: &u32, trigger: &Trigger<'_>) -> Vec<Action> {
            let schedule = |name: &str, after_ms| Action::Schedule {
                name: name.into(),
                after_ms,
                payload: serde_json::Value::Null,
            };
            match trigger.event_type().unwrap_or("deadline") {
                "two-timers" => vec![schedule("a", 10), schedule("b", 20)],
                "reschedule-a" => vec![schedule("a", 50)],
                "finish" => vec![
                    Action::send("C", serde_json::json!(1)),
                    Action::Complete,
                    Action::send("Never", serde_json::json!(2)),
                ],
                "many" => (0..5).map(|i| Action::send("C", i.into())).collect(),
                _ => Vec::new(),
            }
        }
        fn evolve(&self, state: &mut u32, _: &Trigger<'_>) {
            *state += 1;
        }
    }

    const LIMITS: StepLimits = StepLimits {
        instance_steps_max: 100,
        step_actions_max: 4,
    };

    fn run(instance: &mut Instance<u32>, event_type: &str, now_ms: i64) -> StepPlan {
        let e = crate::testing::event("x-1", event_type, serde_json::json!({}));
        let plan = plan_step(&Scripted, instance, &Trigger::Event(&e), now_ms, LIMITS);
        for r in &plan.records {
            instance.apply(r).unwrap();
        }
        instance.version = Some(instance.version.map_or(0, |v| v + 1));
        plan
    }

    fn fresh() -> Instance<u32> {
        Instance::new(
            "k".into(),
            crate::records::instance_stream("scripted", "k").unwrap(),
        )
    }

    #[test]
    fn the_same_inputs_plan_the_same_ids() {
        let e = crate::testing::event("x-1", "finish", serde_json::json!({}));
        let a = plan_step(&Scripted, &fresh(), &Trigger::Event(&e), 0, LIMITS);
        let b = plan_step(&Scripted, &fresh(), &Trigger::Event(&e), 0, LIMITS);
        assert_eq!(a.event.id(), b.event.id());
        assert_eq!(a.event.data(), b.event.data());
        assert_eq!(a.records, b.records);
    }

    #[test]
    fn scheduling_a_pending_name_replaces_it_and_finishing_cancels_the_rest() {
        let mut i = fresh();
        run(&mut i, "two-timers", 1_000);
        assert_eq!(i.pending["a"].due_at_ms, 1_010);
        let old_a = i.pending["a"].deadline_id;
        let plan = run(&mut i, "reschedule-a", 2_000);
        assert!(plan.records.iter().any(|r| matches!(r,
            InstanceRecord::DeadlineCancelled { deadline_id, .. } if *deadline_id == old_a)));
        assert_eq!(i.pending["a"].due_at_ms, 2_050);
        assert_eq!(i.pending.len(), 2);

        // Complete stops the step: the action after it is dropped; pending deadlines go.
        let plan = run(&mut i, "finish", 3_000);
        assert_eq!(i.status, Status::Completed);
        assert!(i.pending.is_empty());
        let sent: Vec<_> = plan
            .records
            .iter()
            .filter(|r| matches!(r, InstanceRecord::CommandSent { .. }))
            .collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(i.last_effects.cancelled.len(), 2);
        assert_eq!(i.state, 3, "evolved once per step");
    }

    #[test]
    fn a_fired_deadline_is_no_longer_pending() {
        let mut i = fresh();
        run(&mut i, "two-timers", 0);
        let d = i.pending["b"].clone();
        let fired = FiredDeadline {
            deadline_id: d.deadline_id,
            name: d.name,
            due_at_ms: d.due_at_ms,
            payload: d.payload,
            correlation_id: d.correlation_id,
        };
        let plan = plan_step(&Scripted, &i, &Trigger::Deadline(&fired), 20, LIMITS);
        for r in &plan.records {
            i.apply(r).unwrap();
        }
        assert!(i.handled.contains(&fired.deadline_id));
        assert_eq!(i.pending.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(i.last_effects.fired, Some(fired.deadline_id));
    }

    #[test]
    fn too_many_actions_or_steps_fail_the_instance() {
        let mut i = fresh();
        run(&mut i, "many", 0);
        assert_eq!(i.status, Status::Failed);
        assert!(i.reason.as_deref().unwrap().contains("5 actions"));

        let mut i = fresh();
        let tight = StepLimits {
            instance_steps_max: 2,
            step_actions_max: 4,
        };
        let e = crate::testing::event("x-1", "noop", serde_json::json!({}));
        let plan = plan_step(&Scripted, &i, &Trigger::Event(&e), 0, tight);
        for r in &plan.records {
            i.apply(r).unwrap();
        }
        i.version = Some(0);
        assert_eq!(i.status, Status::Running);
        let e = crate::testing::event("x-1", "noop", serde_json::json!({}));
        let plan = plan_step(&Scripted, &i, &Trigger::Event(&e), 0, tight);
        for r in &plan.records {
            i.apply(r).unwrap();
        }
        assert_eq!(i.status, Status::Failed);
    }
}
