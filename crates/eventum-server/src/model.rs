//! The JSON shapes of requests and responses, with their OpenAPI schemas. Event data
//! stays raw JSON text from request to store.

use eventum_core::{AppendResult, ExpectedVersion, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

fn expect_any() -> ExpectedVersion {
    ExpectedVersion::Any
}

/// `POST /streams/{stream}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    /// `"any"` (default), `"no_stream"`, `"exists"`, or the exact version of the stream's
    /// last event.
    #[serde(default = "expect_any")]
    #[schema(value_type = Option<ExpectedVersionDoc>)]
    pub expected_version: ExpectedVersion,
    pub events: Vec<EventInput>,
}

/// One event to append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// Event id (UUID); the server assigns a UUID v7 when absent. Resending the same ids
    /// with the same expectation is an idempotent retry.
    #[schema(format = Uuid)]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Any JSON value; stored as the exact text sent.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// A JSON object; `correlation_id` and `causation_id`, when present, must be UUIDs.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// An expected version: `"any"`, `"no_stream"`, `"exists"` or a non-negative integer.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the wire form is parsed by eventum-core
#[schema(as = ExpectedVersion)]
pub enum ExpectedVersionDoc {
    #[schema(rename = "any")]
    Any,
    #[schema(rename = "no_stream")]
    NoStream,
    #[schema(rename = "exists")]
    Exists,
    Exact(u64),
}

/// Result of an append, delete or metadata change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppendResponse {
    /// Version of the last event written: the exact expected version for the next append.
    pub next_expected_version: u64,
    /// Global position of the last event written.
    pub position: u64,
}

impl From<AppendResult> for AppendResponse {
    fn from(r: AppendResult) -> Self {
        Self {
            next_expected_version: r.next_expected_version,
            position: r.position,
        }
    }
}

/// A recorded event as every read and subscription returns it.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: eventum-core serializes RecordedEvent
#[schema(as = RecordedEvent)]
pub struct RecordedEventDoc {
    #[schema(format = Uuid)]
    id: String,
    stream: String,
    version: u64,
    position: u64,
    #[schema(rename = "type")]
    event_type: String,
    #[schema(value_type = Object)]
    data: serde_json::Value,
    metadata: std::collections::HashMap<String, serde_json::Value>,
    /// RFC 3339 UTC with microseconds.
    recorded_at: String,
}

/// Events of a read, in the order read.
#[derive(Serialize, ToSchema)]
pub struct ReadResponse {
    #[schema(value_type = Vec<RecordedEventDoc>)]
    pub events: Vec<RecordedEvent>,
}

/// Every error response.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `wrong_expected_version`.
    pub error: String,
    pub message: String,
    /// Conflicts only: the expectation sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ExpectedVersionDoc>)]
    pub expected: Option<serde_json::Value>,
    /// Conflicts only: the stream's version, or `"no_stream"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub actual: Option<serde_json::Value>,
}

/// `PUT /streams/{stream}/metadata` body and the metadata part of its `GET`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataBody {
    /// Keep only the newest `max_count` events visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
    /// Hide events older than this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_s: Option<u64>,
}

/// `GET /streams/{stream}/metadata` response.
#[derive(Serialize, ToSchema)]
pub struct StreamStateResponse {
    pub stream: String,
    /// Version of the last event; null when the stream has none.
    pub version: Option<u64>,
    pub deleted: bool,
    pub metadata: MetadataBody,
}

/// `GET /health` response.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
    /// Position of the newest durable event; null when the store is empty.
    pub head_position: Option<u64>,
}

/// Query of stream and `$all` reads.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// First version (stream) or position (`$all`, category) to read; default: the first
    /// forward, the last backward.
    pub from: Option<u64>,
    /// Most events to return (default 100, at most the store's read limit).
    pub limit: Option<usize>,
    /// `forward` (default) or `backward`.
    #[param(value_type = Option<String>)]
    pub direction: Option<eventum_core::ReadDirection>,
}

/// Query of `DELETE /streams/{stream}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `any` (default), `no_stream`, `exists` or a version.
    pub expected_version: Option<String>,
}

/// Query of `GET /subscribe`: exactly one of `stream`, `category`, `all=true`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscribeQuery {
    pub stream: Option<String>,
    pub category: Option<String>,
    pub all: Option<bool>,
    /// First global position to deliver (inclusive), or `start`; default: only new events.
    /// A `Last-Event-ID` header takes precedence.
    pub from: Option<String>,
}
