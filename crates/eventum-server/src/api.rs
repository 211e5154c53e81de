//! Route table, OpenAPI document, docs UI, health, and the JSON answers for unknown
//! routes and methods.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::routing::any;
use axum::{Json, Router};
use eventum_core::ErrorCode;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_scalar::{Scalar, Servable};

use crate::error::ApiError;
use crate::model::HealthResponse;
use crate::state::AppState;
use crate::{groups, reads, sagas, streams, subscribe};

#[derive(OpenApi)]
#[openapi(
    info(title = "Eventum", description = "Event store HTTP/JSON API"),
    tags(
        (name = "streams", description = "Appending to, deleting and configuring streams"),
        (name = "reads", description = "Reading streams, $all and categories"),
        (name = "subscriptions", description = "Following events with Server-Sent Events"),
        (name = "groups", description = "Consumer groups: competing consumers, retries, dead letters"),
        (name = "sagas", description = "Saga instances: status, state, deadlines and history"),
        (name = "system", description = "Health"),
    )
)]
struct ApiDoc;

/// Liveness and the store's head position.
#[utoipa::path(
    get, path = "/health", tag = "system",
    responses((status = 200, description = "Serving", body = HealthResponse))
)]
async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        head_position: state.store.head_position(),
    })
}

/// The API routes and their OpenAPI document, generated from the handler annotations.
fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            streams::append_events,
            reads::read_stream,
            streams::delete_stream
        ))
        .routes(routes!(streams::put_metadata, streams::get_metadata))
        .routes(routes!(reads::read_all))
        .routes(routes!(reads::read_category))
        .routes(routes!(subscribe::subscribe))
        .routes(routes!(health))
        .routes(routes!(groups::list_groups))
        .routes(routes!(
            groups::create_group,
            groups::group_info,
            groups::delete_group
        ))
        .routes(routes!(groups::receive))
        .routes(routes!(groups::ack))
        .routes(routes!(groups::nack))
        .routes(routes!(groups::parked))
        .routes(routes!(groups::replay))
        .routes(routes!(sagas::list_instances))
        .routes(routes!(sagas::instance))
        .split_for_parts()
}

/// The whole application with its state applied.
pub fn build(state: AppState) -> Router {
    let (api, openapi) = api_routes();
    let openapi_json = openapi.to_json().expect("the OpenAPI document serializes");
    let body_limit = state.body_limit;
    api.route(
        "/openapi.json",
        axum::routing::get(move || async move {
            ([("content-type", "application/json")], openapi_json)
        }),
    )
    .merge(Scalar::with_url("/docs", openapi))
    // `/streams/` has an empty name rather than an unknown path: say so.
    .route("/streams/", any(empty_stream_name))
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(DefaultBodyLimit::max(body_limit))
    // One span and one line per request at INFO: method, path, status, latency. Headers
    // and bodies are never logged.
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
    )
    .with_state(state)
}

async fn empty_stream_name() -> ApiError {
    ApiError::invalid(eventum_core::InvalidInput::EmptyStreamName.to_string())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::malformed("method not allowed on this path")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}
