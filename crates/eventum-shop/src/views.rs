//! The shop's read models: `shop-orders` (one document per order, looked up by user, for
//! `GET /api/orders`) and `shop-notifications` (one per notification, looked up by user).
//! Both follow the log asynchronously; a single order is read from its own stream, which
//! is always current.

use eventum_core::{RecordedEvent, SubscriptionTarget};
use eventum_projections::{Lookup, Projection, ProjectionError, ProjectionTx};
use eventum_runtime::codec::decode_event;
use serde_json::json;

use crate::notifications::NotificationEvent;
use crate::orders::OrderEvent;

pub const ORDERS_MODEL: &str = "shop-orders";
pub const NOTIFICATIONS_MODEL: &str = "shop-notifications";
pub const BY_USER: &str = "by_user";

pub struct OrdersView;

impl Projection for OrdersView {
    fn name(&self) -> &str {
        ORDERS_MODEL
    }
    fn version(&self) -> u64 {
        1
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category("order".into())
    }
    fn lookups(&self) -> Vec<Lookup> {
        vec![Lookup::field(BY_USER, "/userId")]
    }
    fn apply(
        &self,
        tx: &mut ProjectionTx<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        // The store is shared: an `order-*` stream written by someone else is not ours.
        let Ok(decoded) = decode_event::<OrderEvent>(event) else {
            tracing::debug!(stream = %event.stream, "not a shop order event; skipped");
            return Ok(());
        };
        match decoded {
            OrderEvent::OrderCreated {
                order_id,
                user_id,
                order_items,
                shipping_address,
                payment_method,
                total_amount,
                created_at,
            } => tx.put(
                &order_id,
                json!({
                    "orderId": order_id, "userId": user_id, "status": "PENDING",
                    "orderItems": order_items, "shippingAddress": shipping_address,
                    "paymentMethod": payment_method, "totalAmount": total_amount,
                    "createdAt": created_at, "updatedAt": event.recorded_at_rfc3339(),
                }),
            ),
            OrderEvent::OrderConfirmed { order_id, .. } => {
                set_status(tx, &order_id, "CONFIRMED", None, event)
            }
            OrderEvent::OrderCancelled {
                order_id, reason, ..
            } => set_status(tx, &order_id, "CANCELLED", Some(reason), event),
        }
    }
}

fn set_status(
    tx: &mut ProjectionTx<'_>,
    order_id: &str,
    status: &str,
    reason: Option<String>,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let slot = tx.document_mut(order_id)?;
    let Some(doc) = slot.as_mut() else {
        tracing::warn!(%order_id, event_type = %event.event_type, "terminal event of an unknown order; skipped");
        return Ok(());
    };
    doc["status"] = json!(status);
    if let Some(reason) = reason {
        doc["reason"] = json!(reason);
    }
    doc["updatedAt"] = json!(event.recorded_at_rfc3339());
    Ok(())
}

pub struct NotificationsView;

impl Projection for NotificationsView {
    fn name(&self) -> &str {
        NOTIFICATIONS_MODEL
    }
    fn version(&self) -> u64 {
        1
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category("notification".into())
    }
    fn lookups(&self) -> Vec<Lookup> {
        vec![Lookup::field(BY_USER, "/userId")]
    }
    fn apply(
        &self,
        tx: &mut ProjectionTx<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let Ok(NotificationEvent::NotificationCreated {
            order_id,
            user_id,
            kind,
            message,
        }) = decode_event(event)
        else {
            tracing::debug!(stream = %event.stream, "not a shop notification; skipped");
            return Ok(());
        };
        // Keyed by position: listings come out in the order they happened.
        tx.put(
            &format!("{:020}", event.position),
            notification_json(
                &event.id.to_string(),
                &order_id,
                &user_id,
                &kind,
                &message,
                &event.recorded_at_rfc3339(),
            ),
        )
    }
}

/// The wire form of a notification (REST listing and WebSocket push alike).
pub fn notification_json(
    id: &str,
    order_id: &str,
    user_id: &str,
    kind: &str,
    message: &str,
    created_at: &str,
) -> serde_json::Value {
    json!({
        "notificationId": id, "orderId": order_id, "userId": user_id,
        "type": kind, "message": message, "createdAt": created_at,
    })
}
