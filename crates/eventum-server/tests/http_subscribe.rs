//! `GET /subscribe`: SSE delivery order, catch-up then live, `Last-Event-ID` resume without
//! gap or duplicate, parameter errors, keep-alives, and shutdown of open subscriptions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use eventum_core::Limits;
use eventum_server::{ServerConfig, serve};
use eventum_testkit::MemoryStore;
use futures::StreamExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const WAIT: Duration = Duration::from_secs(5);

async fn open(app: &Router, uri: &str, last_event_id: Option<&str>) -> SseReader {
    let mut req = Request::get(uri);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    SseReader::new(res.into_body())
}

/// Reads `n` frames and checks each one's id, type and JSON agree; returns the events.
async fn take(reader: &mut SseReader, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        let f = reader.next(WAIT).await.expect("subscription ended early");
        let event: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(
            f.id.as_deref(),
            Some(event["position"].to_string().as_str())
        );
        assert_eq!(f.event.as_deref(), event["type"].as_str());
        out.push(event);
    }
    out
}

fn positions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn all_from_start_catches_up_then_goes_live_in_order() {
    let (_store, app) = app();
    append_n(&app, "a-1", 3).await;
    let mut sub = open(&app, "/subscribe?all=true&from=start", None).await;
    let caught_up = take(&mut sub, 3).await;
    assert_eq!(positions(&caught_up), [0, 1, 2]);
    assert_eq!(caught_up[1]["data"], json!({"i": 1}));
    append_n(&app, "b-1", 2).await;
    let live = take(&mut sub, 2).await;
    assert_eq!(positions(&live), [3, 4]);
    assert_eq!(live[0]["stream"], json!("b-1"));
}

#[tokio::test]
async fn without_from_only_new_events_arrive() {
    let (_store, app) = app();
    append_n(&app, "a-1", 2).await;
    let mut sub = open(&app, "/subscribe?stream=a-1", None).await;
    append_n(&app, "a-1", 1).await;
    let got = take(&mut sub, 1).await;
    assert_eq!(positions(&got), [2]);
    assert_eq!(got[0]["version"], json!(2));
}

#[tokio::test]
async fn stream_and_category_subscriptions_filter() {
    let (_store, app) = app();
    append_n(&app, "order-1", 1).await;
    append_n(&app, "user-1", 1).await;
    append_n(&app, "order-2", 1).await;
    let mut by_cat = open(&app, "/subscribe?category=order&from=0", None).await;
    let got = take(&mut by_cat, 2).await;
    assert_eq!(positions(&got), [0, 2]);
    let mut by_stream = open(&app, "/subscribe?stream=user-1&from=start", None).await;
    append_n(&app, "user-1", 1).await;
    append_n(&app, "order-1", 1).await;
    let got = take(&mut by_stream, 2).await;
    assert_eq!(positions(&got), [1, 3]);
    // The category subscription sees the live order event, not the user one.
    let got = take(&mut by_cat, 1).await;
    assert_eq!(positions(&got), [4]);
}

#[tokio::test]
async fn last_event_id_resumes_without_gap_or_duplicate() {
    let (_store, app) = app();
    for i in 0..4 {
        append_n(&app, &format!("order-{}", i % 2), 3).await;
    }
    // Read part of the category, then "lose the connection".
    let mut first = open(&app, "/subscribe?category=order&from=start", None).await;
    let mut seen = take(&mut first, 5).await;
    let last_id = seen.last().unwrap()["position"].to_string();
    drop(first);
    append_n(&app, "order-1", 2).await;
    // The header wins over `from`.
    let mut resumed = open(&app, "/subscribe?category=order&from=0", Some(&last_id)).await;
    seen.extend(take(&mut resumed, 9).await);
    assert_eq!(positions(&seen), (0..14).collect::<Vec<u64>>());
    append_n(&app, "order-0", 1).await;
    assert_eq!(positions(&take(&mut resumed, 1).await), [14]);
}

#[tokio::test]
async fn keep_alive_comments_are_sent() {
    let config = ServerConfig {
        keep_alive: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let (_store, app) = app_with(Limits::default(), config);
    let res = app
        .oneshot(
            Request::get("/subscribe?all=true")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = res.into_body().into_data_stream();
    let chunk = tokio::time::timeout(WAIT, body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(chunk.starts_with(b":"), "{chunk:?}");
}

#[tokio::test]
async fn bad_subscription_parameters() {
    let (store, app) = app();
    for uri in [
        "/subscribe",
        "/subscribe?all=false",
        "/subscribe?all=true&stream=a-1",
        "/subscribe?stream=a-1&category=a",
        "/subscribe?stream=",
        "/subscribe?category=a-b",
        "/subscribe?category=",
    ] {
        get(&app, uri).await.assert_error(400, "invalid_input");
    }
    for uri in [
        "/subscribe?all=true&from=x",
        "/subscribe?all=true&from=-1",
        "/subscribe?all=maybe",
    ] {
        get(&app, uri).await.assert_error(400, "malformed_request");
    }
    let req = Request::get("/subscribe?all=true")
        .header("last-event-id", "abc")
        .body(Body::empty())
        .unwrap();
    send(&app, req).await.assert_error(400, "malformed_request");
    assert_eq!(all_count(&store).await, 0);
}

/// Over a real socket: events reach an HTTP client, and shutting the server down ends
/// the open subscription so that `serve` returns.
#[tokio::test]
async fn serve_delivers_over_tcp_and_shutdown_ends_subscriptions() {
    let store = MemoryStore::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        Arc::new(store.clone()),
        ServerConfig::default(),
        listener,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let r = client
        .post(format!("{base}/streams/t-1"))
        .json(&json!({"events": [{"type": "Hello", "data": {"n": 1}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let res = client
        .get(format!("{base}/subscribe?all=true&from=start"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.contains("event: Hello\n"), "{text}");
    assert!(text.contains("id: 0\n"), "{text}");

    stop_tx.send(()).unwrap();
    // The subscription body ends, and the server finishes.
    let rest = tokio::time::timeout(WAIT, async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "subscription did not end on shutdown");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("serve did not return after shutdown")
        .unwrap()
        .unwrap();
}
