//! `eventum shop load --watch ws`: sees orders end through the shop's own WebSocket,
//! `/ws/notifications`, one connection per load user, instead of the store's SSE API.
//! Every terminal state has exactly one notification (`ORDER_CONFIRMED` or
//! `ORDER_CANCELLED`), so this works against any shop front door — `eventum serve` or
//! the gateway of `eventum shop service` — and measures the time to a state the user is
//! told about.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use indicatif::ProgressBar;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::client::ServerOpt;

/// Terminal states seen, by order id: when, and whether it was a confirmation.
pub type Terminals = Arc<Mutex<HashMap<String, (Instant, bool)>>>;

/// The WebSocket URL of the notifications of the holder of `token`.
fn ws_url(server: &ServerOpt, token: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = server.url(&["ws", "notifications"])?;
    let scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        other => bail!("--server scheme {other} cannot carry a WebSocket"),
    };
    url.set_scheme(scheme)
        .map_err(|()| anyhow!("cannot make a WebSocket URL of {url}"))?;
    url.query_pairs_mut().append_pair("token", token);
    Ok(url)
}

/// Connects one WebSocket per token and waits for each to say `CONNECTED` (from then on
/// nothing is missed); the returned future records every terminal notification until
/// the connections close.
pub async fn follow(
    server: &ServerOpt,
    tokens: &[String],
    terminals: Terminals,
    bar: ProgressBar,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static> {
    let mut readers = Vec::with_capacity(tokens.len());
    for token in tokens {
        let url = ws_url(server, token)?;
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .context("cannot open the notifications WebSocket")?;
        match socket.next().await {
            Some(Ok(Message::Text(t))) if t.contains("CONNECTED") => {}
            other => bail!("the WebSocket did not say CONNECTED: {other:?}"),
        }
        let (terminals, bar) = (terminals.clone(), bar.clone());
        readers.push(async move {
            while let Some(Ok(message)) = socket.next().await {
                let now = Instant::now();
                let text = match message {
                    Message::Text(t) => t,
                    Message::Ping(p) => {
                        let _ = socket.send(Message::Pong(p)).await;
                        continue;
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let confirmed = match v["type"].as_str() {
                    Some("ORDER_CONFIRMED") => true,
                    Some("ORDER_CANCELLED") => false,
                    _ => continue,
                };
                if let Some(id) = v["orderId"].as_str() {
                    terminals
                        .lock()
                        .await
                        .insert(id.to_owned(), (now, confirmed));
                    bar.inc(1);
                }
            }
        });
    }
    Ok(async move {
        futures::future::join_all(readers).await;
        Ok(())
    })
}
