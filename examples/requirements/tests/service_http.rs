//! The requirements service end to end over HTTP on a real embedded store: commands, the
//! inline read model, the audit log, notifications through a consumer group, the approval
//! saga with its durable deadline (also across a restart), and refused input.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use eventum_core::EventStore;
use eventum_sagas::TestClock;
use http_body_util::BodyExt;
use requirements::{Running, ServiceConfig, http};
use serde_json::{Value, json};
use tower::ServiceExt;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn start(dir: &std::path::Path, clock: &TestClock) -> Running {
    let mut config = ServiceConfig::new(dir);
    config.clock = Arc::new(clock.clone());
    Running::start(config).await.expect("service starts")
}

async fn call(
    running: &Running,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let request = match body {
        Some(b) => request
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = http::router(running.service.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

/// Polls `path` until `check` holds (eventually consistent parts: audit, notifications,
/// saga).
async fn eventually(running: &Running, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let (status, body) = call(running, "GET", path, None, None).await;
        if status == StatusCode::OK && check(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, body) = call(running, "GET", path, None, None).await;
    let groups: Vec<String> = running
        .service
        .groups
        .list()
        .iter()
        .map(|g| format!("{g:?}"))
        .collect();
    let parked = running
        .service
        .groups
        .parked(requirements::notify::NOTIFICATIONS_GROUP, 0, 10)
        .map(|p| format!("{p:?}"));
    panic!("{path} never satisfied the check; last: {body}; groups {groups:?}; parked {parked:?}");
}

async fn create(running: &Running, title: &str) -> String {
    let (status, body) = call(
        running,
        "POST",
        "/requirements",
        Some(json!({"title": title, "description": "d", "author": "ann"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["requirement_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_flow_with_read_model_audit_and_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(now_ms());
    let running = start(dir.path(), &clock).await;
    let id = create(&running, "Login page").await;
    // Inline projection: the document is there as soon as the command returned.
    let (status, doc) = call(&running, "GET", &format!("/requirements/{id}"), None, None).await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (StatusCode::OK, Some("draft"))
    );

    let (status, _) = call(
        &running,
        "PUT",
        &format!("/requirements/{id}"),
        Some(json!({"title": "Login page v2", "editor": "ann"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &running,
        "POST",
        &format!("/requirements/{id}/approval-request"),
        Some(json!({"approver": "bob", "requested_by": "ann", "due_in_s": 3600})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &running,
        "POST",
        &format!("/requirements/{id}/approval"),
        Some(json!({"approver": "eve"})),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("domain_rejected")),
        "{body}"
    );
    let (status, _) = call(
        &running,
        "POST",
        &format!("/requirements/{id}/approval"),
        Some(json!({"approver": "bob"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (_, doc) = call(&running, "GET", &format!("/requirements/{id}"), None, None).await;
    assert_eq!(
        (
            doc["status"].as_str(),
            doc["title"].as_str(),
            doc["approver"].as_str()
        ),
        (Some("approved"), Some("Login page v2"), Some("bob"))
    );
    let (_, listed) = call(&running, "GET", "/requirements?status=approved", None, None).await;
    assert_eq!(listed["requirements"].as_array().unwrap().len(), 1);
    let (_, listed) = call(&running, "GET", "/requirements?status=draft", None, None).await;
    assert_eq!(listed["requirements"].as_array().unwrap().len(), 0);

    let audit = eventually(&running, &format!("/requirements/{id}/audit"), |b| {
        b["entries"].as_array().unwrap().len() == 4
    })
    .await;
    let types: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "RequirementCreated",
            "RequirementUpdated",
            "ApprovalRequested",
            "RequirementApproved"
        ]
    );

    eventually(&running, "/users/bob/notifications", |b| {
        b["notifications"].as_array().unwrap().len() == 1
    })
    .await;
    let ann = eventually(&running, "/users/ann/notifications", |b| {
        b["notifications"].as_array().unwrap().len() == 1
    })
    .await;
    assert!(
        ann["notifications"][0]["text"]
            .as_str()
            .unwrap()
            .contains("approved by bob")
    );

    let saga = eventually(&running, &format!("/requirements/{id}/approval"), |b| {
        b["status"] == "completed"
    })
    .await;
    assert_eq!(saga["state"]["outcome"], "approved");
    assert_eq!(saga["pending_deadlines"], 0);
    // Nothing fires later: moving time past the due date changes nothing.
    clock.advance(2 * 3600 * 1000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, doc) = call(&running, "GET", &format!("/requirements/{id}"), None, None).await;
    assert_eq!(doc["status"], "approved");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_approval_is_escalated_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(now_ms());
    let running = start(dir.path(), &clock).await;
    let id = create(&running, "Audit trail").await;
    let (status, _) = call(
        &running,
        "POST",
        &format!("/requirements/{id}/approval-request"),
        Some(json!({"approver": "bob", "requested_by": "ann", "due_in_s": 60})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    eventually(&running, &format!("/requirements/{id}/approval"), |b| {
        b["pending_deadlines"] == 1
    })
    .await;
    running.shutdown().await;

    // Restart with time past the deadline: the durable deadline fires after the restart.
    clock.advance(61_000);
    let running = start(dir.path(), &clock).await;
    let saga = eventually(&running, &format!("/requirements/{id}/approval"), |b| {
        b["status"] == "completed"
    })
    .await;
    assert_eq!(saga["state"]["outcome"], "escalated");
    let (_, doc) = call(&running, "GET", &format!("/requirements/{id}"), None, None).await;
    assert_eq!(doc["status"], "escalated");
    let bob = eventually(&running, "/users/bob/notifications", |b| {
        b["notifications"].as_array().unwrap().len() == 2
    })
    .await;
    assert!(
        bob["notifications"][1]["text"]
            .as_str()
            .unwrap()
            .contains("overdue")
    );
    // The escalation is caused by the saga's command, in the request's conversation.
    let audit = eventually(&running, &format!("/requirements/{id}/audit"), |b| {
        b["entries"].as_array().unwrap().len() == 3
    })
    .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[2]["event_type"], "ApprovalEscalated");
    assert_eq!(
        entries[2]["correlation_id"], entries[1]["correlation_id"],
        "same conversation as the request"
    );
    running.shutdown().await;

    // Once more, later: it does not fire twice.
    clock.advance(3_600_000);
    let running = start(dir.path(), &clock).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, audit) = call(
        &running,
        "GET",
        &format!("/requirements/{id}/audit"),
        None,
        None,
    )
    .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 3);
    // Approval is still possible after escalation.
    let (status, _) = call(
        &running,
        "POST",
        &format!("/requirements/{id}/approval"),
        Some(json!({"approver": "bob"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_write_nothing_and_retries_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(now_ms());
    let running = start(dir.path(), &clock).await;
    for (body, code) in [
        (json!({"title": "  ", "author": "ann"}), "invalid_input"),
        (
            json!({"title": "x".repeat(201), "author": "ann"}),
            "invalid_input",
        ),
        (
            json!({"title": "ok", "author": "ann", "extra": 1}),
            "malformed_request",
        ),
        (json!({"author": "ann"}), "malformed_request"),
    ] {
        let (status, b) = call(&running, "POST", "/requirements", Some(body.clone()), None).await;
        assert_eq!(
            (status, b["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}: {b}"
        );
    }
    let (status, b) = call(
        &running,
        "POST",
        "/requirements/nope/approval",
        Some(json!({"approver": "bob"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (status, _) = call(&running, "GET", "/requirements/nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &running,
        "POST",
        "/requirements",
        Some(json!({"title": "t", "author": "a"})),
        Some("not-a-uuid"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let written = running
        .service
        .log
        .read_category("requirement", 0, 10)
        .await
        .unwrap();
    assert!(written.is_empty(), "nothing was written: {written:?}");

    let key = uuid::Uuid::now_v7().to_string();
    let body = json!({"title": "Search", "author": "ann"});
    let (s1, first) = call(
        &running,
        "POST",
        "/requirements",
        Some(body.clone()),
        Some(&key),
    )
    .await;
    let (s2, again) = call(&running, "POST", "/requirements", Some(body), Some(&key)).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first["requirement_id"], again["requirement_id"]);
    assert_eq!(
        (first["duplicate"].as_bool(), again["duplicate"].as_bool()),
        (Some(false), Some(true))
    );
    let (_, listed) = call(&running, "GET", "/requirements", None, None).await;
    assert_eq!(listed["requirements"].as_array().unwrap().len(), 1);
    running.shutdown().await;
}
