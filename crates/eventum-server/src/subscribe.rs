//! `GET /subscribe`: a store subscription relayed as Server-Sent Events, resumable with
//! `Last-Event-ID`.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use eventum_core::{RecordedEvent, StreamName, SubscriptionFrom, SubscriptionTarget};
use futures::{Stream, StreamExt};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::model::{ErrorBody, SubscribeQuery};
use crate::reads::check_category;
use crate::state::AppState;

/// Follows a stream, a category or `$all`: catch-up from `from`, then live.
///
/// Each SSE event has `event:` = the event type, `id:` = its global position and `data:` =
/// the recorded event as JSON. A failure ends the response with an `event: error` whose
/// data is the usual error body.
#[utoipa::path(
    get, path = "/subscribe", tag = "subscriptions",
    params(SubscribeQuery, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this global position; takes precedence over `from`")),
    responses(
        (status = 200, description = "text/event-stream of recorded events", content_type = "text/event-stream", body = String),
        (status = 400, description = "Not exactly one of stream, category, all; or a bad position", body = ErrorBody),
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<SubscribeQuery>,
) -> Result<Response, ApiError> {
    let target = target_of(&q)?;
    let from = start_of(&headers, q.from.as_deref())?;
    tracing::debug!(?target, ?from, "subscription opened");
    let events = state.store.subscribe(target, from);
    let stream = to_sse(events).take_until(state.shutting_down());
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.config.keep_alive))
        .into_response())
}

fn target_of(q: &SubscribeQuery) -> Result<SubscriptionTarget, ApiError> {
    let all = q.all.unwrap_or(false);
    match (&q.stream, &q.category, all) {
        (Some(s), None, false) => Ok(SubscriptionTarget::Stream(StreamName::system(s.as_str())?)),
        (None, Some(c), false) => {
            check_category(c)?;
            Ok(SubscriptionTarget::Category(c.clone()))
        }
        (None, None, true) => Ok(SubscriptionTarget::All),
        _ => Err(ApiError::invalid(
            "give exactly one of stream=NAME, category=NAME or all=true",
        )),
    }
}

/// `Last-Event-ID: P` resumes at P+1; otherwise `from` (a position or `start`); otherwise
/// only new events.
fn start_of(headers: &HeaderMap, from: Option<&str>) -> Result<SubscriptionFrom, ApiError> {
    if let Some(last) = headers.get("last-event-id") {
        let p = last
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::malformed("Last-Event-ID must be a global position"))?;
        return Ok(SubscriptionFrom::Position(p.saturating_add(1)));
    }
    match from {
        None => Ok(SubscriptionFrom::End),
        Some("start") => Ok(SubscriptionFrom::Position(0)),
        Some(text) => text.parse().map(SubscriptionFrom::Position).map_err(|_| {
            ApiError::malformed(format!(
                "from must be a global position or \"start\", got {text:?}"
            ))
        }),
    }
}

fn sse_event(event: &RecordedEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|e| {
        json!({"error": "corrupt", "message": format!("event does not serialize: {e}")}).to_string()
    });
    // Event types cannot hold control characters (eventum-core checks), so they are safe
    // as the SSE `event:` field.
    Event::default()
        .event(&event.event_type)
        .id(event.position.to_string())
        .data(data)
}

/// Relays a subscription; an error is sent as a last `error` event, then the stream ends.
fn to_sse(
    events: eventum_core::Subscription,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    events.scan(false, |failed, item| {
        if *failed {
            return futures::future::ready(None);
        }
        let ev = match item {
            Ok(event) => sse_event(&event),
            Err(e) => {
                *failed = true;
                let err = ApiError::from(e);
                tracing::warn!(code = %err.code, message = %err.message, "subscription failed");
                Event::default()
                    .event("error")
                    .data(json!({"error": err.code.as_str(), "message": err.message}).to_string())
            }
        };
        futures::future::ready(Some(Ok(ev)))
    })
}
