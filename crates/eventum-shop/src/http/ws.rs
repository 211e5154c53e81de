//! `GET /ws/notifications`: a WebSocket that pushes the caller's notifications (and no
//! one else's) as JSON text messages. The JWT comes in the `Authorization: Bearer` header
//! or, for browsers, which cannot set headers on a WebSocket, as `?token=`. The first
//! message is `{"type":"CONNECTED"}`: everything recorded after it is pushed.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::Response;
use eventum_core::ErrorCode;
use eventum_server::ApiError;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::{api, bearer};
use crate::service::Shop;

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

pub(crate) async fn notifications(
    State(shop): State<Shop>,
    Query(q): Query<TokenQuery>,
    parts: Parts,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = bearer(&parts)
        .map(str::to_owned)
        .or(q.token)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "a token is required"))?;
    let caller = shop.verify_token(&token).map_err(|e| api(e.code(), e))?;
    let permit = shop
        .inner
        .websockets
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::new(ErrorCode::Unavailable, "too many WebSocket connections"))?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _permit = permit;
        push(shop, caller.username, socket).await;
    }))
}

async fn push(shop: Shop, username: String, mut socket: WebSocket) {
    let mut live = Box::pin(shop.live_notifications(username));
    let hello = json!({"type": "CONNECTED"}).to_string();
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            next = live.next() => match next {
                Some(n) => {
                    if socket.send(Message::Text(n.to_string().into())).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
