//! Checks the shop's invariants over the whole log: stock never negative, every order in
//! at most one terminal state, no payment left captured for a cancelled order, one
//! notification per terminal state. Tests, the crash test and `eventum shop load` use it.

use std::collections::{BTreeMap, HashMap};

use eventum_core::EventStore;
use eventum_runtime::codec::decode_event;

use crate::notifications::NotificationEvent;
use crate::orders::OrderEvent;
use crate::payments::PaymentEvent;
use crate::products::ProductEvent;

/// What the log says about the orders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub orders: usize,
    pub pending: usize,
    pub confirmed: usize,
    pub cancelled: usize,
    /// Current available stock per product.
    pub stock: BTreeMap<u64, i64>,
    /// Every rule broken, in words; empty when all hold.
    pub violations: Vec<String>,
}

impl AuditReport {
    pub fn all_terminal(&self) -> bool {
        self.pending == 0
    }
}

#[derive(Default)]
struct OrderFacts {
    confirmed: u32,
    cancelled: u32,
    captured: bool,
    refunded: bool,
    notifications: u32,
}

async fn each_event(
    store: &dyn EventStore,
    category: &str,
    mut f: impl FnMut(&eventum_core::RecordedEvent),
) -> Result<(), eventum_core::ReadError> {
    let page = store.limits().read_events_max;
    let mut from = 0;
    loop {
        let events = store.read_category(category, from, page).await?;
        for e in &events {
            f(e);
            from = e.position + 1;
        }
        if events.len() < page {
            return Ok(());
        }
    }
}

/// Where each context's events live: one store for the in-process shop, one per
/// service when the shop runs as separate processes.
#[derive(Clone, Copy)]
pub struct ContextStores<'a> {
    pub orders: &'a dyn EventStore,
    pub products: &'a dyn EventStore,
    pub payments: &'a dyn EventStore,
    pub notifications: &'a dyn EventStore,
}

impl<'a> ContextStores<'a> {
    /// Every context in `store`.
    pub fn one(store: &'a dyn EventStore) -> Self {
        Self {
            orders: store,
            products: store,
            payments: store,
            notifications: store,
        }
    }
}

/// Reads the order, payment, notification and product categories and checks the rules.
pub async fn audit(store: &dyn EventStore) -> Result<AuditReport, eventum_core::ReadError> {
    audit_contexts(ContextStores::one(store)).await
}

/// [`audit`] over the contexts' own stores.
pub async fn audit_contexts(
    stores: ContextStores<'_>,
) -> Result<AuditReport, eventum_core::ReadError> {
    let mut report = AuditReport::default();
    let mut facts: HashMap<String, OrderFacts> = HashMap::new();
    each_event(stores.orders, "order", |e| {
        match decode_event::<OrderEvent>(e) {
            Ok(OrderEvent::OrderCreated { order_id, .. }) => {
                facts.entry(order_id).or_default();
            }
            Ok(OrderEvent::OrderConfirmed { order_id, .. }) => {
                facts.entry(order_id).or_default().confirmed += 1
            }
            Ok(OrderEvent::OrderCancelled { order_id, .. }) => {
                facts.entry(order_id).or_default().cancelled += 1
            }
            Err(_) => {}
        }
    })
    .await?;
    each_event(stores.payments, "payment", |e| {
        match decode_event::<PaymentEvent>(e) {
            Ok(PaymentEvent::PaymentCompleted { order_id, .. }) => {
                facts.entry(order_id).or_default().captured = true
            }
            Ok(PaymentEvent::PaymentRefunded { order_id, .. }) => {
                facts.entry(order_id).or_default().refunded = true
            }
            _ => {}
        }
    })
    .await?;
    each_event(stores.notifications, "notification", |e| {
        if let Ok(NotificationEvent::NotificationCreated { order_id, .. }) = decode_event(e) {
            facts.entry(order_id).or_default().notifications += 1;
        }
    })
    .await?;
    let mut violations = Vec::new();
    each_event(stores.products, "product", |e| {
        match decode_event::<ProductEvent>(e) {
            Ok(ProductEvent::ProductCreated {
                product_id, stock, ..
            })
            | Ok(ProductEvent::ProductStockSet { product_id, stock }) => {
                report.stock.insert(product_id, stock);
            }
            Ok(ProductEvent::ProductStockReserved {
                product_id,
                stock_after,
                ..
            })
            | Ok(ProductEvent::ProductStockReleased {
                product_id,
                stock_after,
                ..
            }) => {
                if stock_after < 0 {
                    violations.push(format!("product {product_id}: stock went to {stock_after}"));
                }
                report.stock.insert(product_id, stock_after);
            }
            _ => {}
        }
    })
    .await?;
    report.orders = facts.len();
    for (order_id, f) in &facts {
        let terminal = f.confirmed + f.cancelled;
        match (f.confirmed, f.cancelled) {
            (0, 0) => report.pending += 1,
            (1, 0) => report.confirmed += 1,
            (0, 1) => report.cancelled += 1,
            _ => violations.push(format!(
                "order {order_id}: confirmed {} and cancelled {} times",
                f.confirmed, f.cancelled
            )),
        }
        if f.cancelled > 0 && f.captured && !f.refunded {
            violations.push(format!(
                "order {order_id}: cancelled with its payment captured"
            ));
        }
        if f.confirmed > 0 && (!f.captured || f.refunded) {
            violations.push(format!(
                "order {order_id}: confirmed without a captured payment"
            ));
        }
        if f.notifications > terminal.min(1) {
            violations.push(format!(
                "order {order_id}: {} notifications for {terminal} terminal states",
                f.notifications
            ));
        }
    }
    report.violations = violations;
    Ok(report)
}

/// Notifications missing for terminal orders: a lagging notifier, not a broken rule.
pub async fn missing_notifications(
    store: &dyn EventStore,
) -> Result<usize, eventum_core::ReadError> {
    missing_notifications_contexts(ContextStores::one(store)).await
}

/// [`missing_notifications`] over the contexts' own stores.
pub async fn missing_notifications_contexts(
    stores: ContextStores<'_>,
) -> Result<usize, eventum_core::ReadError> {
    let mut terminal = std::collections::HashSet::new();
    each_event(stores.orders, "order", |e| {
        if matches!(e.event_type.as_str(), "OrderConfirmed" | "OrderCancelled")
            && let Some(id) = crate::saga::order_id_of(e)
        {
            terminal.insert(id);
        }
    })
    .await?;
    each_event(stores.notifications, "notification", |e| {
        if let Some(id) = crate::saga::order_id_of(e) {
            terminal.remove(&id);
        }
    })
    .await?;
    Ok(terminal.len())
}
