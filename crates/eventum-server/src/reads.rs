//! Read endpoints: one stream, `$all`, and a category.

use axum::Json;
use axum::extract::State;
use eventum_core::ReadDirection;

use crate::error::ApiError;
use crate::extract::{AnyStream, ApiQuery, Segment};
use crate::model::{ErrorBody, ReadQuery, ReadResponse};
use crate::state::AppState;

/// The requested count, checked here so a bad one never reaches the store.
fn read_limit(state: &AppState, limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(
        state
            .config
            .default_read_limit
            .min(state.store.limits().read_events_max),
    );
    state.store.limits().check_read_limit(limit)?;
    Ok(limit)
}

/// Reads a stream's events by version.
#[utoipa::path(
    get, path = "/streams/{stream}", tag = "reads",
    params(("stream" = String, Path, description = "Stream name"), ReadQuery),
    responses(
        (status = 200, description = "Events", body = ReadResponse),
        (status = 400, description = "Bad query or stream name", body = ErrorBody),
        (status = 404, description = "No such stream", body = ErrorBody),
        (status = 410, description = "Stream deleted", body = ErrorBody),
    )
)]
pub async fn read_stream(
    State(state): State<AppState>,
    AnyStream(stream): AnyStream,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<ReadResponse>, ApiError> {
    let limit = read_limit(&state, q.limit)?;
    let events = state
        .store
        .read_stream(&stream, q.from, q.direction.unwrap_or_default(), limit)
        .await?;
    Ok(Json(ReadResponse { events }))
}

/// Reads `$all`, every event in global position order.
#[utoipa::path(
    get, path = "/all", tag = "reads",
    params(ReadQuery),
    responses(
        (status = 200, description = "Events", body = ReadResponse),
        (status = 400, description = "Bad query", body = ErrorBody),
    )
)]
pub async fn read_all(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<ReadResponse>, ApiError> {
    let limit = read_limit(&state, q.limit)?;
    let events = state
        .store
        .read_all(q.from, q.direction.unwrap_or_default(), limit)
        .await?;
    Ok(Json(ReadResponse { events }))
}

/// Reads a category (streams named `category-…`) forward from a global position.
#[utoipa::path(
    get, path = "/categories/{category}", tag = "reads",
    params(("category" = String, Path, description = "Category: the part of stream names before the first `-`"), ReadQuery),
    responses(
        (status = 200, description = "Events", body = ReadResponse),
        (status = 400, description = "Bad query; categories read forward only", body = ErrorBody),
    )
)]
pub async fn read_category(
    State(state): State<AppState>,
    Segment(category): Segment,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<ReadResponse>, ApiError> {
    check_category(&category)?;
    if q.direction == Some(ReadDirection::Backward) {
        return Err(ApiError::invalid("category reads are forward only"));
    }
    let limit = read_limit(&state, q.limit)?;
    let events = state
        .store
        .read_category(&category, q.from.unwrap_or(0), limit)
        .await?;
    Ok(Json(ReadResponse { events }))
}

/// A category name: non-empty, no control characters, and no `-` (a category is the part
/// before the first `-`, so a name with one could never match).
pub fn check_category(category: &str) -> Result<(), ApiError> {
    if category.is_empty() || category.contains('-') || category.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "category {category:?} must be non-empty, without '-' or control characters"
        )));
    }
    Ok(())
}
