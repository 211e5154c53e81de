//! What a saga writes to the log: the names of its system streams, the records of an
//! instance stream, and the deterministic ids (UUID v5) of records, commands and deadlines,
//! which make every retried write and every re-sent command recognisable.

use eventum_core::{CommandEnvelope, InvalidInput, NewEvent, RecordedEvent, StreamName};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::saga::Status;

/// The namespace of every id this crate derives.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6576_656e_7475_6d2d_7361_6761_7300_0001);

/// The metadata key under which a runner stamps each step event with its run id (new at
/// every [`crate::SagaRunner::start`]).
pub const RUNNER_METADATA_KEY: &str = "runner";

/// An event whose metadata stamps it as recorded by the run `run_id`: step events take
/// its metadata ([`NewEvent::with_metadata_of`]).
pub fn runner_stamp(run_id: Uuid) -> NewEvent {
    NewEvent::new("RunnerStamp", &())
        .and_then(|e| e.with_metadata(serde_json::json!({ RUNNER_METADATA_KEY: run_id })))
        .expect("a JSON object without correlation keys is valid metadata")
}

/// The run that recorded `event`, from its metadata; `None` when it carries no stamp (or
/// an unreadable one: the caller then assumes the worst, another run).
pub fn runner_of(event: &RecordedEvent) -> Option<Uuid> {
    event.metadata_uuid(RUNNER_METADATA_KEY)
}

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

/// The event type of one step in an instance stream: its records, in order, as one JSON
/// array. A step used to be one event per record; one event per step means fewer events
/// to write, index and deliver to every subscriber (an order of the shop: 4 instead of
/// 10), and loading still reads both forms.
pub const STEP_EVENT_TYPE: &str = "SagaStep";

/// One record of an instance stream. A step is one event ([`STEP_EVENT_TYPE`]) holding the
/// trigger record (`SagaStarted` first for the first step), then the commands, deadline
/// changes and status changes it decided, in that order.
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

    /// Encodes a whole step (`records`, in order) as one event with id `id`, stamped with
    /// the step's correlation.
    pub fn step_event(
        records: &[InstanceRecord],
        id: Uuid,
        correlation_id: Uuid,
        causation_id: Uuid,
    ) -> NewEvent {
        NewEvent::new(STEP_EVENT_TYPE, &records)
            .expect("instance records serialize to JSON")
            .with_id(id)
            .with_correlation_id(correlation_id)
            .with_causation_id(causation_id)
    }

    /// The records one event of an instance stream holds, in order: all of a step's for a
    /// [`STEP_EVENT_TYPE`] event, or the one record of an event written one per record
    /// (by earlier versions; its type is the record's).
    pub fn decode_event(event: &RecordedEvent) -> Result<Vec<Self>, String> {
        let decoded = if event.event_type == STEP_EVENT_TYPE {
            serde_json::from_slice(&event.data)
        } else {
            serde_json::from_slice(&event.data).map(|record| vec![record])
        };
        decoded.map_err(|e| {
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

    /// An event of instance stream `$saga-x-1` with `data` as it was written.
    fn recorded(event_type: &str, data: &[u8]) -> RecordedEvent {
        let data = serde_json::from_slice(data).expect("test data is JSON");
        crate::testing::event("$saga-x-1", event_type, data)
    }

    #[test]
    fn a_step_round_trips_through_one_event_in_order() {
        let step = vec![
            InstanceRecord::EventHandled {
                step: 3,
                event_id: Uuid::now_v7(),
                event_type: "PaymentFailed".into(),
                stream: "payment-1".into(),
                position: 7,
                state: serde_json::json!({"stage": "refund"}),
            },
            InstanceRecord::StatusChanged {
                step: 3,
                status: Status::Compensating,
                reason: Some("payment declined".into()),
            },
        ];
        let id = Uuid::now_v7();
        let e = InstanceRecord::step_event(&step, id, id, id);
        assert_eq!(e.event_type(), STEP_EVENT_TYPE);
        assert_eq!(e.id(), id);
        let decoded = InstanceRecord::decode_event(&recorded(STEP_EVENT_TYPE, e.data()));
        assert_eq!(decoded.unwrap(), step);
    }

    #[test]
    fn a_record_written_as_its_own_event_still_decodes() {
        // The form every step had before steps became one event: the record's own type.
        let data = br#"{"type":"StatusChanged","step":3,"status":"compensating","reason":"payment declined"}"#;
        let decoded = InstanceRecord::decode_event(&recorded("StatusChanged", data));
        assert_eq!(
            decoded.unwrap(),
            vec![InstanceRecord::StatusChanged {
                step: 3,
                status: Status::Compensating,
                reason: Some("payment declined".into()),
            }]
        );
        let garbage = InstanceRecord::decode_event(&recorded(STEP_EVENT_TYPE, b"{}"));
        assert!(
            garbage
                .unwrap_err()
                .contains("$saga-x-1 version 0 (SagaStep)")
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(instance_stream("order", "42").is_ok());
        assert!(instance_stream("order", "a\nb").is_err());
    }
}
