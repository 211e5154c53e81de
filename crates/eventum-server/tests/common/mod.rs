//! Shared helpers of the HTTP tests: a router over a fresh MemoryStore, one-shot requests,
//! and a minimal SSE frame reader.
#![allow(dead_code)] // each test file uses a different subset

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use eventum_core::{EventStore, Limits, ReadDirection};
use eventum_server::{ServerConfig, router};
use eventum_testkit::MemoryStore;
use futures::StreamExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub fn app() -> (MemoryStore, Router) {
    app_with(Limits::default(), ServerConfig::default())
}

pub fn app_with(limits: Limits, config: ServerConfig) -> (MemoryStore, Router) {
    let store = MemoryStore::new(limits);
    let r = router(Arc::new(store.clone()), config);
    (store, r)
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text))
    }

    /// Asserts a JSON error body with this status and code; returns the body.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "content type {:?}",
            self.content_type
        );
        let body = self.json();
        assert_eq!(body["error"], json!(code), "body: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "body: {body}"
        );
        body
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app
        .clone()
        .oneshot(req)
        .await
        .expect("router is infallible");
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        content_type,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub async fn delete(app: &Router, uri: &str) -> Reply {
    send(app, Request::delete(uri).body(Body::empty()).unwrap()).await
}

pub async fn post_raw(app: &Router, uri: &str, body: impl Into<Body>) -> Reply {
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    send(app, req).await
}

pub async fn post(app: &Router, uri: &str, body: Value) -> Reply {
    post_raw(app, uri, body.to_string()).await
}

pub async fn put(app: &Router, uri: &str, body: Value) -> Reply {
    let req = Request::put(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, req).await
}

/// Appends `n` events of type `T` with data `{"i": k}` and asserts success.
pub async fn append_n(app: &Router, stream: &str, n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": "T", "data": {"i": i}}))
        .collect();
    let r = post(
        app,
        &format!("/streams/{stream}"),
        json!({"events": events}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

/// Number of events in `$all`, read straight from the store.
pub async fn all_count(store: &MemoryStore) -> usize {
    store
        .read_all(None, ReadDirection::Forward, store.limits().read_events_max)
        .await
        .unwrap()
        .len()
}

/// One parsed SSE frame (comments are skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct SseFrame {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

/// Reads SSE frames from a response body.
pub struct SseReader {
    body: axum::body::BodyDataStream,
    buf: String,
}

impl SseReader {
    pub fn new(body: Body) -> Self {
        Self {
            body: body.into_data_stream(),
            buf: String::new(),
        }
    }

    /// The next frame with data, or `None` if the body ended; panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseFrame> {
        tokio::time::timeout(timeout, self.next_inner())
            .await
            .expect("timed out waiting for an SSE frame")
    }

    async fn next_inner(&mut self) -> Option<SseFrame> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut frame = SseFrame {
                    event: None,
                    id: None,
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        frame.event = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        frame.id = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if has_data {
                            frame.data.push('\n');
                        }
                        frame.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        has_data = true;
                    }
                }
                if has_data {
                    return Some(frame);
                }
                continue;
            }
            let chunk = self.body.next().await?.expect("body chunk");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
