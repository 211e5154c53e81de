//! End-to-end CLI tests: `eventum serve` on a real data directory, driven by the client
//! subcommands; the data-directory lock; restart durability; verify.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn append_read_delete_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "127.0.0.1:0");

    let id = "0190f5a8-1111-7000-8000-000000000001";
    let out = server.run(&[
        "append",
        "order-1",
        "--type",
        "OrderPlaced",
        "--data",
        r#"{"total": 1.50}"#,
        "--metadata",
        r#"{"user": "u1"}"#,
        "--id",
        id,
        "--expected-version",
        "no_stream",
    ]);
    assert_eq!(
        ok_lines(&out),
        [json!({"next_expected_version": 0, "position": 0})]
    );
    let out = server.run(&[
        "append",
        "order-1",
        "--type",
        "OrderPaid",
        "--data",
        "true",
        "--expected-version",
        "0",
    ]);
    assert_eq!(
        ok_lines(&out),
        [json!({"next_expected_version": 1, "position": 1})]
    );
    let out = server.run(&["append", "user-1", "--type", "Joined", "--data", "{}"]);
    assert_eq!(ok_lines(&out)[0]["position"], json!(2));

    // A conflict exits non-zero with the server's code and message.
    let out = server.run(&[
        "append",
        "order-1",
        "--type",
        "X",
        "--data",
        "1",
        "--expected-version",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong_expected_version"),
        "{}",
        stderr(&out)
    );

    let events = ok_lines(&server.run(&["read", "order-1"]));
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["id"], json!(id));
    assert_eq!(events[0]["data"], json!({"total": 1.50}));
    // Data text is kept: the raw line shows 1.50, not 1.5.
    assert!(stdout(&server.run(&["read", "order-1"])).contains(r#""total":1.50"#));
    assert_eq!(events[0]["metadata"]["user"], json!("u1"));
    assert_eq!(events[1]["type"], json!("OrderPaid"));

    let back = ok_lines(&server.run(&["read", "order-1", "--backward", "--limit", "1"]));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["version"], json!(1));
    let all = ok_lines(&server.run(&["read", "--all", "--from", "1"]));
    assert_eq!(
        all.iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let cat = ok_lines(&server.run(&["read", "--category", "user"]));
    assert_eq!(cat.len(), 1);
    assert_eq!(cat[0]["stream"], json!("user-1"));

    let out = server.run(&["delete", "order-1", "--expected-version", "1"]);
    assert!(ok_lines(&out)[0]["position"].is_u64());
    let out = server.run(&["read", "order-1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stream_deleted"), "{}", stderr(&out));

    // Bad input is refused before anything is sent, or by the server, never written.
    let out = server.run(&["append", "s-1", "--type", "T", "--data", "{not json"]);
    assert!(!out.status.success());
    let out = server.run(&["append", "$s", "--type", "T", "--data", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid_input"), "{}", stderr(&out));
    assert_eq!(ok_lines(&server.run(&["read", "--all"])).len(), 4);

    server.stop();
}

#[test]
fn a_second_server_on_the_same_directory_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "127.0.0.1:0");
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["serve", "--no-shop", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("listening"));
    assert!(started.elapsed() < Duration::from_secs(10));
    server.stop();
}

#[test]
fn data_survives_a_restart_and_verify_finds_it_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "127.0.0.1:0");
    for i in 0..3 {
        let data = format!("{{\"i\":{i}}}");
        assert!(
            server
                .run(&["append", "r-1", "--type", "T", "--data", &data])
                .status
                .success()
        );
    }
    server.stop();

    let out = Command::new(BIN)
        .args(["verify", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("events: 3"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("corruption: none"),
        "{}",
        stdout(&out)
    );

    let server = Server::start(dir.path(), "127.0.0.1:0");
    let events = ok_lines(&server.run(&["read", "r-1"]));
    assert_eq!(
        events
            .iter()
            .map(|e| e["data"]["i"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    server.stop();
}

#[test]
fn client_commands_fail_clearly_without_a_server() {
    // Port 9 (discard) on loopback: nothing listens there in the test environment.
    let out = Command::new(BIN)
        .args([
            "append",
            "s-1",
            "--type",
            "T",
            "--data",
            "1",
            "--server",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    let out = Command::new(BIN).args(["read"]).output().unwrap();
    assert!(
        !out.status.success(),
        "read needs a stream, --all or --category"
    );
}
