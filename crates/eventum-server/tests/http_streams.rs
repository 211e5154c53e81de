//! Happy paths of the HTTP API: append, read (stream, $all, category), conflicts,
//! idempotent retries, delete, metadata, health and the OpenAPI document.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn append_then_read_round_trips_data_and_metadata() {
    let (_store, app) = app();
    let id = "0190f5a8-1111-7000-8000-000000000001";
    let corr = "0190f5a8-2222-7000-8000-000000000002";
    // Data keeps its exact text (number formatting, key order) end to end.
    let body = format!(
        r#"{{"expected_version":"no_stream","events":[
            {{"id":"{id}","type":"OrderPlaced","data":{{"z":1.50,"a":[true,null]}},"metadata":{{"user":"u1","correlation_id":"{corr}"}}}},
            {{"type":"OrderPaid","data":"paid"}}]}}"#
    );
    let r = post_raw(&app, "/streams/order-1", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!({"next_expected_version": 1, "position": 1}));

    let r = get(&app, "/streams/order-1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text.contains(r#""data":{"z":1.50,"a":[true,null]}"#),
        "{}",
        r.text
    );
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["id"], json!(id));
    assert_eq!(events[0]["type"], json!("OrderPlaced"));
    assert_eq!(events[0]["stream"], json!("order-1"));
    assert_eq!(events[0]["version"], json!(0));
    assert_eq!(events[0]["metadata"]["user"], json!("u1"));
    assert_eq!(events[0]["metadata"]["correlation_id"], json!(corr));
    assert_eq!(events[1]["data"], json!("paid"));
    assert_eq!(events[1]["position"], json!(1));
}

#[tokio::test]
async fn expected_version_defaults_to_any_and_exact_versions_chain() {
    let (_store, app) = app();
    let r = post(
        &app,
        "/streams/s-1",
        json!({"events": [{"type": "A", "data": 1}]}),
    )
    .await;
    assert_eq!(r.json()["next_expected_version"], json!(0));
    let r = post(
        &app,
        "/streams/s-1",
        json!({"expected_version": 0, "events": [{"type": "B", "data": 2}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!({"next_expected_version": 1, "position": 1}));
    let r = post(
        &app,
        "/streams/s-1",
        json!({"expected_version": "exists", "events": [{"type": "C", "data": 3}]}),
    )
    .await;
    assert_eq!(r.json()["next_expected_version"], json!(2));
}

#[tokio::test]
async fn conflicts_report_expected_and_actual() {
    let (store, app) = app();
    append_n(&app, "s-1", 3).await;
    let r = post(
        &app,
        "/streams/s-1",
        json!({"expected_version": 0, "events": [{"type": "T", "data": 0}]}),
    )
    .await;
    let body = r.assert_error(409, "wrong_expected_version");
    assert_eq!(body["expected"], json!(0));
    assert_eq!(body["actual"], json!(2));

    let r = post(
        &app,
        "/streams/other-1",
        json!({"expected_version": "exists", "events": [{"type": "T", "data": 0}]}),
    )
    .await;
    let body = r.assert_error(409, "wrong_expected_version");
    assert_eq!(body["expected"], json!("exists"));
    assert_eq!(body["actual"], json!("no_stream"));

    let r = post(
        &app,
        "/streams/s-1",
        json!({"expected_version": "no_stream", "events": [{"type": "T", "data": 0}]}),
    )
    .await;
    let body = r.assert_error(409, "wrong_expected_version");
    assert_eq!(body["expected"], json!("no_stream"));
    assert_eq!(all_count(&store).await, 3);
}

#[tokio::test]
async fn identical_retry_returns_the_original_result_and_writes_nothing() {
    let (store, app) = app();
    append_n(&app, "x-1", 2).await;
    let req = json!({"expected_version": 1, "events": [
        {"id": "0190f5a8-0000-7000-8000-00000000000a", "type": "T", "data": 1},
        {"id": "0190f5a8-0000-7000-8000-00000000000b", "type": "T", "data": 2},
    ]});
    let first = post(&app, "/streams/x-1", req.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let retry = post(&app, "/streams/x-1", req).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(first.json(), retry.json());
    assert_eq!(
        first.json(),
        json!({"next_expected_version": 3, "position": 3})
    );
    assert_eq!(all_count(&store).await, 4);
}

#[tokio::test]
async fn reads_honour_from_limit_and_direction() {
    let (_store, app) = app();
    append_n(&app, "r-1", 5).await;
    let versions = |r: &Reply| -> Vec<u64> {
        r.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        versions(&get(&app, "/streams/r-1?from=1&limit=2").await),
        [1, 2]
    );
    assert_eq!(
        versions(&get(&app, "/streams/r-1?direction=backward&limit=2").await),
        [4, 3]
    );
    assert_eq!(
        versions(&get(&app, "/streams/r-1?from=2&direction=backward").await),
        [2, 1, 0]
    );
    assert_eq!(versions(&get(&app, "/streams/r-1").await), [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn default_read_limit_applies() {
    let (_store, app) = app();
    append_n(&app, "big-1", 150).await;
    let r = get(&app, "/streams/big-1").await;
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn all_and_category_reads() {
    let (_store, app) = app();
    append_n(&app, "order-1", 2).await;
    append_n(&app, "user-1", 1).await;
    append_n(&app, "order-2", 1).await;
    let positions = |v: Value| -> Vec<(String, u64)> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["stream"].as_str().unwrap().to_owned(),
                    e["position"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let all = get(&app, "/all").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(positions(all.json()).len(), 4);
    let back = get(&app, "/all?direction=backward&limit=1").await;
    assert_eq!(positions(back.json()), [("order-2".to_owned(), 3)]);
    let cat = get(&app, "/categories/order?from=1").await;
    assert_eq!(
        positions(cat.json()),
        [("order-1".to_owned(), 1), ("order-2".to_owned(), 3)]
    );
    let cat = get(&app, "/categories/user").await;
    assert_eq!(positions(cat.json()), [("user-1".to_owned(), 2)]);
}

#[tokio::test]
async fn missing_and_deleted_streams() {
    let (_store, app) = app();
    get(&app, "/streams/nope-1")
        .await
        .assert_error(404, "stream_not_found");

    append_n(&app, "gone-1", 2).await;
    delete(&app, "/streams/gone-1?expected_version=0")
        .await
        .assert_error(409, "wrong_expected_version");
    let r = delete(&app, "/streams/gone-1?expected_version=1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json()["position"].is_u64());
    get(&app, "/streams/gone-1")
        .await
        .assert_error(410, "stream_deleted");
    post(
        &app,
        "/streams/gone-1",
        json!({"events": [{"type": "T", "data": 1}]}),
    )
    .await
    .assert_error(410, "stream_deleted");
    delete(&app, "/streams/gone-1")
        .await
        .assert_error(410, "stream_deleted");
    // Deleted streams keep their events in $all.
    let all = get(&app, "/all").await.json();
    assert!(
        all["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["stream"] == "gone-1")
    );
    // Reads may inspect the system stream that records the deletion.
    let sys = get(&app, "/streams/$$gone-1").await;
    assert_eq!(sys.status, StatusCode::OK, "{}", sys.text);
    assert_eq!(sys.json()["events"][0]["type"], json!("$stream-deleted"));
    let meta = get(&app, "/streams/gone-1/metadata").await.json();
    assert_eq!(meta["deleted"], json!(true));
}

#[tokio::test]
async fn stream_metadata_is_set_and_applied() {
    let (_store, app) = app();
    append_n(&app, "m-1", 5).await;
    let r = get(&app, "/streams/m-1/metadata").await;
    assert_eq!(
        r.json(),
        json!({"stream": "m-1", "version": 4, "deleted": false, "metadata": {}})
    );
    let r = put(&app, "/streams/m-1/metadata", json!({"max_count": 2})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get(&app, "/streams/m-1/metadata").await;
    assert_eq!(r.json()["metadata"], json!({"max_count": 2}));
    let events = get(&app, "/streams/m-1").await.json()["events"]
        .as_array()
        .unwrap()
        .clone();
    let versions: Vec<_> = events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 4]);
    let r = get(&app, "/streams/none-1/metadata").await;
    assert_eq!(r.json()["version"], Value::Null);
}

#[tokio::test]
async fn health_reports_head_position() {
    let (_store, app) = app();
    assert_eq!(
        get(&app, "/health").await.json(),
        json!({"status": "ok", "head_position": null})
    );
    append_n(&app, "h-1", 3).await;
    assert_eq!(get(&app, "/health").await.json()["head_position"], json!(2));
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_docs_ui_is_served() {
    let (_store, app) = app();
    let r = get(&app, "/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("application/json"));
    let doc = r.json();
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/streams/{stream}", &["post", "get", "delete"][..]),
        ("/streams/{stream}/metadata", &["put", "get"]),
        ("/all", &["get"]),
        ("/categories/{category}", &["get"]),
        ("/subscribe", &["get"]),
        ("/health", &["get"]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "missing {m} {path}");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "AppendRequest",
        "EventInput",
        "AppendResponse",
        "ErrorBody",
        "RecordedEvent",
    ] {
        assert!(
            schemas.contains_key(s),
            "missing schema {s}: {:?}",
            schemas.keys()
        );
    }
    let docs = get(&app, "/docs").await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.content_type.starts_with("text/html"));
    assert!(docs.text.contains("/streams/{stream}"));
}
