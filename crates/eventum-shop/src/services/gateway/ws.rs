//! Live notifications: one plain NATS subscription on the notifications topic feeds a hub
//! that routes each notification to its owner's open WebSockets (`/ws/notifications`,
//! the same protocol as the in-process shop: JWT in the `Authorization` header or
//! `?token=`, a `{"type":"CONNECTED"}` first, then one JSON message per notification).
//! Live only, like any WebSocket: the durable listing is `GET /api/notifications`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::Response;
use eventum_core::ErrorCode;
use eventum_server::ApiError;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Gateway;
use crate::http::{api, bearer};
use crate::services::inbound::BusMessage;
use crate::views::notification_json;

type Senders = Vec<(u64, mpsc::Sender<Value>)>;

/// Open WebSockets by user.
pub struct Hub {
    users: Mutex<HashMap<String, Senders>>,
    next_id: AtomicU64,
    /// Notifications queued for one slow client before it is disconnected.
    queue_max: usize,
}

impl Hub {
    pub fn new(queue_max: usize) -> Self {
        Self {
            users: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            queue_max: queue_max.max(1),
        }
    }

    fn register(&self, user: &str) -> (u64, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(self.queue_max);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.users
            .lock()
            .expect("hub lock")
            .entry(user.to_owned())
            .or_default()
            .push((id, tx));
        (id, rx)
    }

    fn unregister(&self, user: &str, id: u64) {
        let mut users = self.users.lock().expect("hub lock");
        if let Some(senders) = users.get_mut(user) {
            senders.retain(|(i, _)| *i != id);
            if senders.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Hands `notification` to its owner's sockets; a socket whose queue is full is
    /// dropped (its client reconnects and reads the listing).
    pub fn publish(&self, user: &str, notification: Value) {
        let mut users = self.users.lock().expect("hub lock");
        if let Some(senders) = users.get_mut(user) {
            senders.retain(|(_, tx)| tx.try_send(notification.clone()).is_ok());
            if senders.is_empty() {
                users.remove(user);
            }
        }
    }
}

/// Follows `subject` (plain NATS, no acknowledgements) and feeds the hub until the
/// client closes.
pub async fn spawn_feed(
    hub: std::sync::Arc<Hub>,
    client: async_nats::Client,
    subject: String,
) -> anyhow::Result<JoinHandle<()>> {
    let mut subscription = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to {subject}: {e}"))?;
    Ok(tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            let Some(headers) = message.headers.as_ref() else {
                continue;
            };
            let Some(m) = BusMessage::from_headers(
                |name| headers.get(name).map(|v| v.as_str().to_owned()),
                message.payload.clone(),
            ) else {
                continue;
            };
            if m.event_type != "NotificationCreated" {
                continue;
            }
            let data = m.data();
            let user = data["userId"].as_str().unwrap_or_default();
            let doc = notification_json(
                &m.id.to_string(),
                data["orderId"].as_str().unwrap_or_default(),
                user,
                data["kind"].as_str().unwrap_or_default(),
                data["message"].as_str().unwrap_or_default(),
                &m.time,
            );
            hub.publish(user, doc);
        }
    }))
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

pub(crate) async fn notifications(
    State(gateway): State<Gateway>,
    Query(q): Query<TokenQuery>,
    parts: Parts,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = bearer(&parts)
        .map(str::to_owned)
        .or(q.token)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "a token is required"))?;
    let caller = gateway.verify_token(&token).map_err(|e| api(e.code(), e))?;
    let permit = gateway
        .inner
        .websockets
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::new(ErrorCode::Unavailable, "too many WebSocket connections"))?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _permit = permit;
        push(gateway, caller.username, socket).await;
    }))
}

async fn push(gateway: Gateway, user: String, mut socket: WebSocket) {
    let hub = gateway.inner.hub.clone();
    let (id, mut live) = hub.register(&user);
    let hello = json!({"type": "CONNECTED"}).to_string();
    if socket.send(Message::Text(hello.into())).await.is_ok() {
        loop {
            tokio::select! {
                next = live.recv() => match next {
                    Some(n) => {
                        if socket.send(Message::Text(n.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    hub.unregister(&user, id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_their_owner_only_and_slow_sockets_are_dropped() {
        let hub = Hub::new(2);
        let (a, mut alice) = hub.register("alice");
        let (_, mut bob) = hub.register("bob");
        hub.publish("alice", json!(1));
        assert_eq!(alice.try_recv().unwrap(), json!(1));
        assert!(bob.try_recv().is_err());
        for n in 0..3 {
            hub.publish("bob", json!(n));
        }
        assert_eq!(bob.try_recv().unwrap(), json!(0));
        assert_eq!(bob.try_recv().unwrap(), json!(1));
        assert!(bob.try_recv().is_err(), "dropped at the third");
        assert!(hub.users.lock().unwrap().get("bob").is_none());
        hub.unregister("alice", a);
        assert!(hub.users.lock().unwrap().is_empty());
    }
}
