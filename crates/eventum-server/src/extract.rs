//! Request extractors that turn every malformed input into the JSON error body, instead
//! of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use eventum_core::{ErrorCode, StreamName};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON object request body, parsed with serde_json so that every failure (syntax, missing
/// field, wrong type) is a 400 `malformed_request`, and an oversized body a 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(
                ApiError::malformed("the request body must be application/json")
                    .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            );
        }
        // A declared length over the limit is refused before reading any of the body.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > state.body_limit as u64) {
            return Err(body_too_large(state.body_limit));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| bytes_rejection(e, state.body_limit))?;
        // serde would also read a struct from an array of its fields in order; every body
        // of this API is an object, so anything else is refused.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::malformed(
                "the request body must be a JSON object",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::BatchTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

fn bytes_rejection(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        body_too_large(limit)
    } else {
        ApiError::malformed(format!(
            "could not read the request body: {}",
            e.body_text()
        ))
    }
}

/// Query parameters; a parameter of the wrong type is a 400 `malformed_request`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e: QueryRejection| {
                ApiError::malformed(format!("invalid query parameters: {}", e.body_text()))
            })
    }
}

/// The `{stream}` path segment as a user stream name (no `$` prefix): the target of writes.
pub struct UserStream(pub StreamName);

impl<S: Send + Sync> FromRequestParts<S> for UserStream {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let name = path_segment(parts, state).await?;
        Ok(UserStream(StreamName::new(name)?))
    }
}

/// The `{stream}` path segment as any stream name: reads may inspect system streams such
/// as `$$order-1` (a stream's metadata and deletion records).
pub struct AnyStream(pub StreamName);

impl<S: Send + Sync> FromRequestParts<S> for AnyStream {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let name = path_segment(parts, state).await?;
        Ok(AnyStream(StreamName::system(name)?))
    }
}

/// The single path parameter of the route, percent-decoded.
pub async fn path_segment<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<String, ApiError> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(s)| s)
        .map_err(|e: PathRejection| ApiError::invalid(format!("invalid path: {}", e.body_text())))
}

/// The single path parameter of the route as plain text (a category name).
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        path_segment(parts, state).await.map(Segment)
    }
}
