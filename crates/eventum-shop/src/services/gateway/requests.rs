//! What the gateway writes to its own log, for the relay to carry to the owning service:
//! an accepted order (`OrderRequested` in `checkout-{orderId}`, for the orders service)
//! and the admin's catalog changes (`ProductCreationRequested` and
//! `ProductStockChangeRequested` in `productrequest-{productId}`, for the products
//! service). Each event's data is exactly the fields of the command it asks for. A
//! request is durable once appended: the 202 promises only that.

use std::sync::Arc;

use eventum_core::{AppendError, EventStore, ExpectedVersion, StreamName};
use eventum_runtime::DispatchError;
use eventum_runtime::codec::encode_event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::orders::OrderLine;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum GatewayEvent {
    /// `PlaceOrder`'s fields.
    OrderRequested {
        order_id: String,
        user_id: String,
        order_items: Vec<OrderLine>,
        shipping_address: String,
        payment_method: String,
        total_amount: i64,
        created_at: String,
    },
    /// `CreateProduct`'s fields.
    ProductCreationRequested {
        product_id: u64,
        name: String,
        description: String,
        price: i64,
        stock: i64,
    },
    /// `SetProductStock`'s fields.
    ProductStockChangeRequested { product_id: u64, stock: i64 },
}

pub const CHECKOUT_CATEGORY: &str = "checkout";
pub const PRODUCT_REQUEST_CATEGORY: &str = "productrequest";

/// The namespace of the ids of request events.
const REQUEST_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7368_6f70_2d67_6174_6577_6179_2d72_7131);

/// How a request append went.
#[derive(Debug)]
pub enum Recorded {
    /// Appended now, or found already appended with the same id (a retried request).
    Yes,
    /// The stream holds another request already (`NoStream` expected).
    Taken,
}

fn storage(e: AppendError) -> DispatchError {
    match e {
        AppendError::Storage(s) => DispatchError::Storage(s),
        AppendError::InvalidInput(i) => DispatchError::Invalid(i.to_string()),
        other => DispatchError::Invalid(other.to_string()),
    }
}

/// Appends `event` to `stream`. With `first`, the stream must not exist (it claims an
/// id); the event's id is derived from the stream and `id_seed`, so the same request
/// appended again is recognised by the store instead of written twice.
pub async fn record(
    store: &Arc<dyn EventStore>,
    stream: &str,
    event: &GatewayEvent,
    id_seed: &str,
    first: bool,
    correlation_id: Uuid,
) -> Result<Recorded, DispatchError> {
    let name = StreamName::new(stream).map_err(|e| DispatchError::Invalid(e.to_string()))?;
    let id = Uuid::new_v5(
        &REQUEST_ID_NAMESPACE,
        format!("{stream}/{id_seed}").as_bytes(),
    );
    let new = encode_event(event)
        .map_err(|e| DispatchError::Invalid(e.to_string()))?
        .with_id(id)
        .with_correlation_id(correlation_id)
        .with_causation_id(correlation_id);
    let expected = if first {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Any
    };
    match store.append(&name, expected, vec![new]).await {
        Ok(_) => Ok(Recorded::Yes),
        Err(AppendError::WrongExpectedVersion { .. }) if first => Ok(Recorded::Taken),
        Err(e) => Err(storage(e)),
    }
}
