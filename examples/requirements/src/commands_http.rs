//! The write endpoints: each turns a JSON request into a command on the bus. An
//! `Idempotency-Key` header (a UUID) becomes the command id, so a client may retry a
//! request safely.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use eventum_runtime::{CommandMeta, DispatchError};
use eventum_server::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::{APPROVAL_WINDOW_S_MAX, RequirementCommand as C};
use crate::service::Service;

/// A request body as JSON, with a JSON 400 for anything else.
pub(crate) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|e| ApiError::malformed(e.body_text()))
}

pub(crate) fn api_error(e: DispatchError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

fn meta(headers: &HeaderMap) -> Result<CommandMeta, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(CommandMeta::new()),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(CommandMeta::with_id)
            .ok_or_else(|| ApiError::invalid("Idempotency-Key must be a UUID")),
    }
}

async fn dispatch(service: &Service, command: C, headers: &HeaderMap) -> Result<Value, ApiError> {
    let accepted = service
        .bus
        .dispatch(command, meta(headers)?)
        .await
        .map_err(api_error)?;
    Ok(json!({
        "version": accepted.version,
        "position": accepted.position,
        "duplicate": accepted.duplicate,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    title: String,
    #[serde(default)]
    description: String,
    author: String,
}

/// `POST /requirements` → `201 {requirement_id, version, …}`.
pub(crate) async fn create(
    State(service): State<Service>,
    headers: HeaderMap,
    request: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b = body(request)?;
    // With an idempotency key the id is derived from it, so a retry addresses the same
    // requirement.
    let requirement_id = match meta(&headers)? {
        m if headers.contains_key("idempotency-key") => m.command_id.to_string(),
        _ => Uuid::now_v7().to_string(),
    };
    let command = C::CreateRequirement {
        requirement_id: requirement_id.clone(),
        title: b.title,
        description: b.description,
        author: b.author,
    };
    let mut out = dispatch(&service, command, &headers).await?;
    out["requirement_id"] = json!(requirement_id);
    Ok((StatusCode::CREATED, Json(out)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    title: Option<String>,
    description: Option<String>,
    editor: String,
}

/// `PUT /requirements/{id}`.
pub(crate) async fn update(
    State(service): State<Service>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(request)?;
    let command = C::UpdateRequirement {
        requirement_id: id,
        title: b.title,
        description: b.description,
        editor: b.editor,
    };
    Ok(Json(dispatch(&service, command, &headers).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestApprovalBody {
    approver: String,
    requested_by: String,
    /// Seconds until the approval is due; then the saga escalates.
    due_in_s: u64,
}

/// `POST /requirements/{id}/approval-request`.
pub(crate) async fn request_approval(
    State(service): State<Service>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<RequestApprovalBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(request)?;
    if b.due_in_s == 0 || b.due_in_s > APPROVAL_WINDOW_S_MAX {
        return Err(ApiError::invalid(format!(
            "due_in_s must be 1..={APPROVAL_WINDOW_S_MAX}"
        )));
    }
    let due_at_us = service.clock_now_us() + (b.due_in_s as i64) * 1_000_000;
    let command = C::RequestApproval {
        requirement_id: id,
        approver: b.approver,
        due_at_us,
        requested_by: b.requested_by,
    };
    Ok(Json(dispatch(&service, command, &headers).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    approver: String,
}

/// `POST /requirements/{id}/approval`.
pub(crate) async fn approve(
    State(service): State<Service>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Result<Json<ApproveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(request)?;
    let command = C::ApproveRequirement {
        requirement_id: id,
        approver: b.approver,
    };
    Ok(Json(dispatch(&service, command, &headers).await?))
}
