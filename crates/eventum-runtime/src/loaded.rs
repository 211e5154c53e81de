//! An aggregate as loaded: its state, its version, and the outcomes of its most recent
//! commands, which make command ids idempotency keys without a separate table.

use std::collections::VecDeque;

use eventum_core::{CommandAccepted, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Metadata keys the repository adds to every event it appends.
pub const META_COMMAND_ID: &str = "command_id";
pub const META_COMMAND_TYPE: &str = "command_type";

/// What one command appended to its aggregate's stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub command_id: Uuid,
    pub last_version: u64,
    pub last_position: u64,
    pub event_ids: Vec<Uuid>,
}

/// The outcomes of the last `capacity` commands of one aggregate, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentCommands {
    entries: VecDeque<CommandOutcome>,
}

impl RecentCommands {
    pub fn find(&self, command_id: Uuid) -> Option<&CommandOutcome> {
        self.entries
            .iter()
            .rev()
            .find(|o| o.command_id == command_id)
    }

    /// Accounts for one recorded event: events of one command are consecutive, so an
    /// event extends the newest outcome when it carries the same command id.
    pub fn record_event(&mut self, event: &RecordedEvent, capacity: usize) {
        let Some(command_id) = command_id_of(event) else {
            return;
        };
        match self.entries.back_mut() {
            Some(last) if last.command_id == command_id => {
                last.last_version = event.version;
                last.last_position = event.position;
                last.event_ids.push(event.id);
            }
            _ => self.push(
                CommandOutcome {
                    command_id,
                    last_version: event.version,
                    last_position: event.position,
                    event_ids: vec![event.id],
                },
                capacity,
            ),
        }
    }

    pub fn push(&mut self, outcome: CommandOutcome, capacity: usize) {
        while self.entries.len() >= capacity.max(1) {
            self.entries.pop_front();
        }
        self.entries.push_back(outcome);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The command id in an event's metadata, if the repository wrote it.
pub fn command_id_of(event: &RecordedEvent) -> Option<Uuid> {
    event.metadata_uuid("command_id")
}

/// One aggregate instance in memory.
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    pub state: A,
    /// The version of its last event; `None` for an aggregate with no events.
    pub version: Option<u64>,
    pub recent: RecentCommands,
}

impl<A: Default> Loaded<A> {
    pub fn empty() -> Self {
        Self {
            state: A::default(),
            version: None,
            recent: RecentCommands::default(),
        }
    }
}

impl CommandOutcome {
    /// The outcome as the bus reports it to a caller repeating this command.
    pub fn accepted(&self, stream: &str, duplicate: bool) -> CommandAccepted {
        CommandAccepted {
            stream: stream.to_owned(),
            version: Some(self.last_version),
            position: Some(self.last_position),
            event_ids: self.event_ids.clone(),
            duplicate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn event(version: u64, command: Option<Uuid>) -> RecordedEvent {
        let metadata = command
            .map(|c| Bytes::from(format!(r#"{{"command_id":"{c}"}}"#)))
            .unwrap_or_default();
        RecordedEvent {
            stream: "a-1".into(),
            version,
            position: version + 10,
            recorded_at_us: 0,
            id: Uuid::now_v7(),
            event_type: "E".into(),
            data: Bytes::from_static(b"{}"),
            metadata,
            correlation_id: Uuid::nil(),
            causation_id: Uuid::nil(),
        }
    }

    #[test]
    fn consecutive_events_of_one_command_form_one_outcome_and_capacity_evicts_oldest() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut recent = RecentCommands::default();
        for (v, cmd) in [
            (0, Some(a)),
            (1, Some(a)),
            (2, None),
            (3, Some(b)),
            (4, Some(c)),
        ] {
            recent.record_event(&event(v, cmd), 2);
        }
        assert!(recent.find(a).is_none(), "evicted beyond capacity 2");
        assert_eq!(recent.find(b).unwrap().last_version, 3);
        assert_eq!(recent.find(c).unwrap().last_position, 14);
        let mut recent = RecentCommands::default();
        recent.record_event(&event(0, Some(a)), 8);
        recent.record_event(&event(1, Some(a)), 8);
        let outcome = recent.find(a).unwrap();
        assert_eq!((outcome.last_version, outcome.event_ids.len()), (1, 2));
    }
}
