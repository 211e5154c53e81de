//! What a saga writes to the log: the names of its system streams, the records of an
//! instance stream, and the deterministic ids (UUID v5) of records, commands and deadlines,
//! which make every retried write and every re-sent command recognisable.

use eventum_core::{CommandEnvelope, InvalidInput, NewEvent, RecordedEvent, StreamName};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::saga::Status;

/// The namespace of every id this crate derives.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6576_656e_7475_6d2d_7361_6761_7300_0001);

/// A UUID v5 of `parts`, joined by `/`.
pub fn derived_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&ID_NAMESPACE, parts.join("/").as_bytes())
}

/// The stream of one instance: `$saga-{saga}-{key}`.
pub fn instance_stream(saga: &str, key: &str) -> Result<StreamName, InvalidInput> {
    StreamName::system(format!("$saga-{saga}-{key}"))
}

/// The saga's instance registry, one `InstanceRegistered` per instance.
pub fn registry_stream(saga: &str) -> Result<StreamName, InvalidInput> {
    StreamName::system(format!("$saga-instances-{saga}"))
}

/// The saga's deadline book: scheduled, fired and cancelled records.
pub fn deadlines_stream(saga: &str) -> Result<StreamName, InvalidInput> {
    StreamName::system(format!("$saga-deadlines-{saga}"))
}

/// Where a runner's subscription has got to.
pub fn checkpoint_stream(kind: &str, name: &str) -> Result<StreamName, InvalidInput> {
    StreamName::system(format!("${kind}-checkpoint-{name}"))
}

/// One record of an instance stream. A step is one atomic append: the trigger record
/// (`Started` first for the first step), then the commands, deadline changes and status
/// change it decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum InstanceRecord {
    SagaStarted {
        saga: String,
        key: String,
    },
    EventHandled {
        step: u64,
        event_id: Uuid,
        event_type: String,
        stream: String,
        position: u64,
        state: serde_json::Value,
    },
    DeadlineFired {
        step: u64,
        deadline_id: Uuid,
        name: String,
        state: serde_json::Value,
    },
    CommandRejected {
        step: u64,
        command_id: Uuid,
        command_type: String,
        code: String,
        message: String,
        state: serde_json::Value,
    },
    CommandSent {
        step: u64,
        command: CommandEnvelope,
    },
    DeadlineScheduled {
        step: u64,
        deadline: DeadlineEntry,
    },
    DeadlineCancelled {
        step: u64,
        deadline_id: Uuid,
        name: String,
    },
    StatusChanged {
        step: u64,
        status: Status,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl InstanceRecord {
    /// The event type it is stored under.
    pub fn type_name(&self) -> &'static str {
        match self {
            InstanceRecord::SagaStarted { .. } => "SagaStarted",
            InstanceRecord::EventHandled { .. } => "EventHandled",
            InstanceRecord::DeadlineFired { .. } => "DeadlineFired",
            InstanceRecord::CommandRejected { .. } => "CommandRejected",
            InstanceRecord::CommandSent { .. } => "CommandSent",
            InstanceRecord::DeadlineScheduled { .. } => "DeadlineScheduled",
            InstanceRecord::DeadlineCancelled { .. } => "DeadlineCancelled",
            InstanceRecord::StatusChanged { .. } => "StatusChanged",
        }
    }

    /// Encodes as an event with id `id`, stamped with the step's correlation.
    pub fn to_event(&self, id: Uuid, correlation_id: Uuid, causation_id: Uuid) -> NewEvent {
        NewEvent::new(self.type_name(), self)
            .expect("instance records serialize to JSON with a valid type")
            .with_id(id)
            .with_correlation_id(correlation_id)
            .with_causation_id(causation_id)
    }

    pub fn decode(event: &RecordedEvent) -> Result<Self, String> {
        serde_json::from_slice(&event.data).map_err(|e| {
            format!(
                "{} version {} ({}): {e}",
                event.stream, event.version, event.event_type
            )
        })
    }
}

/// A scheduled deadline, as both the instance stream and the deadline book record it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadlineEntry {
    pub deadline_id: Uuid,
    pub instance_key: String,
    pub name: String,
    pub due_at_ms: i64,
    pub payload: serde_json::Value,
    pub correlation_id: Uuid,
}

/// One record of the deadline book `$saga-deadlines-{saga}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BookRecord {
    Scheduled { deadline: DeadlineEntry },
    Fired { deadline_id: Uuid },
    Cancelled { deadline_id: Uuid },
}

impl BookRecord {
    pub fn to_event(&self) -> NewEvent {
        let (kind, id) = match self {
            BookRecord::Scheduled { deadline } => ("Scheduled", deadline.deadline_id),
            BookRecord::Fired { deadline_id } => ("Fired", *deadline_id),
            BookRecord::Cancelled { deadline_id } => ("Cancelled", *deadline_id),
        };
        NewEvent::new(kind, self)
            .expect("book records serialize")
            .with_id(derived_id(&["book", &id.to_string(), kind]))
    }
}

/// One record of the registry `$saga-instances-{saga}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceRegistered {
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(derived_id(&["a", "1"]), derived_id(&["a", "1"]));
        assert_ne!(derived_id(&["a", "1"]), derived_id(&["a", "2"]));
        assert_eq!(derived_id(&["a"]).get_version_num(), 5);
    }

    #[test]
    fn records_round_trip_through_events() {
        let r = InstanceRecord::StatusChanged {
            step: 3,
            status: Status::Compensating,
            reason: Some("payment declined".into()),
        };
        let id = Uuid::now_v7();
        let e = r.to_event(id, id, id);
        assert_eq!(e.event_type(), "StatusChanged");
        let recorded = RecordedEvent {
            stream: "$saga-x-1".into(),
            version: 0,
            position: 0,
            recorded_at_us: 0,
            id,
            event_type: "StatusChanged".into(),
            data: e.data().clone(),
            metadata: Default::default(),
            correlation_id: id,
            causation_id: id,
        };
        assert_eq!(InstanceRecord::decode(&recorded).unwrap(), r);
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(instance_stream("order", "42").is_ok());
        assert!(instance_stream("order", "a\nb").is_err());
    }
}
