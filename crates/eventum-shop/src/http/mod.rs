//! The shop's HTTP API under `/api` and the WebSocket `/ws/notifications`. Every error is
//! an `eventum_server::ApiError` (one code → status table); the caller comes from a JWT
//! Bearer token (401 without a valid one, 403 for another user's order or an admin
//! endpoint).

mod auth_http;
mod catalog_http;
pub(crate) mod orders_http;
mod ws;

use axum::Json;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::rejection::JsonRejection;
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use eventum_core::ErrorCode;
use eventum_server::ApiError;

use crate::auth::Caller;
use crate::service::Shop;

/// Largest request body the shop accepts (an order of 100 lines is ~5 KiB).
pub const REQUEST_BYTES_MAX: usize = 64 * 1024;

/// The shop's routes, to merge into a server.
pub fn router(shop: Shop) -> Router {
    Router::new()
        .route("/api/auth/register", post(auth_http::register))
        .route("/api/auth/login", post(auth_http::login))
        .route(
            "/api/products",
            get(catalog_http::list).post(catalog_http::create),
        )
        .route("/api/products/{id}", get(catalog_http::get_one))
        .route("/api/products/{id}/stock", put(catalog_http::set_stock))
        .route(
            "/api/orders",
            post(orders_http::place).get(orders_http::list),
        )
        .route("/api/orders/{order_id}", get(orders_http::get_one))
        .route("/api/notifications", get(orders_http::notifications))
        .route("/ws/notifications", get(ws::notifications))
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .with_state(shop)
}

/// A request body as JSON, with a JSON 400 for anything else.
pub(crate) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|e| ApiError::malformed(e.body_text()))
}

/// An operation's error as a response: its code picks the status.
pub(crate) fn api<E: std::fmt::Display>(code: ErrorCode, e: E) -> ApiError {
    ApiError::new(code, e.to_string())
}

pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

impl FromRequestParts<Shop> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shop: &Shop) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "an Authorization: Bearer token is required",
            )
        })?;
        shop.verify_token(token).map_err(|e| api(e.code(), e))
    }
}

/// The caller, who must be an admin.
pub(crate) struct Admin;

impl FromRequestParts<Shop> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shop: &Shop) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, shop).await?;
        if !caller.is_admin() {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "this endpoint needs the ADMIN role",
            ));
        }
        Ok(Admin)
    }
}
