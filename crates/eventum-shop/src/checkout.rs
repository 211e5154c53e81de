//! Checking and pricing an order request against the catalog, before anything is
//! written: the rules of `POST /api/orders` that the in-process shop and the gateway
//! process share (lines, address, payment method, known products, the total), and the
//! order's id (derived from an idempotency key when the caller sends one).

use std::collections::BTreeMap;

use eventum_core::event::format_rfc3339_us;
use eventum_runtime::CommandMeta;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::PlaceOrderError;
use crate::ops::OrderRequest;
use crate::orders::{self, OrderCommand, OrderLine};
use crate::service::CatalogEntry;

/// A valid, priced order, ready to be recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct PricedOrder {
    pub order_id: Uuid,
    /// The command's id: the order id when an idempotency key named it.
    pub meta: CommandMeta,
    pub user_id: String,
    pub lines: Vec<OrderLine>,
    pub shipping_address: String,
    pub payment_method: String,
    pub total_amount: i64,
    /// RFC 3339, microseconds.
    pub created_at: String,
}

impl PricedOrder {
    pub fn place_command(&self) -> OrderCommand {
        OrderCommand::PlaceOrder {
            order_id: self.order_id.to_string(),
            user_id: self.user_id.clone(),
            order_items: self.lines.clone(),
            shipping_address: self.shipping_address.clone(),
            payment_method: self.payment_method.clone(),
            total_amount: self.total_amount,
            created_at: self.created_at.clone(),
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

/// Checks `request` and prices it with `catalog`. With an idempotency key, the order id
/// is derived from it and the caller, so a retry names the same order (and two users
/// sending the same key place two orders).
pub fn price_order(
    catalog: &BTreeMap<u64, CatalogEntry>,
    caller: &Caller,
    request: OrderRequest,
    idempotency_key: Option<Uuid>,
) -> Result<PricedOrder, PlaceOrderError> {
    orders::check_lines(
        request
            .order_items
            .iter()
            .map(|i| (i.product_id, i.quantity)),
    )
    .map_err(PlaceOrderError::Invalid)?;
    let shipping_address = request.shipping_address.unwrap_or_default();
    orders::check_address(&shipping_address).map_err(PlaceOrderError::Invalid)?;
    let payment_method = request.payment_method.unwrap_or_default();
    orders::check_payment_method(&payment_method).map_err(PlaceOrderError::Invalid)?;
    let lines = request
        .order_items
        .iter()
        .enumerate()
        .map(|(line, item)| match catalog.get(&item.product_id) {
            Some(entry) => Ok(OrderLine {
                product_id: item.product_id,
                quantity: item.quantity,
                unit_price: entry.price,
            }),
            None => Err(PlaceOrderError::UnknownProduct {
                line,
                product_id: item.product_id,
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let total_amount = lines
        .iter()
        .try_fold(0i64, |sum, l| {
            l.quantity
                .checked_mul(l.unit_price)
                .and_then(|x| sum.checked_add(x))
        })
        .ok_or_else(|| PlaceOrderError::Invalid("totalAmount overflows".into()))?;
    let (order_id, meta) = match idempotency_key {
        Some(key) => {
            let id = Uuid::new_v5(&key, caller.username.as_bytes());
            (id, CommandMeta::with_id(id))
        }
        None => (Uuid::now_v7(), CommandMeta::new()),
    };
    Ok(PricedOrder {
        order_id,
        meta,
        user_id: caller.username.clone(),
        lines,
        shipping_address,
        payment_method,
        total_amount,
        created_at: format_rfc3339_us(now_us()),
    })
}
