//! The JSON shapes of the consumer-group endpoints, with their OpenAPI schemas. Settings
//! and infos are `eventum-groups`' own serde types; the structs marked documentation-only
//! describe them for OpenAPI.

use eventum_core::RecordedEvent;
use eventum_groups::{Delivery, NackAction, ParkedEvent};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::model::RecordedEventDoc;

/// `PUT /groups/{name}` body (documentation only: parsed as `eventum_groups::GroupSettings`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = GroupSettings)]
pub struct GroupSettingsDoc {
    /// `{"stream": "order-1"}`, `{"category": "order"}` or `"all"` (system streams skipped).
    #[schema(value_type = Object)]
    target: serde_json::Value,
    /// `"start"` (default), `"end"` or a global position.
    #[schema(value_type = Option<Object>)]
    from: Option<serde_json::Value>,
    /// Default true: a stream's events are handed out one at a time, in order, and later
    /// events wait (parked) behind a parked one.
    ordered: Option<bool>,
    /// Deliveries before an event is parked (default 5).
    max_attempts: Option<u32>,
    /// First retry delay; doubles per retry (default 100).
    retry_delay_ms_base: Option<u64>,
    /// Longest retry delay (default 30000).
    retry_delay_ms_max: Option<u64>,
    /// Redeliver when not acked within this (default 30000).
    ack_timeout_ms: Option<u64>,
    /// Most deliveries in flight (default 1000).
    in_flight_max: Option<usize>,
    /// Most events read ahead (default 10000).
    buffer_events_max: Option<usize>,
}

/// A group's settings and lag (documentation only: `eventum_groups::GroupInfo`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = GroupInfo)]
pub struct GroupInfoDoc {
    name: String,
    settings: GroupSettingsDoc,
    start_position: u64,
    /// Every event before this global position is settled.
    checkpoint: u64,
    head_position: Option<u64>,
    /// head_position + 1 − checkpoint.
    lag_events: u64,
    in_flight: usize,
    retry_scheduled: usize,
    parked: usize,
    buffered: usize,
    consumers: usize,
}

/// `GET /groups` response.
#[derive(Serialize, ToSchema)]
pub struct GroupList {
    #[schema(value_type = Vec<GroupInfoDoc>)]
    pub groups: Vec<eventum_groups::GroupInfo>,
}

/// Query of `POST /groups/{name}/receive`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReceiveQuery {
    /// The consumer's id (1..=128 bytes).
    pub consumer: String,
    /// Most deliveries to return (default 1).
    pub max: Option<usize>,
    /// Long poll: wait up to this long for the first delivery (default 0).
    pub wait_ms: Option<u64>,
}

/// One delivery: settle it with its token.
#[derive(Serialize, ToSchema)]
pub struct DeliveryBody {
    pub token: u64,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// Set when this redelivers the dead letter with this id.
    pub replay_of: Option<u64>,
    #[schema(value_type = RecordedEventDoc)]
    pub event: RecordedEvent,
}

impl From<Delivery> for DeliveryBody {
    fn from(d: Delivery) -> Self {
        Self {
            token: d.token,
            attempt: d.attempt,
            replay_of: d.replay_of,
            event: (*d.event).clone(),
        }
    }
}

/// `POST /groups/{name}/receive` response.
#[derive(Serialize, ToSchema)]
pub struct ReceiveResponse {
    pub deliveries: Vec<DeliveryBody>,
}

/// `POST /groups/{name}/ack` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub tokens: Vec<u64>,
}

/// `POST /groups/{name}/ack` response: tokens not in flight are listed, not refused.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AckResponse {
    pub acked: usize,
    pub unknown: Vec<u64>,
}

/// `POST /groups/{name}/nack` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    pub token: u64,
    /// `retry` (after backoff; parked at max_attempts), `park` or `skip`.
    #[schema(value_type = String)]
    pub action: NackAction,
    /// The error text, kept with the dead letter.
    #[serde(default)]
    pub reason: String,
}

/// Query of `GET /groups/{name}/parked`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParkedQuery {
    /// First dead-letter id (default 0).
    pub from: Option<u64>,
    /// Most to return (default 100).
    pub limit: Option<usize>,
}

/// One unresolved dead letter.
#[derive(Serialize, ToSchema)]
pub struct ParkedBody {
    /// Its version in `$dlq-{group}`.
    pub id: u64,
    pub reason: String,
    pub attempts: u32,
    pub held_behind: Option<u64>,
    /// RFC 3339 UTC.
    pub parked_at: String,
    /// Being redelivered by a replay right now.
    pub replaying: bool,
    #[schema(value_type = RecordedEventDoc)]
    pub event: RecordedEvent,
}

impl From<ParkedEvent> for ParkedBody {
    fn from(p: ParkedEvent) -> Self {
        Self {
            id: p.id,
            reason: p.reason,
            attempts: p.attempts,
            held_behind: p.held_behind,
            parked_at: eventum_core::event::format_rfc3339_us(p.parked_at_us),
            replaying: p.replaying,
            event: (*p.event).clone(),
        }
    }
}

/// `GET /groups/{name}/parked` response.
#[derive(Serialize, ToSchema)]
pub struct ParkedResponse {
    pub parked: Vec<ParkedBody>,
}

/// `POST /groups/{name}/parked/replay` body: `{}` (or no body) replays all, `{"id": n}` one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    pub id: Option<u64>,
}

/// `POST /groups/{name}/parked/replay` response.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReplayResponse {
    pub replayed: usize,
}
