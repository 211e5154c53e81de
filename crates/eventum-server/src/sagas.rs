//! Saga instance queries under `/sagas/{saga}`: a page of a saga's instances, and one
//! instance's status, state, pending deadlines and history. Answered from the log
//! (`eventum_sagas::SagaStatus`), so they work for any saga, whichever process runs it.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use eventum_core::ErrorCode;
use eventum_sagas::{InstancePage, QueryError, SagaStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiQuery, Segment};
use crate::model::ErrorBody;
use crate::state::AppState;

/// Instances a page holds when the request gives no `limit`.
const PAGE_LIMIT_DEFAULT: usize = 100;
/// History records an instance answer holds when the request gives no `history_limit`.
const HISTORY_LIMIT_DEFAULT: usize = 100;

fn query_error(e: QueryError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Where the page starts (`next_from` of the previous page); default the first.
    from: Option<u64>,
    limit: Option<usize>,
}

/// A page of a saga's instances, in the order they started.
#[utoipa::path(
    get, path = "/sagas/{saga}/instances", tag = "sagas",
    params(("saga" = String, Path, description = "The saga's name"), PageQuery),
    responses(
        (status = 200, description = "Instances with their status; `next_from` pages on", body = Object),
        (status = 400, description = "Invalid name or limit", body = ErrorBody),
    )
)]
pub async fn list_instances(
    State(state): State<AppState>,
    Segment(saga): Segment,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<InstancePage>, ApiError> {
    let status = SagaStatus::new(state.store.clone(), saga);
    let page = status
        .list(q.from.unwrap_or(0), q.limit.unwrap_or(PAGE_LIMIT_DEFAULT))
        .await
        .map_err(query_error)?;
    Ok(Json(page))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InstanceQuery {
    /// Records of the history to return from its start; default 100.
    history_limit: Option<usize>,
}

/// One instance: status (`running`, `compensating`, `completed`, `compensated`,
/// `failed`), reason, state, pending deadlines and its history.
#[utoipa::path(
    get, path = "/sagas/{saga}/instances/{key}", tag = "sagas",
    params(
        ("saga" = String, Path, description = "The saga's name"),
        ("key" = String, Path, description = "The instance's correlation key"),
        InstanceQuery,
    ),
    responses(
        (status = 200, description = "The instance", body = Object),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
pub async fn instance(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiQuery(q): ApiQuery<InstanceQuery>,
) -> Result<Json<Value>, ApiError> {
    let Path((saga, key)) = path.map_err(|e| ApiError::malformed(e.body_text()))?;
    let status = SagaStatus::new(state.store.clone(), saga.clone());
    let view = status
        .instance(&key)
        .await
        .map_err(query_error)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("saga {saga} has no instance {key:?}"),
            )
        })?;
    let history = status
        .history(&key, 0, q.history_limit.unwrap_or(HISTORY_LIMIT_DEFAULT))
        .await
        .map_err(query_error)?;
    Ok(Json(json!({ "instance": view, "history": history })))
}
