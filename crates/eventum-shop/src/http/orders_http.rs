//! Orders and notifications of the caller: `POST /api/orders` (202 at once; the flow
//! runs after), `GET /api/orders/{orderId}`, `GET /api/orders`, `GET /api/notifications`.
//! An `Idempotency-Key` header (a UUID) makes a retried order the same order.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use eventum_server::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{api, body};
use crate::auth::Caller;
use crate::ops::OrderRequest;
use crate::service::Shop;

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid("Idempotency-Key must be a UUID")),
    }
}

pub(crate) async fn place(
    State(shop): State<Shop>,
    caller: Caller,
    headers: HeaderMap,
    request: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = body(request)?;
    let key = idempotency_key(&headers)?;
    let order_id = shop
        .place_order(&caller, request, key)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"orderId": order_id, "status": "PENDING"})),
    ))
}

pub(crate) async fn get_one(
    State(shop): State<Shop>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order = shop
        .order(&caller, &order_id)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(order))
}

#[derive(Deserialize)]
pub(crate) struct Limit {
    limit: Option<usize>,
}

pub(crate) async fn list(
    State(shop): State<Shop>,
    caller: Caller,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let limit = q.limit.unwrap_or(shop.config().list_limit_max);
    let orders = shop.orders(&caller, limit).map_err(|e| api(e.code(), e))?;
    Ok(Json(orders))
}

pub(crate) async fn notifications(
    State(shop): State<Shop>,
    caller: Caller,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let limit = q.limit.unwrap_or(shop.config().list_limit_max);
    let list = shop
        .notifications(&caller, limit)
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(list))
}
