//! A given/when/then harness for sagas, shipped for users: it runs a saga's pure logic
//! through the same step planner as the runner, with no store and no I/O, so a test reads
//! `given(events).when(event).then_commands([...])`.

use std::collections::HashMap;

use eventum_core::{CommandEnvelope, RecordedEvent};
use uuid::Uuid;

use crate::config::SagaConfig;
use crate::instance::{Instance, StepLimits, plan_step};
use crate::records::{self, InstanceRecord};
use crate::saga::{CommandRejection, FiredDeadline, Saga, Status, Trigger};

/// An event as a store would have recorded it in `stream`, with a fresh id that is also
/// its correlation and causation id.
pub fn event(stream: &str, event_type: &str, data: serde_json::Value) -> RecordedEvent {
    let id = Uuid::now_v7();
    RecordedEvent {
        stream: stream.to_owned(),
        version: 0,
        position: 0,
        recorded_at_us: 0,
        id,
        event_type: event_type.to_owned(),
        data: serde_json::to_vec(&data)
            .expect("a JSON value serializes")
            .into(),
        metadata: Default::default(),
        correlation_id: id,
        causation_id: id,
    }
}

/// A saga under test: its instances live in memory only.
pub struct SagaTest<G: Saga> {
    saga: G,
    now_ms: i64,
    limits: StepLimits,
    instances: HashMap<String, Instance<G::State>>,
}

/// Starts a test of `saga` with `events` already handled.
pub fn given<G: Saga>(saga: G, events: impl IntoIterator<Item = RecordedEvent>) -> SagaTest<G> {
    SagaTest::new(saga).given(events)
}

impl<G: Saga> SagaTest<G> {
    pub fn new(saga: G) -> Self {
        let config = SagaConfig::default();
        Self {
            saga,
            now_ms: 0,
            limits: StepLimits {
                instance_steps_max: config.instance_steps_max,
                step_actions_max: config.step_actions_max,
            },
            instances: HashMap::new(),
        }
    }

    /// Sets the time steps are decided at (deadlines are due relative to it).
    pub fn at(mut self, now_ms: i64) -> Self {
        self.now_ms = now_ms;
        self
    }

    /// Handles `events` in order, as the runner would.
    pub fn given(mut self, events: impl IntoIterator<Item = RecordedEvent>) -> Self {
        for e in events {
            self.route(&e);
        }
        self
    }

    /// Handles `event` and returns what its step did.
    pub fn when(mut self, event: RecordedEvent) -> Outcome<G> {
        let (key, records) = self.route(&event);
        Outcome::new(self, key, records)
    }

    /// Fires the pending deadline `name` of instance `key`.
    pub fn when_deadline(mut self, key: &str, name: &str) -> Outcome<G> {
        let instance = self
            .instances
            .get(key)
            .unwrap_or_else(|| panic!("no instance {key:?}"));
        let entry = instance
            .pending
            .get(name)
            .unwrap_or_else(|| panic!("instance {key:?} has no pending deadline {name:?}"))
            .clone();
        self.now_ms = self.now_ms.max(entry.due_at_ms);
        let fired = FiredDeadline {
            deadline_id: entry.deadline_id,
            name: entry.name,
            due_at_ms: entry.due_at_ms,
            payload: entry.payload,
            correlation_id: entry.correlation_id,
        };
        let records = self.step(key, &Trigger::Deadline(&fired));
        Outcome::new(self, Some(key.to_owned()), records)
    }

    /// Reports that the last command of type `command_type` sent by `key` was refused.
    pub fn when_rejected(mut self, key: &str, command_type: &str, code: &str) -> Outcome<G> {
        let command = self
            .sent(key)
            .into_iter()
            .rev()
            .find(|c| c.command_type == command_type)
            .unwrap_or_else(|| panic!("instance {key:?} sent no {command_type}"));
        let rejection = CommandRejection {
            command_id: command.command_id,
            command_type: command.command_type,
            code: code.to_owned(),
            message: format!("{code} (test)"),
            correlation_id: command.correlation_id,
        };
        let records = self.step(key, &Trigger::CommandRejected(&rejection));
        Outcome::new(self, Some(key.to_owned()), records)
    }

    fn sent(&self, key: &str) -> Vec<CommandEnvelope> {
        self.instances
            .get(key)
            .map(|i| i.last_effects.commands.clone())
            .unwrap_or_default()
    }

    fn route(&mut self, event: &RecordedEvent) -> (Option<String>, Vec<InstanceRecord>) {
        if event.stream.starts_with('$') {
            return (None, Vec::new());
        }
        let Some(key) = self.saga.correlate(event) else {
            return (None, Vec::new());
        };
        let exists = self.instances.get(&key).is_some_and(|i| i.exists());
        if !exists && !self.saga.starts(event) {
            return (Some(key), Vec::new());
        }
        let records = self.step(&key, &Trigger::Event(event));
        (Some(key), records)
    }

    fn step(&mut self, key: &str, trigger: &Trigger<'_>) -> Vec<InstanceRecord> {
        let name = self.saga.name().to_owned();
        let instance = self.instances.entry(key.to_owned()).or_insert_with(|| {
            let stream = records::instance_stream(&name, key).expect("a valid correlation key");
            Instance::new(key.to_owned(), stream)
        });
        if instance.handled.contains(&trigger.id()) || instance.status.is_terminal() {
            return Vec::new();
        }
        assert_decide_agrees(&self.saga, &instance.state, trigger);
        let plan = plan_step(&self.saga, instance, trigger, self.now_ms, self.limits);
        let version = instance.version.map_or(0, |v| v + 1);
        // Fold back what the store would hand a loading runner: the step's one event.
        let recorded = RecordedEvent {
            stream: instance.stream.to_string(),
            version,
            position: 0,
            recorded_at_us: self.now_ms.saturating_mul(1_000),
            id: plan.event.id(),
            event_type: plan.event.event_type().to_owned(),
            data: plan.event.data().clone(),
            metadata: Default::default(),
            correlation_id: trigger.correlation_id(),
            causation_id: trigger.id(),
        };
        let records = InstanceRecord::decode_event(&recorded).expect("a step's event decodes");
        assert_eq!(
            records, plan.records,
            "a step's event holds its records in order"
        );
        for record in &records {
            instance
                .apply(record)
                .expect("records the planner made fold back");
        }
        instance.version = Some(version);
        records
    }
}

/// The runner calls [`Saga::decide`]; a saga that overrides it must decide what `handle`
/// and `evolve` would. Every step the harness takes checks that.
fn assert_decide_agrees<G: Saga>(saga: &G, state: &G::State, trigger: &Trigger<'_>) {
    let (actions, next) = saga.decide(state, trigger);
    let mut evolved = state.clone();
    saga.evolve(&mut evolved, trigger);
    let json = |s: &G::State| serde_json::to_value(s).expect("saga state serializes");
    assert_eq!(
        (actions, json(&next)),
        (saga.handle(state, trigger), json(&evolved)),
        "{}: decide disagrees with handle and evolve",
        saga.name()
    );
}

/// What one `when` did, with assertions that panic with a readable message.
pub struct Outcome<G: Saga> {
    test: SagaTest<G>,
    key: Option<String>,
    records: Vec<InstanceRecord>,
}

impl<G: Saga> Outcome<G> {
    fn new(test: SagaTest<G>, key: Option<String>, records: Vec<InstanceRecord>) -> Self {
        Self { test, key, records }
    }

    fn instance(&self) -> &Instance<G::State> {
        let key = self
            .key
            .as_ref()
            .expect("the event was not routed to any instance");
        self.test
            .instances
            .get(key)
            .unwrap_or_else(|| panic!("no instance {key:?}"))
    }

    /// The commands the step sent, with their ids and causation.
    pub fn commands(&self) -> Vec<CommandEnvelope> {
        self.records
            .iter()
            .filter_map(|r| match r {
                InstanceRecord::CommandSent { command, .. } => Some(command.clone()),
                _ => None,
            })
            .collect()
    }

    /// The records the step appended (empty when the trigger was ignored).
    pub fn records(&self) -> &[InstanceRecord] {
        &self.records
    }

    pub fn state(&self) -> &G::State {
        &self.instance().state
    }

    /// Asserts the step sent exactly these commands (type and payload), in order.
    pub fn then_commands<'a>(
        self,
        expected: impl IntoIterator<Item = (&'a str, serde_json::Value)>,
    ) -> Self {
        let actual: Vec<(String, serde_json::Value)> = self
            .commands()
            .into_iter()
            .map(|c| (c.command_type, c.payload))
            .collect();
        let expected: Vec<(String, serde_json::Value)> = expected
            .into_iter()
            .map(|(t, p)| (t.to_owned(), p))
            .collect();
        assert_eq!(actual, expected, "commands sent by the step");
        self
    }

    /// Asserts the step sent commands of exactly these types, in order.
    pub fn then_command_types<'a>(self, expected: impl IntoIterator<Item = &'a str>) -> Self {
        let actual: Vec<String> = self
            .commands()
            .into_iter()
            .map(|c| c.command_type)
            .collect();
        let expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        assert_eq!(actual, expected, "command types sent by the step");
        self
    }

    /// Asserts the instance's status after the step.
    pub fn then_status(self, expected: Status) -> Self {
        assert_eq!(self.instance().status, expected, "instance status");
        self
    }

    /// Asserts the instance's pending deadlines after the step: `(name, due_at_ms)`,
    /// in name order.
    pub fn then_deadlines<'a>(self, expected: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        let actual: Vec<(String, i64)> = self
            .instance()
            .pending
            .values()
            .map(|d| (d.name.clone(), d.due_at_ms))
            .collect();
        let mut expected: Vec<(String, i64)> = expected
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t))
            .collect();
        expected.sort();
        assert_eq!(actual, expected, "pending deadlines");
        self
    }

    /// Asserts the trigger was ignored (already handled, no instance, or finished).
    pub fn then_ignored(self) -> Self {
        assert!(
            self.records.is_empty(),
            "expected the trigger to be ignored, got {:?}",
            self.records
        );
        self
    }

    /// Continues the test from here.
    pub fn and(self) -> SagaTest<G> {
        self.test
    }
}
