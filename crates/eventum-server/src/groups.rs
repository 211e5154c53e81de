//! Consumer-group endpoints under `/groups`: create, list, info with lag, delete,
//! receive (long poll), ack, nack, list and replay dead letters. A thin layer over
//! `eventum_groups::GroupService`; servers built without one answer 503.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use eventum_groups::{GroupInfo, GroupService, GroupSettings};

use crate::error::ApiError;
use crate::extract::{ApiQuery, JsonBody, Segment};
use crate::groups_model::{
    AckRequest, AckResponse, DeliveryBody, GroupInfoDoc, GroupList, GroupSettingsDoc, NackRequest,
    ParkedBody, ParkedQuery, ParkedResponse, ReceiveQuery, ReceiveResponse, ReplayRequest,
    ReplayResponse,
};
use crate::model::ErrorBody;
use crate::state::AppState;

/// Events a dead-letter listing returns when the request gives no `limit`.
const PARKED_LIMIT_DEFAULT: usize = 100;

fn service(state: &AppState) -> Result<Arc<GroupService>, ApiError> {
    state.groups.clone().ok_or_else(|| {
        ApiError::new(
            eventum_core::ErrorCode::Unavailable,
            "consumer groups are not enabled on this server",
        )
    })
}

/// Creates a consumer group.
#[utoipa::path(
    put, path = "/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name: ASCII letters, digits, `_`, `.`, `-`")),
    request_body = GroupSettingsDoc,
    responses(
        (status = 201, description = "Created", body = GroupInfoDoc),
        (status = 400, description = "Invalid name or settings; nothing written", body = ErrorBody),
        (status = 409, description = "A group of that name exists", body = ErrorBody),
    )
)]
pub async fn create_group(
    State(state): State<AppState>,
    Segment(name): Segment,
    JsonBody(settings): JsonBody<GroupSettings>,
) -> Result<(StatusCode, Json<GroupInfo>), ApiError> {
    let info = service(&state)?.create(&name, settings).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Every group with its lag.
#[utoipa::path(
    get, path = "/groups", tag = "groups",
    responses((status = 200, description = "Groups", body = GroupList))
)]
pub async fn list_groups(State(state): State<AppState>) -> Result<Json<GroupList>, ApiError> {
    Ok(Json(GroupList {
        groups: service(&state)?.list(),
    }))
}

/// One group's settings and lag: checkpoint, head, in flight, retries, parked.
#[utoipa::path(
    get, path = "/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "Group", body = GroupInfoDoc),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub async fn group_info(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> Result<Json<GroupInfo>, ApiError> {
    Ok(Json(service(&state)?.info(&name)?))
}

/// Deletes a group; a group created later under the name starts afresh.
#[utoipa::path(
    delete, path = "/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub async fn delete_group(
    State(state): State<AppState>,
    Segment(name): Segment,
) -> Result<StatusCode, ApiError> {
    service(&state)?.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hands out up to `max` events to `consumer`, waiting up to `wait_ms` for the first.
#[utoipa::path(
    post, path = "/groups/{name}/receive", tag = "groups",
    params(("name" = String, Path, description = "Group name"), ReceiveQuery),
    responses(
        (status = 200, description = "Deliveries (possibly none)", body = ReceiveResponse),
        (status = 400, description = "Bad consumer, max or wait_ms", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 503, description = "Too many active consumers", body = ErrorBody),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    Segment(name): Segment,
    ApiQuery(q): ApiQuery<ReceiveQuery>,
) -> Result<Json<ReceiveResponse>, ApiError> {
    let svc = service(&state)?;
    let received = svc.receive(
        &name,
        &q.consumer,
        q.max.unwrap_or(1),
        q.wait_ms.unwrap_or(0),
    );
    // A long poll must not hold up a graceful shutdown.
    let deliveries = tokio::select! {
        r = received => r?,
        () = state.shutting_down() => Vec::new(),
    };
    Ok(Json(ReceiveResponse {
        deliveries: deliveries.into_iter().map(DeliveryBody::from).collect(),
    }))
}

/// Acks deliveries by token.
#[utoipa::path(
    post, path = "/groups/{name}/ack", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    request_body = AckRequest,
    responses(
        (status = 200, description = "Acked; unknown tokens listed", body = AckResponse),
        (status = 400, description = "Malformed body or too many tokens", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub async fn ack(
    State(state): State<AppState>,
    Segment(name): Segment,
    JsonBody(body): JsonBody<AckRequest>,
) -> Result<Json<AckResponse>, ApiError> {
    let r = service(&state)?.ack(&name, &body.tokens).await?;
    Ok(Json(AckResponse {
        acked: r.acked,
        unknown: r.unknown,
    }))
}

/// Nacks one delivery: retry, park or skip.
#[utoipa::path(
    post, path = "/groups/{name}/nack", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    request_body = NackRequest,
    responses(
        (status = 204, description = "Done"),
        (status = 400, description = "Malformed body or reason too long", body = ErrorBody),
        (status = 404, description = "No such group, or the token is not in flight", body = ErrorBody),
    )
)]
pub async fn nack(
    State(state): State<AppState>,
    Segment(name): Segment,
    JsonBody(body): JsonBody<NackRequest>,
) -> Result<StatusCode, ApiError> {
    service(&state)?
        .nack(&name, body.token, body.action, &body.reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unresolved dead letters of a group, oldest first.
#[utoipa::path(
    get, path = "/groups/{name}/parked", tag = "groups",
    params(("name" = String, Path, description = "Group name"), ParkedQuery),
    responses(
        (status = 200, description = "Dead letters", body = ParkedResponse),
        (status = 400, description = "Bad limit", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub async fn parked(
    State(state): State<AppState>,
    Segment(name): Segment,
    ApiQuery(q): ApiQuery<ParkedQuery>,
) -> Result<Json<ParkedResponse>, ApiError> {
    let svc = service(&state)?;
    let limit = q
        .limit
        .unwrap_or(PARKED_LIMIT_DEFAULT.min(svc.config().parked_list_max));
    let parked = svc.parked(&name, q.from.unwrap_or(0), limit)?;
    Ok(Json(ParkedResponse {
        parked: parked.into_iter().map(ParkedBody::from).collect(),
    }))
}

/// Re-delivers dead letters through the group: all (no body or `{}`), or `{"id": n}`.
#[utoipa::path(
    post, path = "/groups/{name}/parked/replay", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    request_body(content = Option<ReplayRequest>, description = "Empty or `{}` for all"),
    responses(
        (status = 200, description = "Queued for redelivery", body = ReplayResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "No such group or dead letter", body = ErrorBody),
    )
)]
pub async fn replay(
    State(state): State<AppState>,
    Segment(name): Segment,
    body: Bytes,
) -> Result<Json<ReplayResponse>, ApiError> {
    // An empty body means "all", so the JSON extractor (which needs a body) is not used;
    // a present body must still be a JSON object.
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::malformed(
                "the request body must be a JSON object",
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))?
    };
    let replayed = service(&state)?.replay(&name, request.id)?;
    Ok(Json(ReplayResponse { replayed }))
}
