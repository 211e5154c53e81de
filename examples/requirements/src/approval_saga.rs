//! `RequirementApprovalSaga` from seed 000: an approval request starts it and schedules a
//! durable deadline at the requested due time; an approval completes it and cancels the
//! deadline; if the deadline comes first it sends `EscalateApproval` and completes as
//! escalated. The deadline survives restarts and fires once.

use eventum_core::{RecordedEvent, SubscriptionTarget};
use eventum_runtime::Aggregate;
use eventum_runtime::codec::decode_event;
use eventum_sagas::{Action, Saga, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::{Requirement, RequirementEvent as E};
use crate::views::requirement_id;

pub const SAGA_NAME: &str = "requirement-approval";
const DEADLINE: &str = "approval-due";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovalState {
    pub requirement_id: String,
    pub approver: String,
    /// `approved` or `escalated` once decided.
    pub outcome: Option<String>,
}

pub struct RequirementApprovalSaga;

impl Saga for RequirementApprovalSaga {
    type State = ApprovalState;

    fn name(&self) -> &str {
        SAGA_NAME
    }

    fn source(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category(Requirement::CATEGORY.into())
    }

    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        let domain = decode_event::<E>(event).ok()?;
        match domain {
            E::ApprovalRequested { .. } | E::RequirementApproved { .. } => {
                Some(requirement_id(&domain).to_owned())
            }
            _ => None,
        }
    }

    fn starts(&self, event: &RecordedEvent) -> bool {
        event.event_type == "ApprovalRequested"
    }

    fn handle(&self, state: &ApprovalState, trigger: &Trigger<'_>) -> Vec<Action> {
        match trigger {
            Trigger::Event(event) => match decode_event::<E>(event) {
                Ok(E::ApprovalRequested { due_at_us, .. }) => {
                    // Relative to the event's own recording time, so that the decision
                    // is a pure function of the event.
                    let after_ms = (due_at_us - event.recorded_at_us).max(0) as u64 / 1_000;
                    vec![Action::Schedule {
                        name: DEADLINE.into(),
                        after_ms,
                        payload: json!({}),
                    }]
                }
                Ok(E::RequirementApproved { .. }) => {
                    vec![
                        Action::Cancel {
                            name: DEADLINE.into(),
                        },
                        Action::Complete,
                    ]
                }
                _ => vec![],
            },
            Trigger::Deadline(_) => vec![
                Action::send(
                    "EscalateApproval",
                    json!({"requirement_id": state.requirement_id}),
                ),
                Action::Complete,
            ],
            // Escalation appends nothing when the approval won the race; a refusal
            // here means the requirement vanished, which leaves nothing to escalate.
            Trigger::CommandRejected(_) => vec![],
        }
    }

    fn evolve(&self, state: &mut ApprovalState, trigger: &Trigger<'_>) {
        match trigger {
            Trigger::Event(event) => match decode_event::<E>(event) {
                Ok(E::ApprovalRequested {
                    requirement_id,
                    approver,
                    ..
                }) => {
                    state.requirement_id = requirement_id;
                    state.approver = approver;
                }
                Ok(E::RequirementApproved { .. }) => state.outcome = Some("approved".into()),
                _ => {}
            },
            Trigger::Deadline(_) => state.outcome = Some("escalated".into()),
            Trigger::CommandRejected(_) => {}
        }
    }
}
