//! Consumer-group endpoints over a real `LogStore`: create, list, info with lag, receive,
//! ack, nack (retry, park, skip), dead letters and replay, delete; every bad input is a
//! JSON 4xx that writes nothing.

mod common;

use std::sync::Arc;

use axum::Router;
use common::*;
use eventum_core::EventStore;
use eventum_groups::{GroupService, GroupsConfig};
use eventum_log::{LogConfig, LogStore};
use eventum_server::{ServerConfig, router_with_groups};
use serde_json::{Value, json};

struct App {
    _dir: tempfile::TempDir,
    store: Arc<LogStore>,
    app: Router,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    let groups = GroupService::open(
        store.clone() as Arc<dyn EventStore>,
        GroupsConfig::default(),
    )
    .await
    .unwrap();
    let app = router_with_groups(store.clone(), groups, ServerConfig::default());
    App {
        _dir: dir,
        store,
        app,
    }
}

async fn receive(app: &Router, group: &str, query: &str) -> Vec<Value> {
    let r = post_raw(app, &format!("/groups/{group}/receive?{query}"), "").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    r.json()["deliveries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn create_receive_ack_and_lag() {
    let App { store, app, .. } = app().await;
    append_n(&app, "order-1", 3).await;
    append_n(&app, "user-1", 1).await;
    let r = put(
        &app,
        "/groups/billing",
        json!({"target": {"category": "order"}, "max_attempts": 3, "ack_timeout_ms": 60000}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let info = r.json();
    assert_eq!(info["name"], "billing");
    assert_eq!(info["settings"]["target"], json!({"category": "order"}));
    assert_eq!(info["settings"]["ordered"], true);
    assert_eq!(info["settings"]["max_attempts"], 3);

    let list = get(&app, "/groups").await.json();
    assert_eq!(list["groups"].as_array().unwrap().len(), 1);

    // Ordered: one event of order-1 at a time.
    let ds = receive(&app, "billing", "consumer=c1&max=10&wait_ms=2000").await;
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["event"]["stream"], "order-1");
    assert_eq!(ds[0]["event"]["version"], 0);
    assert_eq!(ds[0]["event"]["data"], json!({"i": 0}));
    assert_eq!(ds[0]["attempt"], 1);
    let info = get(&app, "/groups/billing").await.json();
    assert_eq!(info["in_flight"], 1);
    assert_eq!(info["checkpoint"], 0);
    assert_eq!(
        info["lag_events"],
        json!(store.head_position().unwrap() + 1)
    );

    let token = ds[0]["token"].as_u64().unwrap();
    let r = post(
        &app,
        "/groups/billing/ack",
        json!({"tokens": [token, 12345]}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json(), json!({"acked": 1, "unknown": [12345]}));
    let ds = receive(&app, "billing", "consumer=c1&max=10&wait_ms=2000").await;
    assert_eq!(ds[0]["event"]["version"], 1);
    let info = get(&app, "/groups/billing").await.json();
    assert_eq!(info["checkpoint"], 1);
    assert_eq!(info["in_flight"], 1);

    let r = delete(&app, "/groups/billing").await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    get(&app, "/groups/billing")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn nack_park_list_and_replay() {
    let App { app, .. } = app().await;
    append_n(&app, "job-1", 2).await;
    let r = put(
        &app,
        "/groups/w",
        json!({"target": "all", "ordered": false}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let ds = receive(&app, "w", "consumer=c&max=10&wait_ms=2000").await;
    assert_eq!(ds.len(), 2);
    let (t0, t1) = (
        ds[0]["token"].as_u64().unwrap(),
        ds[1]["token"].as_u64().unwrap(),
    );
    let r = post(
        &app,
        "/groups/w/nack",
        json!({"token": t0, "action": "park", "reason": "bad total"}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let r = post(
        &app,
        "/groups/w/nack",
        json!({"token": t1, "action": "skip"}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    post(
        &app,
        "/groups/w/nack",
        json!({"token": t1, "action": "retry"}),
    )
    .await
    .assert_error(404, "not_found");

    let parked = get(&app, "/groups/w/parked").await.json();
    let parked = parked["parked"].as_array().unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0]["reason"], "bad total");
    assert_eq!(parked[0]["attempts"], 1);
    assert_eq!(parked[0]["event"]["stream"], "job-1");
    assert_eq!(parked[0]["event"]["version"], 0);
    let id = parked[0]["id"].as_u64().unwrap();
    // The dead letter is an event of $dlq-w, readable like any stream.
    let dlq = get(&app, "/streams/$dlq-w").await.json();
    assert_eq!(dlq["events"][0]["data"]["reason"], "bad total");
    assert_eq!(get(&app, "/groups/w").await.json()["parked"], 1);

    post(&app, "/groups/w/parked/replay", json!({"id": id + 100}))
        .await
        .assert_error(404, "not_found");
    let r = post(&app, "/groups/w/parked/replay", json!({"id": id})).await;
    assert_eq!(r.json(), json!({"replayed": 1}));
    let ds = receive(&app, "w", "consumer=c&max=10&wait_ms=2000").await;
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["replay_of"], json!(id));
    let r = post(&app, "/groups/w/ack", json!({"tokens": [ds[0]["token"]]})).await;
    assert_eq!(r.json()["acked"], 1);
    assert!(
        get(&app, "/groups/w/parked").await.json()["parked"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Replay of all with an empty body: nothing is left.
    let r = post_raw(&app, "/groups/w/parked/replay", "").await;
    assert_eq!(r.json(), json!({"replayed": 0}));
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let App { store, app, .. } = app().await;
    let cases = [
        (
            "/groups/bad%2Fname",
            json!({"target": "all"}),
            "invalid_input",
        ),
        (
            "/groups/g",
            json!({"target": {"category": "a-b"}}),
            "invalid_input",
        ),
        (
            "/groups/g",
            json!({"target": "all", "max_attempts": 0}),
            "invalid_input",
        ),
        (
            "/groups/g",
            json!({"target": "all", "from": "yesterday"}),
            "malformed_request",
        ),
        (
            "/groups/g",
            json!({"target": "everything"}),
            "malformed_request",
        ),
        (
            "/groups/g",
            json!({"target": "all", "color": "red"}),
            "malformed_request",
        ),
        ("/groups/g", json!({}), "malformed_request"),
    ];
    for (uri, body, code) in cases {
        put(&app, uri, body.clone()).await.assert_error(400, code);
    }
    assert_eq!(store.head_position(), None, "refused creates write nothing");
    assert!(
        get(&app, "/groups").await.json()["groups"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let r = put(&app, "/groups/g", json!({"target": "all"})).await;
    assert_eq!(r.status.as_u16(), 201);
    let head = store.head_position();
    put(&app, "/groups/g", json!({"target": "all"}))
        .await
        .assert_error(409, "already_exists");
    assert_eq!(store.head_position(), head);

    get(&app, "/groups/nope")
        .await
        .assert_error(404, "not_found");
    post_raw(&app, "/groups/nope/receive?consumer=c", "")
        .await
        .assert_error(404, "not_found");
    post_raw(&app, "/groups/g/receive", "")
        .await
        .assert_error(400, "malformed_request");
    post_raw(&app, "/groups/g/receive?consumer=c&max=0", "")
        .await
        .assert_error(400, "invalid_input");
    post_raw(&app, "/groups/g/receive?consumer=c&max=many", "")
        .await
        .assert_error(400, "malformed_request");
    post(&app, "/groups/g/ack", json!({"tokens": "x"}))
        .await
        .assert_error(400, "malformed_request");
    post(
        &app,
        "/groups/g/nack",
        json!({"token": 1, "action": "explode"}),
    )
    .await
    .assert_error(400, "malformed_request");
    get(&app, "/groups/g/parked?limit=0")
        .await
        .assert_error(400, "invalid_input");
    post_raw(&app, "/groups/g/parked/replay", "[1]")
        .await
        .assert_error(400, "malformed_request");
    delete(&app, "/groups/nope")
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        store.head_position(),
        head,
        "refused requests write nothing"
    );
}

#[tokio::test]
async fn without_a_group_service_groups_are_unavailable() {
    let (_store, app) = common::app();
    get(&app, "/groups").await.assert_error(503, "unavailable");
}

#[tokio::test]
async fn openapi_lists_the_group_routes() {
    let App { app, .. } = app().await;
    let doc = get(&app, "/openapi.json").await.json();
    for path in [
        "/groups",
        "/groups/{name}",
        "/groups/{name}/receive",
        "/groups/{name}/ack",
        "/groups/{name}/nack",
        "/groups/{name}/parked",
        "/groups/{name}/parked/replay",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/groups/{name}"]["put"].is_object());
    assert!(doc["paths"]["/groups/{name}"]["delete"].is_object());
}
