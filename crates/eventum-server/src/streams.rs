//! Write endpoints of one stream: append, delete, and its retention metadata.

use axum::Json;
use axum::extract::State;
use eventum_core::{ActualVersion, ExpectedVersion, NewEvent, StreamMetadata};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{AnyStream, ApiQuery, JsonBody, UserStream};
use crate::model::{
    AppendRequest, AppendResponse, DeleteQuery, ErrorBody, EventInput, MetadataBody,
    StreamStateResponse,
};
use crate::state::AppState;

/// Appends events to a stream, atomically, if it is at the expected version.
#[utoipa::path(
    post, path = "/streams/{stream}", tag = "streams",
    params(("stream" = String, Path, description = "Stream name; must not start with `$`")),
    request_body = AppendRequest,
    responses(
        (status = 200, description = "Appended (or an identical retry)", body = AppendResponse),
        (status = 400, description = "Malformed or invalid input; nothing written", body = ErrorBody),
        (status = 409, description = "Wrong expected version", body = ErrorBody),
        (status = 410, description = "Stream deleted", body = ErrorBody),
        (status = 413, description = "Event or batch over the limits", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
pub async fn append_events(
    State(state): State<AppState>,
    UserStream(stream): UserStream,
    JsonBody(request): JsonBody<AppendRequest>,
) -> Result<Json<AppendResponse>, ApiError> {
    let events = request
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| to_new_event(e).map_err(|err| err.context(format_args!("events[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    // The store checks the same bounds, but refusing here means nothing reaches it.
    state.store.limits().check_batch(&events)?;
    let result = state
        .store
        .append(&stream, request.expected_version, events)
        .await?;
    Ok(Json(result.into()))
}

fn to_new_event(input: EventInput) -> Result<NewEvent, ApiError> {
    // RawValue keeps the client's text, so data is never re-parsed into a tree.
    let data = input.data.get().as_bytes().to_vec();
    let mut event = NewEvent::from_json(input.event_type, data)?;
    if let Some(id) = input.id {
        let id = Uuid::parse_str(&id)
            .map_err(|_| ApiError::invalid(format!("id {id:?} is not a UUID")))?;
        event = event.with_id(id);
    }
    if let Some(metadata) = input.metadata {
        event = event.with_metadata(metadata)?;
    }
    Ok(event)
}

/// Soft-deletes a stream: its events stay in `$all`, reads of it answer 410.
#[utoipa::path(
    delete, path = "/streams/{stream}", tag = "streams",
    params(("stream" = String, Path, description = "Stream name"), DeleteQuery),
    responses(
        (status = 200, description = "Deleted", body = AppendResponse),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 409, description = "Wrong expected version", body = ErrorBody),
        (status = 410, description = "Already deleted", body = ErrorBody),
    )
)]
pub async fn delete_stream(
    State(state): State<AppState>,
    UserStream(stream): UserStream,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<Json<AppendResponse>, ApiError> {
    let expected = match query.expected_version.as_deref() {
        None => ExpectedVersion::Any,
        Some(text) => ExpectedVersion::parse(text).ok_or_else(|| {
            ApiError::malformed(format!(
                "expected_version must be any, no_stream, exists or a non-negative integer, got {text:?}"
            ))
        })?,
    };
    let result = state.store.delete_stream(&stream, expected).await?;
    Ok(Json(result.into()))
}

/// Sets a stream's retention metadata; reads hide events outside it.
#[utoipa::path(
    put, path = "/streams/{stream}/metadata", tag = "streams",
    params(("stream" = String, Path, description = "Stream name")),
    request_body = MetadataBody,
    responses(
        (status = 200, description = "Recorded", body = AppendResponse),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 410, description = "Stream deleted", body = ErrorBody),
    )
)]
pub async fn put_metadata(
    State(state): State<AppState>,
    UserStream(stream): UserStream,
    JsonBody(body): JsonBody<MetadataBody>,
) -> Result<Json<AppendResponse>, ApiError> {
    let metadata = StreamMetadata {
        max_count: body.max_count,
        max_age_s: body.max_age_s,
    };
    let result = state.store.set_stream_metadata(&stream, metadata).await?;
    Ok(Json(result.into()))
}

/// A stream's version, deletion flag and retention metadata.
#[utoipa::path(
    get, path = "/streams/{stream}/metadata", tag = "streams",
    params(("stream" = String, Path, description = "Stream name")),
    responses(
        (status = 200, description = "Stream state", body = StreamStateResponse),
        (status = 400, description = "Invalid stream name", body = ErrorBody),
    )
)]
pub async fn get_metadata(
    State(state): State<AppState>,
    AnyStream(stream): AnyStream,
) -> Result<Json<StreamStateResponse>, ApiError> {
    let st = state.store.stream_state(&stream).await?;
    Ok(Json(StreamStateResponse {
        stream: stream.into_string(),
        version: match st.version {
            ActualVersion::NoStream => None,
            ActualVersion::Version(v) => Some(v),
        },
        deleted: st.deleted,
        metadata: MetadataBody {
            max_count: st.metadata.max_count,
            max_age_s: st.metadata.max_age_s,
        },
    }))
}
