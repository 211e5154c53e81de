//! The gateway's operations, as its HTTP layer calls them: accounts (its own users),
//! orders (recorded as requests, read from the orders read model or, before the orders
//! service has answered, from the request itself), the catalog (read model) and the
//! admin's catalog changes (requests that wait, bounded, for the products service).

use std::time::{Duration, Instant};

use eventum_core::{EventStore, ReadDirection, ReadError as StoreReadError, StreamName};
use eventum_runtime::Command;
use eventum_runtime::codec::decode_event;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Gateway;
use super::requests::{self, GatewayEvent, PRODUCT_REQUEST_CATEGORY, Recorded};
use super::views::{self, BY_USER, NOTIFICATIONS, ORDERS, PRODUCTS};
use crate::accounts;
use crate::auth::Caller;
use crate::checkout::price_order;
use crate::error::{
    AuthError, CatalogError, LoginError, PlaceOrderError, ReadError, RegisterError,
};
use crate::ops::OrderRequest;
use crate::products::ProductCommand;

/// How an admin's catalog change ended within the wait.
#[derive(Debug)]
pub enum CatalogChange {
    /// The products service carried it out: the product as it is now.
    Done(Value),
    /// Recorded, not yet seen carried out (the products service is slow or down).
    Pending(u64),
}

/// The highest product id the gateway's log has requested (0 for none).
pub(super) async fn last_requested_product(store: &dyn EventStore) -> anyhow::Result<u64> {
    let page = store.limits().read_events_max;
    let (mut from, mut last) = (0, 0);
    loop {
        let events = store
            .read_category(PRODUCT_REQUEST_CATEGORY, from, page)
            .await?;
        for e in &events {
            if let Ok(GatewayEvent::ProductCreationRequested { product_id, .. }) = decode_event(e) {
                last = last.max(product_id);
            }
            from = e.position + 1;
        }
        if events.len() < page {
            return Ok(last);
        }
    }
}

impl Gateway {
    pub async fn register(&self, username: String, password: String) -> Result<(), RegisterError> {
        let i = &self.inner;
        accounts::register(&i.users, &i.passwords, &i.bus, username, password).await
    }

    pub async fn login(&self, username: &str, password: String) -> Result<String, LoginError> {
        let i = &self.inner;
        accounts::login(&i.users, &i.passwords, &i.tokens, username, password).await
    }

    pub fn verify_token(&self, token: &str) -> Result<Caller, AuthError> {
        self.inner.tokens.verify(token)
    }

    pub fn token_ttl_s(&self) -> u64 {
        self.inner.tokens.ttl_s()
    }

    pub fn list_limit_max(&self) -> usize {
        self.inner.config.list_limit_max
    }

    pub(super) async fn ensure_admin(&self) -> anyhow::Result<()> {
        let i = &self.inner;
        accounts::ensure_admin(
            &i.users,
            &i.passwords,
            &i.bus,
            &i.config.admin_username,
            &i.config.admin_password,
        )
        .await
    }

    /// Checks, prices and records an order request; the orders service takes it from
    /// there. Returns the order id.
    pub async fn place_order(
        &self,
        caller: &Caller,
        request: OrderRequest,
        idempotency_key: Option<Uuid>,
    ) -> Result<String, PlaceOrderError> {
        let priced = {
            let catalog = self.inner.catalog.read().expect("catalog lock");
            price_order(&catalog, caller, request, idempotency_key)?
        };
        let order_id = priced.order_id.to_string();
        let event = GatewayEvent::OrderRequested {
            order_id: order_id.clone(),
            user_id: priced.user_id,
            order_items: priced.lines,
            shipping_address: priced.shipping_address.trim().to_owned(),
            payment_method: priced.payment_method,
            total_amount: priced.total_amount,
            created_at: priced.created_at,
        };
        // The event id is derived from the order id: a retried key is recognised by the
        // store, and its first content stands.
        let stream = format!("{}-{order_id}", requests::CHECKOUT_CATEGORY);
        requests::record(
            &self.inner.store,
            &stream,
            &event,
            "requested",
            true,
            priced.meta.correlation_id,
        )
        .await?;
        Ok(order_id)
    }

    /// One order: from the read model once the orders service has created it, else from
    /// the gateway's own request (PENDING). Only its owner and admins may read it.
    pub async fn order(&self, caller: &Caller, order_id: &str) -> Result<Value, ReadError> {
        if Uuid::parse_str(order_id).is_err() {
            return Err(ReadError::NotFound(format!("order {order_id}")));
        }
        let viewed = self.inner.read_models.get(ORDERS, order_id)?;
        let doc = match viewed {
            Some(doc) if !doc["orderItems"].is_null() => doc,
            // Not created yet as far as the gateway knows (or only its end is known).
            other => match self.requested(order_id).await? {
                Some(mut doc) => {
                    if let Some(ended) = other {
                        doc["status"] = ended["status"].clone();
                        if !ended["reason"].is_null() {
                            doc["reason"] = ended["reason"].clone();
                        }
                    }
                    doc
                }
                None => return Err(ReadError::NotFound(format!("order {order_id}"))),
            },
        };
        if doc["userId"] != caller.username.as_str() && !caller.is_admin() {
            return Err(ReadError::Forbidden(format!("order {order_id}")));
        }
        Ok(doc)
    }

    /// The order as the gateway recorded its request.
    async fn requested(&self, order_id: &str) -> Result<Option<Value>, ReadError> {
        let stream = StreamName::new(format!("{}-{order_id}", requests::CHECKOUT_CATEGORY))
            .map_err(|e| ReadError::Invalid(e.to_string()))?;
        let events = match self
            .inner
            .store
            .read_stream(&stream, None, ReadDirection::Forward, 1)
            .await
        {
            Ok(events) => events,
            Err(StoreReadError::StreamNotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(ReadError::Dispatch(
                    eventum_runtime::DispatchError::Storage(eventum_core::StorageError::new(
                        eventum_core::StorageErrorKind::Io,
                        e.to_string(),
                    )),
                ));
            }
        };
        let Some(Ok(GatewayEvent::OrderRequested {
            order_id,
            user_id,
            order_items,
            shipping_address,
            payment_method,
            total_amount,
            created_at,
        })) = events.first().map(decode_event)
        else {
            return Ok(None);
        };
        Ok(Some(json!({
            "orderId": order_id, "userId": user_id, "status": "PENDING",
            "orderItems": order_items, "shippingAddress": shipping_address,
            "paymentMethod": payment_method, "totalAmount": total_amount, "createdAt": created_at,
        })))
    }

    /// The caller's orders, oldest first (as far as the orders service has answered).
    pub fn orders(&self, caller: &Caller, limit: usize) -> Result<Vec<Value>, ReadError> {
        self.by_user(ORDERS, caller, limit)
    }

    /// The caller's notifications, oldest first.
    pub fn notifications(&self, caller: &Caller, limit: usize) -> Result<Vec<Value>, ReadError> {
        self.by_user(NOTIFICATIONS, caller, limit)
    }

    fn by_user(&self, model: &str, caller: &Caller, limit: usize) -> Result<Vec<Value>, ReadError> {
        let limit = limit.clamp(1, self.inner.config.list_limit_max);
        let docs = self
            .inner
            .read_models
            .find(model, BY_USER, &caller.username, None, limit)?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    fn product_doc(&self, product_id: u64) -> Result<Option<Value>, ReadError> {
        let doc = self
            .inner
            .read_models
            .get(PRODUCTS, &views::product_key(product_id))?;
        Ok(doc.filter(|d| !d["name"].is_null()))
    }

    /// A product with its stock as the products service last reported it.
    pub fn product(&self, product_id: u64) -> Result<Value, ReadError> {
        self.product_doc(product_id)?
            .map(|d| views::product_json(&d))
            .ok_or_else(|| ReadError::NotFound(format!("product {product_id}")))
    }

    /// The catalog, up to `list_limit_max` products from `from_id`.
    pub fn products(&self, from_id: u64) -> Result<Vec<Value>, ReadError> {
        let limit = self.inner.config.list_limit_max;
        let from = views::product_key(from_id);
        let docs = self.inner.read_models.list(PRODUCTS, Some(&from), limit)?;
        Ok(docs
            .iter()
            .filter(|d| !d.doc["name"].is_null())
            .map(|d| views::product_json(&d.doc))
            .collect())
    }

    /// Records the creation of a product under the next free id.
    pub(super) async fn request_product(
        &self,
        name: String,
        description: String,
        price: i64,
        stock: i64,
    ) -> Result<u64, CatalogError> {
        let mut last = self.inner.last_product_id.lock().await;
        let known = self
            .inner
            .catalog
            .read()
            .expect("catalog lock")
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        let mut product_id = (*last).max(known) + 1;
        loop {
            let event = GatewayEvent::ProductCreationRequested {
                product_id,
                name: name.trim().to_owned(),
                description: description.clone(),
                price,
                stock,
            };
            let stream = format!("{PRODUCT_REQUEST_CATEGORY}-{product_id}");
            let recorded = requests::record(
                &self.inner.store,
                &stream,
                &event,
                "create",
                true,
                Uuid::now_v7(),
            )
            .await?;
            *last = product_id;
            match recorded {
                Recorded::Yes => return Ok(product_id),
                // Requested before (by an earlier run of this gateway): the next id.
                Recorded::Taken => product_id += 1,
            }
        }
    }

    /// Polls `check` until it answers or the catalog wait is over.
    async fn wait_for(
        &self,
        check: impl Fn() -> Result<Option<Value>, ReadError>,
    ) -> Result<Option<Value>, ReadError> {
        let deadline = Instant::now() + Duration::from_millis(self.inner.config.catalog_wait_ms);
        loop {
            if let Some(v) = check()? {
                return Ok(Some(v));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Creates a product (admin): recorded, then awaited in the catalog.
    pub async fn create_product(
        &self,
        name: String,
        description: String,
        price: i64,
        stock: i64,
    ) -> Result<CatalogChange, CatalogError> {
        let command = ProductCommand::CreateProduct {
            product_id: 0,
            name: name.clone(),
            description: description.clone(),
            price,
            stock,
        };
        command.validate().map_err(CatalogError::Invalid)?;
        let product_id = self
            .request_product(name, description, price, stock)
            .await?;
        let seen = self
            .wait_for(|| {
                Ok(self
                    .product_doc(product_id)?
                    .map(|d| views::product_json(&d)))
            })
            .await
            .map_err(|e| CatalogError::Invalid(e.to_string()))?;
        Ok(seen.map_or(CatalogChange::Pending(product_id), CatalogChange::Done))
    }

    /// Sets a product's available stock (admin): recorded, then awaited.
    pub async fn set_stock(
        &self,
        product_id: u64,
        stock: i64,
    ) -> Result<CatalogChange, CatalogError> {
        let command = ProductCommand::SetProductStock { product_id, stock };
        command.validate().map_err(CatalogError::Invalid)?;
        let before = self
            .product_doc(product_id)
            .map_err(|e| CatalogError::Invalid(e.to_string()))?
            .ok_or(CatalogError::NotFound(product_id))?;
        let request = Uuid::now_v7();
        let event = GatewayEvent::ProductStockChangeRequested { product_id, stock };
        let stream = format!("{PRODUCT_REQUEST_CATEGORY}-{product_id}");
        requests::record(
            &self.inner.store,
            &stream,
            &event,
            &request.to_string(),
            false,
            request,
        )
        .await?;
        // The same stock changes nothing, so no answer will come.
        if before["stock"] == stock {
            return Ok(CatalogChange::Done(views::product_json(&before)));
        }
        let by = request.to_string();
        let seen = self
            .wait_for(|| {
                Ok(self
                    .product_doc(product_id)?
                    .filter(|d| d["stockSetBy"] == by.as_str())
                    .map(|d| views::product_json(&d)))
            })
            .await
            .map_err(|e| CatalogError::Invalid(e.to_string()))?;
        Ok(seen.map_or(CatalogChange::Pending(product_id), CatalogChange::Done))
    }
}
