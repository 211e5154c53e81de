//! The catalog: `GET /api/products[?from=id]`, `GET /api/products/{id}` (public), and the
//! admin's `POST /api/products` and `PUT /api/products/{id}/stock`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use eventum_core::ErrorCode;
use eventum_server::ApiError;
use serde::Deserialize;
use serde_json::Value;

use super::{Admin, api, body};
use crate::service::Shop;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    from: u64,
}

pub(crate) async fn list(
    State(shop): State<Shop>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let products = shop.products(q.from).await.map_err(|e| api(e.code(), e))?;
    Ok(Json(products))
}

fn product_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, format!("product {raw} not found")))
}

pub(crate) async fn get_one(
    State(shop): State<Shop>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let product = shop
        .product(product_id(&id)?)
        .await
        .map_err(|e| api(e.code(), e))?;
    Ok(Json(product))
}

#[derive(Deserialize)]
pub(crate) struct NewProduct {
    name: String,
    #[serde(default)]
    description: String,
    price: i64,
    #[serde(default)]
    stock: i64,
}

/// → `201` with the product.
pub(crate) async fn create(
    State(shop): State<Shop>,
    _admin: Admin,
    request: Result<Json<NewProduct>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = body(request)?;
    let id = shop
        .create_product(p.name, p.description, p.price, p.stock)
        .await
        .map_err(|e| api(e.code(), e))?;
    let product = shop.product(id).await.map_err(|e| api(e.code(), e))?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[derive(Deserialize)]
pub(crate) struct StockBody {
    stock: i64,
}

/// Sets the available stock: `{"stock": 50}` → the product.
pub(crate) async fn set_stock(
    State(shop): State<Shop>,
    _admin: Admin,
    Path(id): Path<String>,
    request: Result<Json<StockBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = product_id(&id)?;
    let s = body(request)?;
    shop.set_stock(id, s.stock)
        .await
        .map_err(|e| api(e.code(), e))?;
    let product = shop.product(id).await.map_err(|e| api(e.code(), e))?;
    Ok(Json(product))
}
