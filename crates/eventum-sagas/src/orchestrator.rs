//! A declarative orchestrator: a saga made of steps, each an action command confirmed or
//! refused by events, with an optional compensation command. When a step fails (failure
//! event, rejected command or timeout), the compensations of the completed steps run in
//! reverse order; a compensation that fails is retried a bounded number of times, then
//! the instance is `failed` with the reason.

use eventum_core::{RecordedEvent, SubscriptionTarget};
use serde::{Deserialize, Serialize};

use crate::saga::{Action, Saga, Trigger};

/// The deadline name of the step (or compensation) in flight.
pub const TIMEOUT_DEADLINE: &str = "timeout";

/// One step of an [`Orchestrator`].
#[derive(Clone, Debug, Default)]
pub struct StepDef {
    pub name: String,
    /// The command that does the step.
    pub command: String,
    /// Event types that confirm the step.
    pub succeeded_on: Vec<String>,
    /// Event types that report the step failed.
    pub failed_on: Vec<String>,
    /// The command that undoes the step, if it needs undoing.
    pub compensation: Option<String>,
    /// Event types that confirm the compensation.
    pub compensated_on: Vec<String>,
    /// Event types that report the compensation failed (it is retried).
    pub compensation_failed_on: Vec<String>,
    /// How long the step (or one compensation attempt) may take before it counts as failed.
    pub timeout_ms: Option<u64>,
}

impl StepDef {
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            command: command.into(),
            ..Self::default()
        }
    }
    pub fn succeeded_on(mut self, event_type: impl Into<String>) -> Self {
        self.succeeded_on.push(event_type.into());
        self
    }
    pub fn failed_on(mut self, event_type: impl Into<String>) -> Self {
        self.failed_on.push(event_type.into());
        self
    }
    pub fn compensate_with(
        mut self,
        command: impl Into<String>,
        confirmed_by: impl Into<String>,
    ) -> Self {
        self.compensation = Some(command.into());
        self.compensated_on.push(confirmed_by.into());
        self
    }
    pub fn compensation_failed_on(mut self, event_type: impl Into<String>) -> Self {
        self.compensation_failed_on.push(event_type.into());
        self
    }
    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }
}

/// The orchestration of `steps`, started by `start_event`, routed by the JSON field
/// `key_field` of each event's data. Commands carry the start event's data with an
/// `attempt` number added.
#[derive(Clone, Debug)]
pub struct Orchestrator {
    pub name: String,
    pub source: SubscriptionTarget,
    pub start_event: String,
    pub key_field: String,
    pub steps: Vec<StepDef>,
    /// Attempts of a failing compensation after the first. Default 3.
    pub compensation_retries_max: u32,
}

impl Orchestrator {
    pub fn new(
        name: impl Into<String>,
        source: SubscriptionTarget,
        start_event: impl Into<String>,
        key_field: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            source,
            start_event: start_event.into(),
            key_field: key_field.into(),
            steps: Vec::new(),
            compensation_retries_max: 3,
        }
    }

    pub fn step(mut self, step: StepDef) -> Self {
        self.steps.push(step);
        self
    }

    pub fn compensation_retries_max(mut self, retries: u32) -> Self {
        self.compensation_retries_max = retries;
        self
    }
}

/// Where an orchestration is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    #[default]
    NotStarted,
    /// Step `step` is in flight.
    Running {
        step: usize,
    },
    /// The compensation of step `step` is in flight (attempt `attempt`, 0-based).
    Compensating {
        step: usize,
        attempt: u32,
        reason: String,
    },
    Done,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorState {
    /// The start event's data, the base of every command's payload.
    pub data: serde_json::Value,
    pub phase: Phase,
}

impl Orchestrator {
    fn payload(&self, data: &serde_json::Value, attempt: u32) -> serde_json::Value {
        let mut payload = data.clone();
        if let serde_json::Value::Object(map) = &mut payload {
            map.insert("attempt".into(), attempt.into());
        }
        payload
    }

    fn send_step(&self, data: &serde_json::Value, step: usize, actions: &mut Vec<Action>) {
        let def = &self.steps[step];
        actions.push(Action::send(def.command.clone(), self.payload(data, 0)));
        if let Some(after_ms) = def.timeout_ms {
            actions.push(timeout(after_ms));
        }
    }

    /// Compensates the completed steps before `failed_step`, latest first.
    fn start_compensation(
        &self,
        data: &serde_json::Value,
        failed_step: usize,
        reason: String,
        actions: &mut Vec<Action>,
    ) -> Phase {
        actions.push(Action::Cancel {
            name: TIMEOUT_DEADLINE.into(),
        });
        match self.previous_compensable(failed_step) {
            Some(step) => {
                actions.push(Action::Compensate {
                    reason: reason.clone(),
                });
                self.send_compensation(data, step, 0, actions);
                Phase::Compensating {
                    step,
                    attempt: 0,
                    reason,
                }
            }
            None => {
                actions.push(Action::Compensated { reason });
                Phase::Done
            }
        }
    }

    fn previous_compensable(&self, before: usize) -> Option<usize> {
        (0..before)
            .rev()
            .find(|i| self.steps[*i].compensation.is_some())
    }

    fn send_compensation(
        &self,
        data: &serde_json::Value,
        step: usize,
        attempt: u32,
        actions: &mut Vec<Action>,
    ) {
        let def = &self.steps[step];
        let command = def.compensation.clone().expect("only compensable steps");
        actions.push(Action::send(command, self.payload(data, attempt)));
        if let Some(after_ms) = def.timeout_ms {
            actions.push(timeout(after_ms));
        }
    }

    /// The decision for one trigger: the next phase and the actions.
    pub fn decide(
        &self,
        state: &OrchestratorState,
        trigger: &Trigger<'_>,
    ) -> (OrchestratorState, Vec<Action>) {
        let mut actions = Vec::new();
        let mut next = state.clone();
        match &state.phase {
            Phase::NotStarted => {
                if let Trigger::Event(e) = trigger
                    && e.event_type == self.start_event
                {
                    next.data = serde_json::from_slice(&e.data).unwrap_or_default();
                    if self.steps.is_empty() {
                        actions.push(Action::Complete);
                        next.phase = Phase::Done;
                    } else {
                        self.send_step(&next.data, 0, &mut actions);
                        next.phase = Phase::Running { step: 0 };
                    }
                }
            }
            Phase::Running { step } => {
                let def = &self.steps[*step];
                let failure = match trigger {
                    Trigger::Event(e) if def.succeeded_on.contains(&e.event_type) => {
                        if def.timeout_ms.is_some() {
                            actions.push(Action::Cancel {
                                name: TIMEOUT_DEADLINE.into(),
                            });
                        }
                        if step + 1 < self.steps.len() {
                            self.send_step(&state.data, step + 1, &mut actions);
                            next.phase = Phase::Running { step: step + 1 };
                        } else {
                            actions.push(Action::Complete);
                            next.phase = Phase::Done;
                        }
                        None
                    }
                    Trigger::Event(e) if def.failed_on.contains(&e.event_type) => {
                        Some(format!("step {} failed: {}", def.name, e.event_type))
                    }
                    Trigger::CommandRejected(r) if r.command_type == def.command => Some(format!(
                        "step {} rejected: {}: {}",
                        def.name, r.code, r.message
                    )),
                    Trigger::Deadline(d) if d.name == TIMEOUT_DEADLINE => {
                        Some(format!("step {} timed out", def.name))
                    }
                    _ => None,
                };
                if let Some(reason) = failure {
                    next.phase = self.start_compensation(&state.data, *step, reason, &mut actions);
                }
            }
            Phase::Compensating {
                step,
                attempt,
                reason,
            } => {
                let def = &self.steps[*step];
                let compensation = def.compensation.as_deref().unwrap_or_default();
                let failure = match trigger {
                    Trigger::Event(e) if def.compensated_on.contains(&e.event_type) => {
                        if def.timeout_ms.is_some() {
                            actions.push(Action::Cancel {
                                name: TIMEOUT_DEADLINE.into(),
                            });
                        }
                        match self.previous_compensable(*step) {
                            Some(prev) => {
                                self.send_compensation(&state.data, prev, 0, &mut actions);
                                next.phase = Phase::Compensating {
                                    step: prev,
                                    attempt: 0,
                                    reason: reason.clone(),
                                };
                            }
                            None => {
                                actions.push(Action::Compensated {
                                    reason: reason.clone(),
                                });
                                next.phase = Phase::Done;
                            }
                        }
                        None
                    }
                    Trigger::Event(e) if def.compensation_failed_on.contains(&e.event_type) => {
                        Some(e.event_type.clone())
                    }
                    Trigger::CommandRejected(r) if r.command_type == compensation => {
                        Some(format!("{}: {}", r.code, r.message))
                    }
                    Trigger::Deadline(d) if d.name == TIMEOUT_DEADLINE => {
                        Some("timed out".to_owned())
                    }
                    _ => None,
                };
                if let Some(why) = failure {
                    if *attempt < self.compensation_retries_max {
                        let attempt = attempt + 1;
                        self.send_compensation(&state.data, *step, attempt, &mut actions);
                        next.phase = Phase::Compensating {
                            step: *step,
                            attempt,
                            reason: reason.clone(),
                        };
                    } else {
                        actions.push(Action::Fail {
                            reason: format!(
                                "compensation {} of step {} failed {} times (last: {why}); compensating for: {reason}",
                                compensation,
                                def.name,
                                attempt + 1
                            ),
                        });
                        next.phase = Phase::Done;
                    }
                }
            }
            Phase::Done => {}
        }
        (next, actions)
    }
}

impl Orchestrator {
    /// Whether some step (or the start) reacts to `event_type`.
    fn mentions(&self, event_type: &str) -> bool {
        event_type == self.start_event
            || self.steps.iter().any(|s| {
                [
                    &s.succeeded_on,
                    &s.failed_on,
                    &s.compensated_on,
                    &s.compensation_failed_on,
                ]
                .iter()
                .any(|types| types.iter().any(|t| t == event_type))
            })
    }
}

fn timeout(after_ms: u64) -> Action {
    Action::Schedule {
        name: TIMEOUT_DEADLINE.into(),
        after_ms,
        payload: serde_json::Value::Null,
    }
}

impl Saga for Orchestrator {
    type State = OrchestratorState;

    fn name(&self) -> &str {
        &self.name
    }

    fn source(&self) -> SubscriptionTarget {
        self.source.clone()
    }

    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        // Events no step mentions are not routed, so they cost no step record.
        if !self.mentions(&event.event_type) {
            return None;
        }
        let data: serde_json::Value = serde_json::from_slice(&event.data).ok()?;
        match data.get(&self.key_field)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn starts(&self, event: &RecordedEvent) -> bool {
        event.event_type == self.start_event
    }

    fn handle(&self, state: &Self::State, trigger: &Trigger<'_>) -> Vec<Action> {
        self.decide(state, trigger).1
    }

    fn evolve(&self, state: &mut Self::State, trigger: &Trigger<'_>) {
        *state = self.decide(state, trigger).0;
    }
}
