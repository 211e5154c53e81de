//! `POST /api/auth/register` and `POST /api/auth/login`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use eventum_server::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{api, body};
use crate::service::Shop;

#[derive(Deserialize)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

/// → `201 {"userId", "username"}`; 409 for a taken name, 400 for a bad one.
pub(crate) async fn register(
    State(shop): State<Shop>,
    request: Result<Json<Credentials>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = body(request)?;
    shop.register(c.username.clone(), c.password)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"userId": c.username, "username": c.username})),
    ))
}

/// → `200 {"token", "tokenType": "Bearer", "expiresIn"}`; 401 for bad credentials.
pub(crate) async fn login(
    State(shop): State<Shop>,
    request: Result<Json<Credentials>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let c = body(request)?;
    let token = shop
        .login(&c.username, c.password)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(json!({
        "token": token, "tokenType": "Bearer", "expiresIn": shop.token_ttl_s(),
    })))
}
