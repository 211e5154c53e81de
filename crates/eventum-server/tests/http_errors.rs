//! Every bad input gets a 4xx JSON error body with the right code, and writes nothing.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use eventum_core::{ErrorCode, Limits};
use eventum_server::{ServerConfig, status_for};
use serde_json::json;

const EV: &str = r#"{"type":"T","data":{}}"#;

#[test]
fn status_table_matches_the_contract() {
    let table = [
        (ErrorCode::WrongExpectedVersion, 409),
        (ErrorCode::StreamNotFound, 404),
        (ErrorCode::NotFound, 404),
        (ErrorCode::StreamDeleted, 410),
        (ErrorCode::InvalidInput, 400),
        (ErrorCode::MalformedRequest, 400),
        (ErrorCode::EventTooLarge, 413),
        (ErrorCode::BatchTooLarge, 413),
        (ErrorCode::DiskFull, 507),
        (ErrorCode::StorageFailed, 500),
        (ErrorCode::Corrupt, 500),
        (ErrorCode::Unavailable, 503),
        (ErrorCode::DomainRejected, 422),
        (ErrorCode::AlreadyExists, 409),
        (ErrorCode::Unauthorized, 401),
        (ErrorCode::Forbidden, 403),
    ];
    assert_eq!(table.len(), ErrorCode::ALL.len());
    for (code, status) in table {
        assert_eq!(status_for(code).as_u16(), status, "{code}");
    }
}

/// Posts each body to `/streams/s-1`, expecting the status and code, and nothing written.
async fn refused_bodies(cases: &[(&str, u16, &str)]) {
    let (store, app) = app();
    for (body, status, code) in cases {
        let r = post_raw(&app, "/streams/s-1", body.to_string()).await;
        assert_eq!(r.status.as_u16(), *status, "body {body}: {}", r.text);
        r.assert_error(*status, code);
    }
    assert_eq!(all_count(&store).await, 0);
}

#[tokio::test]
async fn malformed_json_missing_fields_and_wrong_types() {
    refused_bodies(&[
        ("", 400, "malformed_request"),
        ("{", 400, "malformed_request"),
        ("not json", 400, "malformed_request"),
        (
            r#"{"events": [{"type":"T","data":{}}]"#,
            400,
            "malformed_request",
        ),
        ("{}", 400, "malformed_request"),
        ("[]", 400, "malformed_request"),
        (
            r#"["any", [{"type":"T","data":{}}]]"#,
            400,
            "malformed_request",
        ),
        (r#"{"events": {}}"#, 400, "malformed_request"),
        (r#"{"events": [{"data": 1}]}"#, 400, "malformed_request"),
        (r#"{"events": [{"type": "T"}]}"#, 400, "malformed_request"),
        (
            r#"{"events": [{"type": 5, "data": 1}]}"#,
            400,
            "malformed_request",
        ),
        (
            r#"{"events": [{"type": "T", "data": 1, "id": 7}]}"#,
            400,
            "malformed_request",
        ),
        (
            r#"{"events": [{"type": "T", "data": 1, "extra": 1}]}"#,
            400,
            "malformed_request",
        ),
        (
            &format!(r#"{{"expected_version": "sometimes", "events": [{EV}]}}"#),
            400,
            "malformed_request",
        ),
        (
            &format!(r#"{{"expected_version": -1, "events": [{EV}]}}"#),
            400,
            "malformed_request",
        ),
        (
            &format!(r#"{{"expected_version": 1.5, "events": [{EV}]}}"#),
            400,
            "malformed_request",
        ),
        (
            &format!(r#"{{"expected_versoin": 0, "events": [{EV}]}}"#),
            400,
            "malformed_request",
        ),
    ])
    .await;
}

#[tokio::test]
async fn invalid_events() {
    let id = "0190f5a8-0000-7000-8000-00000000000a";
    refused_bodies(&[
        (r#"{"events": []}"#, 400, "invalid_input"),
        (r#"{"events": [{"type": "", "data": 1}]}"#, 400, "invalid_input"),
        (r#"{"events": [{"type": "a\nb", "data": 1}]}"#, 400, "invalid_input"),
        (&format!(r#"{{"events": [{{"type": "{}", "data": 1}}]}}"#, "t".repeat(257)), 400, "invalid_input"),
        (r#"{"events": [{"type": "T", "data": 1, "id": "not-a-uuid"}]}"#, 400, "invalid_input"),
        (r#"{"events": [{"type": "T", "data": 1, "metadata": [1]}]}"#, 400, "invalid_input"),
        (r#"{"events": [{"type": "T", "data": 1, "metadata": "m"}]}"#, 400, "invalid_input"),
        (r#"{"events": [{"type": "T", "data": 1, "metadata": {"correlation_id": "x"}}]}"#, 400, "invalid_input"),
        (
            &format!(r#"{{"events": [{{"type":"T","data":1,"id":"{id}"}},{{"type":"T","data":2,"id":"{id}"}}]}}"#),
            400,
            "invalid_input",
        ),
        // A later bad event refuses the whole batch.
        (r#"{"events": [{"type": "T", "data": 1}, {"type": "T", "data": 1, "id": "x"}]}"#, 400, "invalid_input"),
    ])
    .await;
}

#[tokio::test]
async fn bad_stream_names() {
    let (store, app) = app();
    let body = json!({"events": [{"type": "T", "data": 1}]});
    let long = "x".repeat(257);
    for uri in [
        "/streams/".to_owned(),
        format!("/streams/{long}"),
        "/streams/a%0Ab".to_owned(),
        "/streams/a%00b".to_owned(),
        "/streams/$all".to_owned(),
        "/streams/%24%24s-1".to_owned(),
    ] {
        post(&app, &uri, body.clone())
            .await
            .assert_error(400, "invalid_input");
        delete(&app, &uri).await.assert_error(400, "invalid_input");
        put(&app, &format!("{uri}/metadata"), json!({"max_count": 1}))
            .await
            .assert_error(400, "invalid_input");
    }
    assert_eq!(all_count(&store).await, 0);
    // The longest allowed name works.
    let ok = post(&app, &format!("/streams/{}", "x".repeat(256)), body).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test]
async fn event_and_batch_over_the_limits() {
    let limits = Limits {
        event_bytes_max: 100,
        batch_events_max: 3,
        batch_bytes_max: 250,
        read_events_max: 50,
    };
    let (store, app) = app_with(limits, ServerConfig::default());
    let data = |n: usize| json!("x".repeat(n));
    let ev = |n: usize| json!({"type": "T", "data": data(n)});
    let cases = [
        (json!({"events": [ev(10), ev(200)]}), "event_too_large"),
        (
            json!({"events": [ev(1), ev(1), ev(1), ev(1)]}),
            "batch_too_large",
        ),
        (
            json!({"events": [ev(90), ev(90), ev(90)]}),
            "batch_too_large",
        ),
    ];
    for (body, code) in cases {
        post(&app, "/streams/s-1", body)
            .await
            .assert_error(413, code);
    }
    // Metadata counts against the event limit too.
    let meta = json!({"events": [{"type": "T", "data": 1, "metadata": {"k": "v".repeat(120)}}]});
    post(&app, "/streams/s-1", meta)
        .await
        .assert_error(413, "event_too_large");
    assert_eq!(all_count(&store).await, 0);
    let ok = post(&app, "/streams/s-1", json!({"events": [ev(90), ev(90)]})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test]
async fn default_event_limit_is_one_mebibyte() {
    let (store, app) = app();
    // data is a JSON string: 2 quote bytes + n; type "T" is 1 byte.
    let at_limit = 1024 * 1024 - 3;
    let body = |n: usize| json!({"events": [{"type": "T", "data": "x".repeat(n)}]});
    post(&app, "/streams/s-1", body(at_limit + 1))
        .await
        .assert_error(413, "event_too_large");
    assert_eq!(all_count(&store).await, 0);
    let ok = post(&app, "/streams/s-1", body(at_limit)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test]
async fn bodies_over_the_body_limit_are_refused_before_buffering() {
    let config = ServerConfig {
        body_limit_bytes: Some(1000),
        ..ServerConfig::default()
    };
    let (store, app) = app_with(Limits::default(), config);
    let big = json!({"events": [{"type": "T", "data": "x".repeat(2000)}]}).to_string();
    // With a Content-Length header.
    post_raw(&app, "/streams/s-1", big.clone())
        .await
        .assert_error(413, "batch_too_large");
    // Streamed without a length: refused once the limit is crossed.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let req = Request::post("/streams/s-1")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    send(&app, req).await.assert_error(413, "batch_too_large");
    assert_eq!(all_count(&store).await, 0);
}

#[test]
fn derived_body_limit_leaves_room_for_a_full_batch() {
    let limits = Limits::default();
    let limit = ServerConfig::default().body_limit_for(&limits);
    assert!(limit > limits.batch_bytes_max);
    assert!(limit < limits.batch_bytes_max * 2);
}

#[tokio::test]
async fn wrong_or_missing_content_type() {
    let (store, app) = app();
    let body = json!({"events": [{"type": "T", "data": 1}]}).to_string();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = Request::post("/streams/s-1");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = send(&app, req.body(Body::from(body.clone())).unwrap()).await;
        r.assert_error(415, "malformed_request");
    }
    let req = Request::post("/streams/s-1")
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::OK);
    assert_eq!(all_count(&store).await, 1);
}

#[tokio::test]
async fn bad_query_parameters() {
    let (store, app) = app();
    append_n(&app, "q-1", 2).await;
    for (uri, code) in [
        ("/streams/q-1?limit=0", "invalid_input"),
        ("/streams/q-1?limit=10001", "invalid_input"),
        ("/streams/q-1?limit=abc", "malformed_request"),
        ("/streams/q-1?from=-1", "malformed_request"),
        ("/streams/q-1?from=", "malformed_request"),
        ("/streams/q-1?direction=sideways", "malformed_request"),
        ("/all?limit=0", "invalid_input"),
        ("/all?from=x", "malformed_request"),
        ("/categories/q?direction=backward", "invalid_input"),
        ("/categories/q?limit=-5", "malformed_request"),
        ("/categories/a-b", "invalid_input"),
    ] {
        let r = get(&app, uri).await;
        assert!(r.status.is_client_error(), "{uri}: {}", r.text);
        assert_eq!(r.json()["error"], json!(code), "{uri}: {}", r.text);
        r.assert_error(400, code);
    }
    delete(&app, "/streams/q-1?expected_version=bogus")
        .await
        .assert_error(400, "malformed_request");
    assert_eq!(all_count(&store).await, 2);
}

#[tokio::test]
async fn bad_metadata_bodies() {
    let (store, app) = app();
    for body in [
        json!({"max_count": "x"}),
        json!({"max_count": -1}),
        json!({"max_age": 5}),
        json!([1]),
    ] {
        let r = put(&app, "/streams/m-1/metadata", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        r.assert_error(400, "malformed_request");
    }
    assert_eq!(all_count(&store).await, 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let (_store, app) = app();
    get(&app, "/nope").await.assert_error(404, "not_found");
    let r = send(
        &app,
        Request::patch("/streams/s-1").body(Body::empty()).unwrap(),
    )
    .await;
    r.assert_error(405, "malformed_request");
}
