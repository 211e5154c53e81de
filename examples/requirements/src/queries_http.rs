//! The read endpoints: requirement documents and lists (by status, author or approver),
//! a requirement's audit log, a user's notifications, and the approval saga's status.

use axum::Json;
use axum::extract::{Path, Query, State};
use eventum_core::ErrorCode;
use eventum_projections::QueryError;
use eventum_server::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::notify::NOTIFICATIONS_MODEL;
use crate::service::Service;
use crate::views::{AUDIT_MODEL, REQUIREMENTS_MODEL};

const LIST_LIMIT_DEFAULT: usize = 100;

fn query_error(e: QueryError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

/// Runs a blocking read-model query off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorCode::StorageFailed, e.to_string()))?
        .map_err(query_error)
}

/// `GET /requirements/{id}`.
pub(crate) async fn get_requirement(
    State(service): State<Service>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = service.read_models.clone();
    let key = id.clone();
    match blocking(move || store.get(REQUIREMENTS_MODEL, &key)).await? {
        Some(doc) => Ok(Json(doc)),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("requirement {id} does not exist"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    author: Option<String>,
    approver: Option<String>,
    /// Key to start from (inclusive), for paging.
    from: Option<String>,
    limit: Option<usize>,
}

/// `GET /requirements?status=&author=&approver=&from=&limit=` (at most one filter).
pub(crate) async fn list_requirements(
    State(service): State<Service>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filters: Vec<(&str, String)> = [
        ("by_status", q.status),
        ("by_author", q.author),
        ("by_approver", q.approver),
    ]
    .into_iter()
    .filter_map(|(lookup, v)| v.map(|v| (lookup, v)))
    .collect();
    if filters.len() > 1 {
        return Err(ApiError::invalid(
            "give at most one of status, author, approver",
        ));
    }
    let limit = q.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    let store = service.read_models.clone();
    let from = q.from;
    let docs = blocking(move || match filters.into_iter().next() {
        Some((lookup, value)) => {
            store.find(REQUIREMENTS_MODEL, lookup, &value, from.as_deref(), limit)
        }
        None => store.list(REQUIREMENTS_MODEL, from.as_deref(), limit),
    })
    .await?;
    let items: Vec<Value> = docs.into_iter().map(|d| d.doc).collect();
    Ok(Json(json!({ "requirements": items })))
}

/// `GET /requirements/{id}/audit`: every event of the requirement, in log order.
pub(crate) async fn audit(
    State(service): State<Service>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = service.read_models.clone();
    let limit = store.config().query_limit_max;
    let docs =
        blocking(move || store.find(AUDIT_MODEL, "by_requirement", &id, None, limit)).await?;
    let entries: Vec<Value> = docs.into_iter().map(|d| d.doc).collect();
    Ok(Json(json!({ "entries": entries })))
}

/// `GET /users/{user}/notifications`.
pub(crate) async fn notifications(
    State(service): State<Service>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = service.read_models.clone();
    let limit = store.config().query_limit_max;
    let docs =
        blocking(move || store.find(NOTIFICATIONS_MODEL, "by_user", &user, None, limit)).await?;
    let items: Vec<Value> = docs.into_iter().map(|d| d.doc).collect();
    Ok(Json(json!({ "notifications": items })))
}

/// `GET /requirements/{id}/approval`: the approval saga instance, with its history.
pub(crate) async fn approval(
    State(service): State<Service>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = service
        .sagas
        .instance(&id)
        .await
        .map_err(|e| ApiError::new(e.code(), e.to_string()))?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no approval saga for {id}")))?;
    let history = service
        .sagas
        .history(&id, 0, 100)
        .await
        .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    Ok(Json(json!({
        "requirement_id": view.key,
        "status": view.status,
        "state": view.state,
        "steps": view.steps,
        "pending_deadlines": view.pending_deadlines.len(),
        "history": history,
    })))
}

fn projection_json(s: &eventum_projections::Status) -> Value {
    let state = match &s.state {
        eventum_projections::RunState::CatchingUp => "catching_up".to_owned(),
        eventum_projections::RunState::Live => "live".to_owned(),
        eventum_projections::RunState::Stopped => "stopped".to_owned(),
        eventum_projections::RunState::Failed(e) => format!("failed: {e}"),
    };
    json!({
        "model": s.model, "generation": s.generation, "rebuilding": s.rebuilding,
        "position_next": s.position_next, "events_applied": s.events_applied,
        "head": s.head, "lag_events": s.lag_events(), "state": state,
    })
}

/// `GET /admin/projections/requirement-audit`: the async audit projection's progress.
pub(crate) async fn audit_status(State(service): State<Service>) -> Json<Value> {
    Json(projection_json(&service.audit.status()))
}

/// `POST /admin/projections/requirement-audit/rebuild`: rebuilds the audit log from
/// position 0 into a new generation; the current one keeps answering queries until the
/// new one has caught up and is switched in.
pub(crate) async fn rebuild_audit(
    State(service): State<Service>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    service
        .audit
        .rebuild()
        .await
        .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(projection_json(&service.audit.status())),
    ))
}
