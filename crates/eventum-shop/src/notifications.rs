//! Notifications bounded context: the `Notification` aggregate, one per order, so that an
//! order's terminal state is notified exactly once however often the notifier retries.
//! Per-user listing is the `shop-notifications` read model; live push is the WebSocket.

use eventum_runtime::{Aggregate, Command, DomainError};
use serde::{Deserialize, Serialize};

pub const KIND_ORDER_CONFIRMED: &str = "ORDER_CONFIRMED";
pub const KIND_ORDER_CANCELLED: &str = "ORDER_CANCELLED";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum NotificationCommand {
    NotifyUser {
        order_id: String,
        user_id: String,
        kind: String,
        message: String,
    },
}

impl Command for NotificationCommand {
    const TYPES: &'static [&'static str] = &["NotifyUser"];
    fn command_type(&self) -> &'static str {
        "NotifyUser"
    }
    fn validate(&self) -> Result<(), String> {
        let NotificationCommand::NotifyUser { kind, .. } = self;
        if kind != KIND_ORDER_CONFIRMED && kind != KIND_ORDER_CANCELLED {
            return Err(format!("unknown notification kind {kind}"));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum NotificationEvent {
    NotificationCreated {
        order_id: String,
        user_id: String,
        kind: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NotificationError {
    #[error("order {order_id} was notified as {notified}, not {requested}")]
    OtherTerminalState {
        order_id: String,
        notified: String,
        requested: String,
    },
}

impl DomainError for NotificationError {
    fn code(&self) -> &str {
        "notified_otherwise"
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: Option<String>,
}

impl Aggregate for Notification {
    const CATEGORY: &'static str = "notification";
    type Command = NotificationCommand;
    type Event = NotificationEvent;
    type Error = NotificationError;

    fn aggregate_id(command: &NotificationCommand) -> String {
        let NotificationCommand::NotifyUser { order_id, .. } = command;
        order_id.clone()
    }

    fn decide(
        &self,
        command: &NotificationCommand,
    ) -> Result<Vec<NotificationEvent>, NotificationError> {
        let NotificationCommand::NotifyUser {
            order_id,
            user_id,
            kind,
            message,
        } = command;
        match &self.kind {
            None => Ok(vec![NotificationEvent::NotificationCreated {
                order_id: order_id.clone(),
                user_id: user_id.clone(),
                kind: kind.clone(),
                message: message.clone(),
            }]),
            Some(k) if k == kind => Ok(vec![]),
            Some(k) => Err(NotificationError::OtherTerminalState {
                order_id: order_id.clone(),
                notified: k.clone(),
                requested: kind.clone(),
            }),
        }
    }

    fn evolve(mut self, event: &NotificationEvent) -> Self {
        let NotificationEvent::NotificationCreated { kind, .. } = event;
        self.kind = Some(kind.clone());
        self
    }
}
