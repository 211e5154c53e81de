//! The shop's operations as the HTTP layer (and tests, and benchmarks) call them:
//! register, log in, place and read orders, read the catalog and notifications, and the
//! admin's catalog changes. Validation happens here, before anything is written.

use eventum_runtime::{CommandMeta, DispatchError};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{CatalogError, LoginError, PlaceOrderError, ReadError, RegisterError};
use crate::orders::OrderEvent;
use crate::products::ProductCommand;
use crate::service::Shop;
use crate::views::{BY_USER, NOTIFICATIONS_MODEL, ORDERS_MODEL};

/// One requested line: `{"productId": 1, "quantity": 2}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemRequest {
    pub product_id: u64,
    pub quantity: i64,
}

/// The body of `POST /api/orders`, field names of seed 004.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRequest {
    #[serde(default)]
    pub order_items: Vec<OrderItemRequest>,
    #[serde(default)]
    pub shipping_address: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
}

impl Shop {
    pub async fn register(&self, username: String, password: String) -> Result<(), RegisterError> {
        let i = &self.inner;
        crate::accounts::register(&i.users, &i.passwords, &i.bus, username, password).await
    }

    /// A token for valid credentials.
    pub async fn login(&self, username: &str, password: String) -> Result<String, LoginError> {
        let i = &self.inner;
        crate::accounts::login(&i.users, &i.passwords, &i.tokens, username, password).await
    }

    pub fn verify_token(&self, token: &str) -> Result<Caller, crate::error::AuthError> {
        self.inner.tokens.verify(token)
    }

    pub fn token_ttl_s(&self) -> u64 {
        self.inner.tokens.ttl_s()
    }

    /// Validates and records an order (PENDING); the flow takes it from there. With an
    /// idempotency key, the order id is derived from it, so a retry names the same order.
    pub async fn place_order(
        &self,
        caller: &Caller,
        request: OrderRequest,
        idempotency_key: Option<Uuid>,
    ) -> Result<String, PlaceOrderError> {
        let priced = {
            let catalog = self.inner.catalog.read().expect("catalog lock");
            crate::checkout::price_order(&catalog, caller, request, idempotency_key)?
        };
        let (command, meta) = (priced.place_command(), priced.meta.clone());
        let order_id = priced.order_id;
        self.inner
            .bus
            .dispatch(command, meta)
            .await
            .map_err(|e| match e {
                DispatchError::Invalid(m) => PlaceOrderError::Invalid(m),
                e => PlaceOrderError::Dispatch(e),
            })?;
        Ok(order_id.to_string())
    }

    /// One order, read from its own stream (always current). Only its owner and admins
    /// may read it.
    pub async fn order(&self, caller: &Caller, order_id: &str) -> Result<Value, ReadError> {
        if Uuid::parse_str(order_id).is_err() {
            return Err(ReadError::NotFound(format!("order {order_id}")));
        }
        let loaded = self.inner.orders.load(order_id).await?;
        let Some(OrderEvent::OrderCreated {
            user_id,
            order_items,
            shipping_address,
            payment_method,
            total_amount,
            created_at,
            ..
        }) = &loaded.state.created
        else {
            return Err(ReadError::NotFound(format!("order {order_id}")));
        };
        if *user_id != caller.username && !caller.is_admin() {
            return Err(ReadError::Forbidden(format!("order {order_id}")));
        }
        let mut doc = json!({
            "orderId": order_id, "userId": user_id, "status": loaded.state.status.as_str(),
            "orderItems": order_items, "shippingAddress": shipping_address,
            "paymentMethod": payment_method, "totalAmount": total_amount, "createdAt": created_at,
        });
        if let Some(reason) = &loaded.state.reason {
            doc["reason"] = json!(reason);
        }
        Ok(doc)
    }

    /// The caller's orders, oldest first (from the `shop-orders` read model, which
    /// follows the log within milliseconds).
    pub fn orders(&self, caller: &Caller, limit: usize) -> Result<Vec<Value>, ReadError> {
        let limit = limit.clamp(1, self.inner.config.list_limit_max);
        let docs =
            self.inner
                .read_models
                .find(ORDERS_MODEL, BY_USER, &caller.username, None, limit)?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    /// The caller's notifications, oldest first.
    pub fn notifications(&self, caller: &Caller, limit: usize) -> Result<Vec<Value>, ReadError> {
        let limit = limit.clamp(1, self.inner.config.list_limit_max);
        let docs = self.inner.read_models.find(
            NOTIFICATIONS_MODEL,
            BY_USER,
            &caller.username,
            None,
            limit,
        )?;
        Ok(docs.into_iter().map(|d| d.doc).collect())
    }

    /// A product with its current stock, read from its stream.
    pub async fn product(&self, product_id: u64) -> Result<Value, ReadError> {
        let loaded = self.inner.products.load(&product_id.to_string()).await?;
        let p = &loaded.state;
        if p.product_id.is_none() {
            return Err(ReadError::NotFound(format!("product {product_id}")));
        }
        Ok(json!({
            "productId": product_id, "name": p.name, "description": p.description,
            "price": p.price, "stock": p.stock, "reserved": p.reserved(),
        }))
    }

    /// The catalog, up to `list_limit_max` products from `from_id`.
    pub async fn products(&self, from_id: u64) -> Result<Vec<Value>, ReadError> {
        let ids: Vec<u64> = self
            .catalog()
            .range(from_id..)
            .take(self.inner.config.list_limit_max)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.product(id).await?);
        }
        Ok(out)
    }

    /// Sets a product's available stock (admin).
    pub async fn set_stock(&self, product_id: u64, stock: i64) -> Result<(), CatalogError> {
        if !self.catalog().contains_key(&product_id) {
            return Err(CatalogError::NotFound(product_id));
        }
        let command = ProductCommand::SetProductStock { product_id, stock };
        self.inner
            .bus
            .dispatch(command, CommandMeta::new())
            .await
            .map_err(|e| match e {
                DispatchError::Invalid(m) => CatalogError::Invalid(m),
                e => e.into(),
            })?;
        Ok(())
    }
}
