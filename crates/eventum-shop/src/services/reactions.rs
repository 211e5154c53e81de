//! What each shop service takes from the broker and what it does with it: the event types
//! it follows, the broker topics those map to (per event type as in seed 004's table, or
//! per category), and the commands a message becomes. The order flow is the choreography
//! of [`crate::choreography::react`], the same reactions the in-process shop runs; the
//! gateway's requests (orders, catalog changes) become the owning service's commands.

use std::collections::BTreeSet;

use eventum_bridge::{TopicMapping, kebab_case};
use eventum_sagas::CommandSpec;
use serde_json::Value;

use crate::choreography::{Role, react};

/// The shop's event types and the stream category each is written in. Topics per
/// category (`order-events`) need the category of a type before any message is seen.
pub const EVENT_CATEGORIES: [(&str, &str); 19] = [
    ("UserRegistered", "user"),
    ("OrderRequested", "checkout"),
    ("ProductCreationRequested", "productrequest"),
    ("ProductStockChangeRequested", "productrequest"),
    ("OrderCreated", "order"),
    ("OrderConfirmed", "order"),
    ("OrderCancelled", "order"),
    ("ProductCreated", "product"),
    ("ProductStockSet", "product"),
    ("ProductStockReserved", "product"),
    ("ProductStockReleased", "product"),
    ("ProductStockCommitted", "product"),
    ("StockReserved", "reservation"),
    ("StockReservationFailed", "reservation"),
    ("StockReleased", "reservation"),
    ("PaymentCompleted", "payment"),
    ("PaymentFailed", "payment"),
    ("PaymentRefunded", "payment"),
    ("NotificationCreated", "notification"),
];

/// The category of a shop event type.
pub fn category_of(event_type: &str) -> Option<&'static str> {
    EVENT_CATEGORIES
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, c)| *c)
}

/// The broker topic an event type is published on, as the relay names it
/// ([`eventum_bridge::Message::from_event`]).
pub fn topic_of(mapping: TopicMapping, event_type: &str) -> String {
    match mapping {
        TopicMapping::EventType => kebab_case(event_type),
        TopicMapping::Category => {
            let category = category_of(event_type).unwrap_or("unknown");
            format!("{}-events", kebab_case(category))
        }
    }
}

/// The topics that carry `event_types`, each once, in a stable order.
pub fn topics_for(mapping: TopicMapping, event_types: &[&str]) -> Vec<String> {
    let set: BTreeSet<String> = event_types.iter().map(|t| topic_of(mapping, t)).collect();
    set.into_iter().collect()
}

/// The four services that own aggregates and react to the broker. The gateway only
/// reads (its read models) and records requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Orders,
    Products,
    Payments,
    Notifications,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Orders,
        Backend::Products,
        Backend::Payments,
        Backend::Notifications,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Orders => "orders",
            Backend::Products => "products",
            Backend::Payments => "payments",
            Backend::Notifications => "notifications",
        }
    }

    /// The event types this service reacts to (seed 004's "Consumer" column, plus the
    /// gateway's requests).
    pub fn follows(self) -> &'static [&'static str] {
        match self {
            Backend::Orders => &[
                "OrderRequested",
                "StockReservationFailed",
                "PaymentCompleted",
                "PaymentFailed",
            ],
            Backend::Products => &[
                "ProductCreationRequested",
                "ProductStockChangeRequested",
                "OrderCreated",
                "OrderConfirmed",
                "OrderCancelled",
                "PaymentFailed",
            ],
            Backend::Payments => &["StockReserved", "OrderCancelled"],
            Backend::Notifications => &["OrderConfirmed", "OrderCancelled"],
        }
    }

    /// The commands one message of `event_type` with body `data` becomes here; empty
    /// for a type this service does not react to.
    pub fn react(self, event_type: &str, data: Value) -> Vec<CommandSpec> {
        if !self.follows().contains(&event_type) {
            return Vec::new();
        }
        // A gateway request carries exactly the command's fields.
        let request = match event_type {
            "OrderRequested" => Some("PlaceOrder"),
            "ProductCreationRequested" => Some("CreateProduct"),
            "ProductStockChangeRequested" => Some("SetProductStock"),
            _ => None,
        };
        if let Some(command) = request {
            return vec![CommandSpec::new(command, data)];
        }
        let role = match self {
            Backend::Orders => Role::Orders,
            Backend::Products => Role::Products,
            Backend::Payments => Role::Payments,
            Backend::Notifications => Role::Notifier,
        };
        react(role, event_type, data)
    }
}

/// The key that orders one aggregate's messages: the id part of the source stream
/// (`order-{id}`, `reservation-{id}`, `payment-{id}` all name the order), so that one
/// order's messages are handled one after another while other orders run alongside.
pub fn ordering_key(source_stream: &str) -> &str {
    source_stream
        .split_once('-')
        .map_or(source_stream, |(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_followed_type_has_a_category_and_a_seed_004_topic() {
        for backend in Backend::ALL {
            for t in backend.follows() {
                assert!(category_of(t).is_some(), "{t}");
            }
        }
        assert_eq!(
            topic_of(TopicMapping::EventType, "OrderCreated"),
            "order-created"
        );
        assert_eq!(
            topic_of(TopicMapping::EventType, "StockReservationFailed"),
            "stock-reservation-failed"
        );
        assert_eq!(
            topic_of(TopicMapping::Category, "OrderCreated"),
            "order-events"
        );
        assert_eq!(
            topics_for(TopicMapping::Category, Backend::Orders.follows()),
            ["checkout-events", "payment-events", "reservation-events"]
        );
        assert_eq!(
            topics_for(TopicMapping::EventType, Backend::Payments.follows()),
            ["order-cancelled", "stock-reserved"]
        );
    }

    #[test]
    fn the_flow_reacts_as_in_process_and_requests_become_commands() {
        let data = json!({"orderId": "o1", "userId": "u", "reason": "no"});
        let types = |b: Backend, t: &str| -> Vec<String> {
            b.react(t, data.clone())
                .into_iter()
                .map(|c| c.command_type)
                .collect()
        };
        assert_eq!(types(Backend::Orders, "OrderRequested"), ["PlaceOrder"]);
        assert_eq!(types(Backend::Orders, "PaymentCompleted"), ["ConfirmOrder"]);
        assert_eq!(types(Backend::Orders, "PaymentFailed"), ["CancelOrder"]);
        assert_eq!(types(Backend::Products, "OrderCreated"), ["ReserveStock"]);
        assert_eq!(types(Backend::Products, "OrderConfirmed"), ["CommitStock"]);
        assert_eq!(types(Backend::Products, "PaymentFailed"), ["ReleaseStock"]);
        assert_eq!(
            types(Backend::Products, "ProductCreationRequested"),
            ["CreateProduct"]
        );
        assert_eq!(
            types(Backend::Payments, "StockReserved"),
            ["CapturePayment"]
        );
        assert_eq!(
            types(Backend::Payments, "OrderCancelled"),
            ["RefundPayment"]
        );
        assert_eq!(
            types(Backend::Notifications, "OrderCancelled"),
            ["NotifyUser"]
        );
        // Not followed: nothing, even where another role would react.
        assert!(types(Backend::Payments, "OrderCreated").is_empty());
        assert!(types(Backend::Notifications, "OrderRequested").is_empty());
    }

    #[test]
    fn one_order_has_one_key_across_its_aggregates() {
        assert_eq!(ordering_key("order-0193-ab"), "0193-ab");
        assert_eq!(ordering_key("reservation-0193-ab"), "0193-ab");
        assert_eq!(ordering_key("plain"), "plain");
    }
}
