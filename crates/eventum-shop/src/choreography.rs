//! The choreographed order flow: no coordinator; each service reacts to the others'
//! events, as the topics of seed 004 describe. Products reserve on `OrderCreated` and
//! release on `PaymentFailed`/`OrderCancelled`; payments capture on `StockReserved` and
//! refund on `OrderCancelled`; orders confirm on `PaymentCompleted` and cancel on
//! `StockReservationFailed`/`PaymentFailed`. The notifier (shared by both styles) turns
//! each terminal order event into one notification.

use eventum_core::{RecordedEvent, SubscriptionTarget};
use eventum_sagas::{CommandSpec, Reactor};
use serde_json::{Value, json};

use crate::notifications::{KIND_ORDER_CANCELLED, KIND_ORDER_CONFIRMED};
use crate::partition::Partition;
use crate::saga::stream_id;

/// Which service a reactor plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Products,
    Payments,
    Orders,
    Notifier,
}

impl Role {
    pub const FLOW: [Role; 3] = [Role::Products, Role::Payments, Role::Orders];

    fn name(self) -> &'static str {
        match self {
            Role::Products => "shop-products",
            Role::Payments => "shop-payments",
            Role::Orders => "shop-orders",
            Role::Notifier => "shop-notifier",
        }
    }
}

/// One service's reactions, for one partition of the orders.
pub struct ShopReactor {
    role: Role,
    partition: Partition,
    name: String,
}

impl ShopReactor {
    pub fn new(role: Role, partition: Partition) -> Self {
        Self {
            role,
            partition,
            name: format!("{}-{}", role.name(), partition.index),
        }
    }
}

fn spec(command: &str, payload: Value) -> Vec<CommandSpec> {
    vec![CommandSpec::new(command, payload)]
}

/// What a role does about an event type, decided before the event's data is read.
#[derive(Clone, Copy, Debug)]
enum Reaction {
    /// Send this command with the event's data as its payload.
    Forward(&'static str),
    /// Send this command naming the event's order.
    ForOrder(&'static str),
    /// Cancel the order with the event's reason.
    CancelOrder,
    /// Tell the user about the order's terminal state.
    Notify { confirmed: bool },
}

fn reaction(role: Role, event_type: &str) -> Option<Reaction> {
    use Reaction::*;
    Some(match (role, event_type) {
        (Role::Products, "OrderCreated") => Forward("ReserveStock"),
        (Role::Products, "PaymentFailed" | "OrderCancelled") => ForOrder("ReleaseStock"),
        (Role::Products, "OrderConfirmed") => ForOrder("CommitStock"),
        (Role::Payments, "StockReserved") => Forward("CapturePayment"),
        // Whatever cancelled the order, no payment stays captured for it.
        (Role::Payments, "OrderCancelled") => ForOrder("RefundPayment"),
        (Role::Orders, "PaymentCompleted") => ForOrder("ConfirmOrder"),
        (Role::Orders, "StockReservationFailed" | "PaymentFailed") => CancelOrder,
        (Role::Notifier, "OrderConfirmed") => Notify { confirmed: true },
        (Role::Notifier, "OrderCancelled") => Notify { confirmed: false },
        _ => return None,
    })
}

/// The command `reaction` sends for an event with `data`.
fn command(reaction: Reaction, data: Value) -> Vec<CommandSpec> {
    let order_id = data["orderId"].as_str().unwrap_or("");
    match reaction {
        Reaction::Forward(command) => spec(command, data),
        Reaction::ForOrder(command) => spec(command, json!({"orderId": data["orderId"]})),
        Reaction::CancelOrder => spec(
            "CancelOrder",
            json!({"orderId": data["orderId"], "reason": data["reason"]}),
        ),
        Reaction::Notify { confirmed: true } => spec(
            "NotifyUser",
            json!({
                "orderId": data["orderId"], "userId": data["userId"],
                "kind": KIND_ORDER_CONFIRMED,
                "message": format!("Your order {order_id} is confirmed."),
            }),
        ),
        Reaction::Notify { confirmed: false } => spec(
            "NotifyUser",
            json!({
                "orderId": data["orderId"], "userId": data["userId"],
                "kind": KIND_ORDER_CANCELLED,
                "message": format!(
                    "Your order {order_id} is cancelled: {}.",
                    data["reason"].as_str().unwrap_or("")
                ),
            }),
        ),
    }
}

/// The reactions of `role` to one event, whatever the partition.
pub fn react(role: Role, event_type: &str, data: Value) -> Vec<CommandSpec> {
    reaction(role, event_type).map_or_else(Vec::new, |r| command(r, data))
}

impl Reactor for ShopReactor {
    fn name(&self) -> &str {
        &self.name
    }

    fn source(&self) -> SubscriptionTarget {
        match self.role {
            // The notifier needs only the orders' terminal events: a narrower subscription
            // is fewer deliveries. The others react to several categories.
            Role::Notifier => SubscriptionTarget::Category("order".into()),
            _ => SubscriptionTarget::All,
        }
    }

    fn react(&self, event: &RecordedEvent) -> Vec<CommandSpec> {
        // Cheap filter first: most events are for other services.
        let Some(reaction) = reaction(self.role, &event.event_type) else {
            return Vec::new();
        };
        // The order id is the id of the event's stream: no JSON parse for other
        // partitions' events.
        let Some(order_id) = stream_id(&event.stream) else {
            return Vec::new();
        };
        if !self.partition.owns(order_id) {
            return Vec::new();
        }
        let data: Value = serde_json::from_slice(&event.data).unwrap_or_default();
        command(reaction, data)
    }
}
