//! The notification consumer: a member of the consumer group `requirement-notifications`
//! that writes one notification per recipient into the `notifications` read model. Its
//! inbox is recorded in the same read-model transaction as the notifications, so a
//! redelivered event (delivery is at least once) never notifies twice.

use std::sync::Arc;

use eventum_core::RecordedEvent;
use eventum_groups::{CreateError, Delivery, GroupService, GroupSettings, GroupTarget, NackAction};
use eventum_projections::{Lookup, ReadModelStore, StoreTx, TxError};
use eventum_runtime::codec::decode_event;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::domain::RequirementEvent as E;
use crate::views::{REQUIREMENTS_MODEL, requirement_id};

pub const NOTIFICATIONS_GROUP: &str = "requirement-notifications";
pub const NOTIFICATIONS_MODEL: &str = "notifications";
/// The inbox's consumer name.
const INBOX: &str = "requirement-notifier";
/// Events taken per receive.
const RECEIVE_EVENTS_MAX: usize = 100;
const RECEIVE_WAIT_MS: u64 = 1_000;

/// Creates the group and the read model if they do not exist yet.
pub async fn prepare(groups: &GroupService, read_models: &ReadModelStore) -> anyhow::Result<()> {
    let settings = GroupSettings::new(GroupTarget::Category("requirement".into()));
    match groups.create(NOTIFICATIONS_GROUP, settings).await {
        Ok(_) | Err(CreateError::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    read_models.define_model(NOTIFICATIONS_MODEL, vec![Lookup::field("by_user", "/user")])?;
    Ok(())
}

/// Receives, notifies and acks until `stop` turns true.
pub async fn run(
    groups: Arc<GroupService>,
    read_models: ReadModelStore,
    consumer: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let received = tokio::select! {
            r = groups.receive(NOTIFICATIONS_GROUP, &consumer, RECEIVE_EVENTS_MAX, RECEIVE_WAIT_MS) => r,
            _ = stop.changed() => return,
        };
        let deliveries = match received {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "notifier: receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        if deliveries.is_empty() {
            if *stop.borrow() {
                return;
            }
            continue;
        }
        handle_batch(&groups, &read_models, deliveries).await;
    }
}

async fn handle_batch(
    groups: &GroupService,
    read_models: &ReadModelStore,
    deliveries: Vec<Delivery>,
) {
    let store = read_models.clone();
    let events: Vec<Arc<RecordedEvent>> = deliveries.iter().map(|d| d.event.clone()).collect();
    // One transaction per event, so that one bad event does not hold back the others.
    let outcomes = tokio::task::spawn_blocking(move || {
        events
            .iter()
            .map(|event| {
                // The requirement's title and author come from the inline read model,
                // which is current for every event the group can deliver.
                let id = decode_event::<E>(event).map(|d| requirement_id(&d).to_owned());
                let requirement = match &id {
                    Ok(id) => store
                        .get(REQUIREMENTS_MODEL, id)
                        .map_err(|e| e.to_string())?,
                    Err(_) => None,
                };
                let requirement = requirement.unwrap_or(Value::Null);
                store
                    .transaction(|tx| notify(tx, event, &requirement))
                    .map_err(|e: NotifyError| e.to_string())
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_else(|e| vec![Err(format!("notifier task failed: {e}")); deliveries.len()]);
    let mut acks = Vec::new();
    for (delivery, outcome) in deliveries.iter().zip(outcomes) {
        match outcome {
            Ok(()) => acks.push(delivery.token),
            Err(reason) => {
                if let Err(e) = groups
                    .nack(
                        NOTIFICATIONS_GROUP,
                        delivery.token,
                        NackAction::Retry,
                        &reason,
                    )
                    .await
                {
                    tracing::warn!(error = %e, "notifier: nack failed");
                }
            }
        }
    }
    if !acks.is_empty()
        && let Err(e) = groups.ack(NOTIFICATIONS_GROUP, &acks).await
    {
        tracing::warn!(error = %e, "notifier: ack failed; the events will be redelivered");
    }
}

/// Why an event could not be turned into notifications.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("event at position {position} does not decode: {message}")]
    Undecodable { position: u64, message: String },
    #[error(transparent)]
    ReadModel(#[from] TxError),
}

/// Writes the notifications `event` causes, once: the inbox check and the writes commit
/// together.
pub fn notify(
    tx: &mut StoreTx<'_>,
    event: &RecordedEvent,
    requirement: &Value,
) -> Result<(), NotifyError> {
    if !tx.inbox_check_and_record(INBOX, event.id)? {
        return Ok(());
    }
    let domain = decode_event::<E>(event).map_err(|e| NotifyError::Undecodable {
        position: event.position,
        message: e.to_string(),
    })?;
    let id = requirement_id(&domain).to_owned();
    let title = requirement["title"].as_str().unwrap_or(&id).to_owned();
    let author = requirement["author"].as_str().map(str::to_owned);
    let mut out: Vec<(String, String)> = Vec::new();
    match &domain {
        E::ApprovalRequested {
            approver,
            requested_by,
            ..
        } => out.push((
            approver.clone(),
            format!("{requested_by} asks you to approve \"{title}\""),
        )),
        E::RequirementApproved { approver, .. } => {
            if let Some(author) = author {
                out.push((author, format!("\"{title}\" was approved by {approver}")));
            }
        }
        E::ApprovalEscalated { approver, .. } => {
            let text =
                format!("the approval of \"{title}\" by {approver} is overdue and was escalated");
            out.push((approver.clone(), text.clone()));
            if let Some(author) = author {
                out.push((author, text));
            }
        }
        E::RequirementCreated { .. } | E::RequirementUpdated { .. } => {}
    }
    for (i, (user, text)) in out.into_iter().enumerate() {
        let doc = json!({
            "user": user, "text": text, "requirement_id": id, "event_type": event.event_type,
            "at": event.recorded_at_rfc3339(), "correlation_id": event.correlation_id,
        });
        tx.put(
            NOTIFICATIONS_MODEL,
            &format!("{:020}-{i}", event.position),
            doc,
        )?;
    }
    Ok(())
}
