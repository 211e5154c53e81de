//! The read side: `requirements` (one document per requirement, with lookups by status,
//! author and approver) and `requirement-audit` (one entry per event, who did what and
//! why, looked up by requirement).

use eventum_core::{RecordedEvent, SubscriptionTarget};
use eventum_projections::{Lookup, Projection, ProjectionError, ProjectionTx};
use eventum_runtime::codec::decode_event;
use serde_json::{Value, json};

use crate::domain::{Requirement, RequirementEvent as E, Status};

pub const REQUIREMENTS_MODEL: &str = "requirements";
pub const AUDIT_MODEL: &str = "requirement-audit";

fn decode(event: &RecordedEvent) -> Result<E, ProjectionError> {
    decode_event::<E>(event).map_err(|e| ProjectionError::rejected(e.to_string()))
}

fn status_text(status: Status) -> Value {
    serde_json::to_value(status).expect("a unit enum serializes")
}

/// One document per requirement, keyed by its id.
pub struct RequirementsView;

impl Projection for RequirementsView {
    fn name(&self) -> &str {
        REQUIREMENTS_MODEL
    }
    fn version(&self) -> u64 {
        1
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category(<Requirement as eventum_runtime::Aggregate>::CATEGORY.into())
    }
    fn lookups(&self) -> Vec<Lookup> {
        vec![
            Lookup::field("by_status", "/status"),
            Lookup::field("by_author", "/author"),
            Lookup::field("by_approver", "/approver"),
        ]
    }

    fn apply(
        &self,
        tx: &mut ProjectionTx<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let at = event.recorded_at_rfc3339();
        match decode(event)? {
            E::RequirementCreated {
                requirement_id,
                title,
                description,
                author,
            } => {
                let doc = json!({
                    "requirement_id": requirement_id, "title": title, "description": description,
                    "author": author, "status": status_text(Status::Draft), "approver": null,
                    "due_at": null, "created_at": at, "updated_at": at, "version": event.version,
                });
                tx.put(&requirement_id, doc)
            }
            other => {
                let id = requirement_id(&other).to_owned();
                let slot = tx.document_mut(&id)?;
                let Some(doc) = slot.as_mut() else {
                    return Err(ProjectionError::rejected(format!(
                        "{} for unknown requirement {id}",
                        event.event_type
                    )));
                };
                match other {
                    E::RequirementUpdated {
                        title, description, ..
                    } => {
                        if let Some(t) = title {
                            doc["title"] = json!(t);
                        }
                        if let Some(d) = description {
                            doc["description"] = json!(d);
                        }
                    }
                    E::ApprovalRequested {
                        approver,
                        due_at_us,
                        ..
                    } => {
                        doc["status"] = status_text(Status::PendingApproval);
                        doc["approver"] = json!(approver);
                        doc["due_at"] = json!(eventum_core::event::format_rfc3339_us(due_at_us));
                    }
                    E::RequirementApproved { .. } => doc["status"] = status_text(Status::Approved),
                    E::ApprovalEscalated { .. } => doc["status"] = status_text(Status::Escalated),
                    E::RequirementCreated { .. } => unreachable!("handled above"),
                }
                doc["updated_at"] = json!(at);
                doc["version"] = json!(event.version);
                Ok(())
            }
        }
    }
}

pub fn requirement_id(event: &E) -> &str {
    match event {
        E::RequirementCreated { requirement_id, .. }
        | E::RequirementUpdated { requirement_id, .. }
        | E::ApprovalRequested { requirement_id, .. }
        | E::RequirementApproved { requirement_id, .. }
        | E::ApprovalEscalated { requirement_id, .. } => requirement_id,
    }
}

/// Who acted, for the audit log.
fn actor(event: &E) -> &str {
    match event {
        E::RequirementCreated { author, .. } => author,
        E::RequirementUpdated { editor, .. } => editor,
        E::ApprovalRequested { requested_by, .. } => requested_by,
        E::RequirementApproved { approver, .. } => approver,
        E::ApprovalEscalated { .. } => "RequirementApprovalSaga",
    }
}

/// The audit log: an append-only entry per event, keyed by its zero-padded global
/// position so that a listing is in log order.
pub struct AuditLog;

impl Projection for AuditLog {
    fn name(&self) -> &str {
        AUDIT_MODEL
    }
    fn version(&self) -> u64 {
        1
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category(<Requirement as eventum_runtime::Aggregate>::CATEGORY.into())
    }
    fn lookups(&self) -> Vec<Lookup> {
        vec![Lookup::field("by_requirement", "/requirement_id")]
    }
    fn apply(
        &self,
        tx: &mut ProjectionTx<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let domain = decode(event)?;
        let entry = json!({
            "position": event.position,
            "requirement_id": requirement_id(&domain),
            "event_type": event.event_type,
            "version": event.version,
            "actor": actor(&domain),
            "at": event.recorded_at_rfc3339(),
            "event_id": event.id,
            "correlation_id": event.correlation_id,
            "causation_id": event.causation_id,
        });
        tx.put(&audit_key(event.position), entry)
    }
}

pub fn audit_key(position: u64) -> String {
    format!("{position:020}")
}
