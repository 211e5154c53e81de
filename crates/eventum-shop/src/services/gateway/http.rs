//! The gateway's routes: the in-process shop's REST API (`/api/auth`, `/api/products`,
//! `/api/orders`, `/api/notifications`) and `/ws/notifications`, with the same JSON,
//! status codes and JWT rules. Differences a client can see: `POST /api/products` and
//! `PUT /api/products/{id}/stock` answer `202 {"productId", "status": "PENDING"}` when the
//! products service has not carried the change out within the gateway's wait, and a
//! product has no `reserved` field (the gateway sees stock, not reservations).

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use eventum_core::ErrorCode;
use eventum_server::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Gateway;
use super::ops::CatalogChange;
use crate::auth::Caller;
use crate::http::orders_http::idempotency_key;
use crate::http::{REQUEST_BYTES_MAX, api, bearer, body};
use crate::ops::OrderRequest;

/// The gateway's routes.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/products", get(list_products).post(create_product))
        .route("/api/products/{id}", get(get_product))
        .route("/api/products/{id}/stock", put(set_stock))
        .route("/api/orders", post(place).get(list_orders))
        .route("/api/orders/{order_id}", get(get_order))
        .route("/api/notifications", get(notifications))
        .route("/ws/notifications", get(super::ws::notifications))
        .route("/health", get(health))
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .with_state(gateway)
}

impl FromRequestParts<Gateway> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gateway: &Gateway) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "an Authorization: Bearer token is required",
            )
        })?;
        gateway.verify_token(token).map_err(|e| api(e.code(), e))
    }
}

/// The caller, who must be an admin.
struct Admin;

impl FromRequestParts<Gateway> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gateway: &Gateway) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, gateway).await?;
        if !caller.is_admin() {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "this endpoint needs the ADMIN role",
            ));
        }
        Ok(Admin)
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "service": "gateway"}))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn register(
    State(gateway): State<Gateway>,
    request: Result<Json<Credentials>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = body(request)?;
    gateway
        .register(c.username.clone(), c.password)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"userId": c.username, "username": c.username})),
    ))
}

async fn login(
    State(gateway): State<Gateway>,
    request: Result<Json<Credentials>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let c = body(request)?;
    let token = gateway
        .login(&c.username, c.password)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(json!({
        "token": token, "tokenType": "Bearer", "expiresIn": gateway.token_ttl_s(),
    })))
}

#[derive(Deserialize)]
struct From {
    #[serde(default)]
    from: u64,
}

async fn list_products(
    State(gateway): State<Gateway>,
    Query(q): Query<From>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let products = gateway.products(q.from).map_err(|e| api(e.code(), e))?;
    Ok(Json(products))
}

fn product_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, format!("product {raw} not found")))
}

async fn get_product(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let product = gateway
        .product(product_id(&id)?)
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(product))
}

#[derive(Deserialize)]
struct NewProduct {
    name: String,
    #[serde(default)]
    description: String,
    price: i64,
    #[serde(default)]
    stock: i64,
}

fn change(done: StatusCode, c: CatalogChange) -> (StatusCode, Json<Value>) {
    match c {
        CatalogChange::Done(product) => (done, Json(product)),
        CatalogChange::Pending(id) => (
            StatusCode::ACCEPTED,
            Json(json!({"productId": id, "status": "PENDING"})),
        ),
    }
}

async fn create_product(
    State(gateway): State<Gateway>,
    _admin: Admin,
    request: Result<Json<NewProduct>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = body(request)?;
    let outcome = gateway
        .create_product(p.name, p.description, p.price, p.stock)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok(change(StatusCode::CREATED, outcome))
}

#[derive(Deserialize)]
struct StockBody {
    stock: i64,
}

async fn set_stock(
    State(gateway): State<Gateway>,
    _admin: Admin,
    Path(id): Path<String>,
    request: Result<Json<StockBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = product_id(&id)?;
    let s = body(request)?;
    let outcome = gateway
        .set_stock(id, s.stock)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok(change(StatusCode::OK, outcome))
}

async fn place(
    State(gateway): State<Gateway>,
    caller: Caller,
    headers: HeaderMap,
    request: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = body(request)?;
    let key = idempotency_key(&headers)?;
    let order_id = gateway
        .place_order(&caller, request, key)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"orderId": order_id, "status": "PENDING"})),
    ))
}

async fn get_order(
    State(gateway): State<Gateway>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order = gateway
        .order(&caller, &order_id)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(order))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn list_orders(
    State(gateway): State<Gateway>,
    caller: Caller,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let limit = q.limit.unwrap_or(gateway.list_limit_max());
    let orders = gateway
        .orders(&caller, limit)
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(orders))
}

async fn notifications(
    State(gateway): State<Gateway>,
    caller: Caller,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let limit = q.limit.unwrap_or(gateway.list_limit_max());
    let list = gateway
        .notifications(&caller, limit)
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(list))
}
