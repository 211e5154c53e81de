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

/// The reactions of `role` to one event, whatever the partition.
pub fn react(role: Role, event_type: &str, data: Value) -> Vec<CommandSpec> {
    // Built only in the arms that use it: most calls (every event a reactor ignores)
    // should allocate nothing.
    let order = |data: &Value| json!({"orderId": data["orderId"]});
    match (role, event_type) {
        (Role::Products, "OrderCreated") => spec("ReserveStock", data),
        (Role::Products, "PaymentFailed" | "OrderCancelled") => spec("ReleaseStock", order(&data)),
        (Role::Products, "OrderConfirmed") => spec("CommitStock", order(&data)),
        (Role::Payments, "StockReserved") => spec("CapturePayment", data),
        // Whatever cancelled the order, no payment stays captured for it.
        (Role::Payments, "OrderCancelled") => spec("RefundPayment", order(&data)),
        (Role::Orders, "PaymentCompleted") => spec("ConfirmOrder", order(&data)),
        (Role::Orders, "StockReservationFailed" | "PaymentFailed") => spec(
            "CancelOrder",
            json!({"orderId": data["orderId"], "reason": data["reason"]}),
        ),
        (Role::Notifier, "OrderConfirmed") => spec(
            "NotifyUser",
            json!({
                "orderId": data["orderId"], "userId": data["userId"],
                "kind": KIND_ORDER_CONFIRMED,
                "message": format!("Your order {} is confirmed.", data["orderId"].as_str().unwrap_or("")),
            }),
        ),
        (Role::Notifier, "OrderCancelled") => spec(
            "NotifyUser",
            json!({
                "orderId": data["orderId"], "userId": data["userId"],
                "kind": KIND_ORDER_CANCELLED,
                "message": format!(
                    "Your order {} is cancelled: {}.",
                    data["orderId"].as_str().unwrap_or(""),
                    data["reason"].as_str().unwrap_or("")
                ),
            }),
        ),
        _ => Vec::new(),
    }
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
        if react(self.role, &event.event_type, Value::Null).is_empty() {
            return Vec::new();
        }
        // The order id is the id of the event's stream: no JSON parse for other
        // partitions' events.
        let Some(order_id) = stream_id(&event.stream) else {
            return Vec::new();
        };
        if !self.partition.owns(order_id) {
            return Vec::new();
        }
        let data: Value = serde_json::from_slice(&event.data).unwrap_or_default();
        react(self.role, &event.event_type, data)
    }
}
