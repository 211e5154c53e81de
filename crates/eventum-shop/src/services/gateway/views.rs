//! The gateway's read models, kept from broker messages: `gw-orders` (one document per
//! order, looked up by user), `gw-notifications` (by user) and `gw-products` (the
//! catalog with its current stock). Messages of different topics arrive in no common
//! order, so every fold commutes: a terminal status is never overwritten by the order's
//! creation, and a product's stock is taken only from an event newer (by its stream
//! version) than the one the document holds.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use eventum_projections::{Lookup, ReadModelStore, StoreTx, TxError};
use serde_json::{Value, json};

use crate::service::CatalogEntry;
use crate::services::inbound::BusMessage;
use crate::views::notification_json;

pub const ORDERS: &str = "gw-orders";
pub const NOTIFICATIONS: &str = "gw-notifications";
pub const PRODUCTS: &str = "gw-products";
pub const BY_USER: &str = "by_user";

/// The event types the gateway's read models follow.
pub const FOLLOWS: &[&str] = &[
    "OrderCreated",
    "OrderConfirmed",
    "OrderCancelled",
    "NotificationCreated",
    "ProductCreated",
    "ProductStockSet",
    "ProductStockReserved",
    "ProductStockReleased",
];

/// Names and prices of the products, for pricing orders without a read.
pub type Catalog = Arc<RwLock<BTreeMap<u64, CatalogEntry>>>;

/// Defines the read models (idempotent).
pub fn define(store: &ReadModelStore) -> Result<(), TxError> {
    store.define_model(ORDERS, vec![Lookup::field(BY_USER, "/userId")])?;
    store.define_model(NOTIFICATIONS, vec![Lookup::field(BY_USER, "/userId")])?;
    store.define_model(PRODUCTS, Vec::new())
}

/// The catalog as the products read model has it.
pub fn load_catalog(store: &ReadModelStore) -> anyhow::Result<BTreeMap<u64, CatalogEntry>> {
    let mut catalog = BTreeMap::new();
    let page = store.config().query_limit_max;
    let mut from: Option<String> = None;
    loop {
        let docs = store.list(PRODUCTS, from.as_deref(), page)?;
        let full = docs.len() == page;
        for d in &docs {
            if let (Some(id), Some(name)) = (d.doc["productId"].as_u64(), d.doc["name"].as_str()) {
                let price = d.doc["price"].as_i64().unwrap_or_default();
                catalog.insert(
                    id,
                    CatalogEntry {
                        name: name.to_owned(),
                        price,
                    },
                );
            }
        }
        if !full {
            return Ok(catalog);
        }
        from = docs.last().map(|d| format!("{}\0", d.key));
    }
}

/// Product documents are keyed so that key order is id order.
pub fn product_key(product_id: u64) -> String {
    format!("{product_id:020}")
}

/// A product document as the API shows it (without the fold's bookkeeping).
pub fn product_json(doc: &Value) -> Value {
    json!({
        "productId": doc["productId"], "name": doc["name"], "description": doc["description"],
        "price": doc["price"], "stock": doc["stock"],
    })
}

/// Folds one message into the read models.
pub fn apply(catalog: &Catalog, tx: &mut StoreTx<'_>, m: &BusMessage) -> Result<(), TxError> {
    let data = m.data();
    let order_id = data["orderId"].as_str().unwrap_or_default();
    match m.event_type.as_str() {
        "OrderCreated" => {
            let mut doc = tx.get(ORDERS, order_id)?.unwrap_or_else(|| json!({}));
            for field in [
                "orderId",
                "userId",
                "orderItems",
                "shippingAddress",
                "paymentMethod",
                "totalAmount",
                "createdAt",
            ] {
                doc[field] = data[field].clone();
            }
            if doc["status"].is_null() {
                doc["status"] = json!("PENDING");
                doc["updatedAt"] = json!(m.time);
            }
            tx.put(ORDERS, order_id, doc)
        }
        "OrderConfirmed" | "OrderCancelled" => {
            let mut doc = tx
                .get(ORDERS, order_id)?
                .unwrap_or_else(|| json!({"orderId": order_id, "userId": data["userId"]}));
            if doc["status"] == "CONFIRMED" || doc["status"] == "CANCELLED" {
                return Ok(());
            }
            if m.event_type == "OrderConfirmed" {
                doc["status"] = json!("CONFIRMED");
            } else {
                doc["status"] = json!("CANCELLED");
                doc["reason"] = data["reason"].clone();
            }
            doc["updatedAt"] = json!(m.time);
            tx.put(ORDERS, order_id, doc)
        }
        "NotificationCreated" => {
            // Keyed by position in the notifier's log: listings come out in order.
            let key = m
                .position
                .map_or_else(|| m.id.to_string(), |p| format!("{p:020}"));
            let doc = notification_json(
                &m.id.to_string(),
                order_id,
                data["userId"].as_str().unwrap_or_default(),
                data["kind"].as_str().unwrap_or_default(),
                data["message"].as_str().unwrap_or_default(),
                &m.time,
            );
            tx.put(NOTIFICATIONS, &key, doc)
        }
        _ => apply_product(catalog, tx, m, &data),
    }
}

fn apply_product(
    catalog: &Catalog,
    tx: &mut StoreTx<'_>,
    m: &BusMessage,
    data: &Value,
) -> Result<(), TxError> {
    let Some(product_id) = data["productId"].as_u64() else {
        return Ok(());
    };
    let key = product_key(product_id);
    let mut doc = tx
        .get(PRODUCTS, &key)?
        .unwrap_or_else(|| json!({"productId": product_id}));
    let version = m.version.unwrap_or_default();
    let newer = doc["version"].as_u64().is_none_or(|v| version > v);
    let stock = match m.event_type.as_str() {
        "ProductCreated" => {
            doc["name"] = data["name"].clone();
            doc["description"] = data["description"].clone();
            doc["price"] = data["price"].clone();
            let entry = CatalogEntry {
                name: data["name"].as_str().unwrap_or_default().to_owned(),
                price: data["price"].as_i64().unwrap_or_default(),
            };
            catalog
                .write()
                .expect("catalog lock")
                .insert(product_id, entry);
            data["stock"].clone()
        }
        "ProductStockSet" => {
            if newer {
                // Lets the admin's request know its change arrived.
                doc["stockSetBy"] = json!(m.correlation_id.map(|c| c.to_string()));
            }
            data["stock"].clone()
        }
        _ => data["stockAfter"].clone(),
    };
    if newer {
        doc["stock"] = stock;
        doc["version"] = json!(version);
    }
    tx.put(PRODUCTS, &key, doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use uuid::Uuid;

    fn message(event_type: &str, version: u64, data: Value) -> BusMessage {
        BusMessage {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            source_stream: "x-1".into(),
            correlation_id: None,
            version: Some(version),
            position: Some(version),
            time: "2026-01-01T00:00:00Z".into(),
            body: Bytes::from(data.to_string()),
            redelivered: false,
        }
    }

    fn fold(messages: &[BusMessage]) -> (ReadModelStore, Catalog, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = ReadModelStore::open(dir.path(), Default::default()).unwrap();
        define(&store).unwrap();
        let catalog = Catalog::default();
        store
            .transaction(|tx| -> Result<(), TxError> {
                for m in messages {
                    apply(&catalog, tx, m)?;
                }
                Ok(())
            })
            .unwrap();
        (store, catalog, dir)
    }

    #[test]
    fn an_order_ends_terminal_whatever_the_arrival_order() {
        let created = message(
            "OrderCreated",
            0,
            json!({"orderId": "o1", "userId": "alice", "orderItems": [], "totalAmount": 5}),
        );
        let cancelled = message(
            "OrderCancelled",
            1,
            json!({"orderId": "o1", "userId": "alice", "reason": "no stock"}),
        );
        for order in [
            vec![created.clone(), cancelled.clone()],
            vec![cancelled, created],
        ] {
            let (store, _, _dir) = fold(&order);
            let doc = store.get(ORDERS, "o1").unwrap().unwrap();
            assert_eq!(doc["status"], "CANCELLED");
            assert_eq!(doc["reason"], "no stock");
            assert_eq!(doc["totalAmount"], 5);
            let mine = store.find(ORDERS, BY_USER, "alice", None, 10).unwrap();
            assert_eq!(mine.len(), 1);
        }
    }

    #[test]
    fn stock_comes_from_the_newest_product_event() {
        let created = message(
            "ProductCreated",
            0,
            json!({"productId": 7, "name": "Mouse", "description": "", "price": 100, "stock": 10}),
        );
        let reserved = message(
            "ProductStockReserved",
            1,
            json!({"productId": 7, "orderId": "o", "quantity": 2, "stockAfter": 8}),
        );
        let released = message(
            "ProductStockReleased",
            2,
            json!({"productId": 7, "orderId": "o", "quantity": 2, "stockAfter": 10}),
        );
        let (store, catalog, _dir) = fold(&[released, created, reserved]);
        let doc = store.get(PRODUCTS, &product_key(7)).unwrap().unwrap();
        assert_eq!(product_json(&doc)["stock"], 10);
        assert_eq!(product_json(&doc)["name"], "Mouse");
        assert_eq!(catalog.read().unwrap()[&7].price, 100);
        assert_eq!(load_catalog(&store).unwrap()[&7].name, "Mouse");
    }
}
