//! `eventum serve --store postgres://…`: events live in PostgreSQL, not in the data
//! directory, so a server restarted on an empty data directory still has them. Needs
//! PostgreSQL (EVENTUM_TEST_POSTGRES_URL); fails, never skips, when it is unreachable.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

fn pg_url() -> String {
    std::env::var("EVENTUM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Drops the test schema even when the test fails.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &pg_url(),
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0),
            ])
            .output();
    }
}

#[test]
fn serve_with_a_postgres_store_keeps_events_in_postgres() {
    let schema = format!("cli_{}", uuid::Uuid::now_v7().simple());
    let _cleanup = DropSchema(schema.clone());
    let url = pg_url();
    let args = ["--no-shop", "--store", &url, "--store-schema", &schema];

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), "127.0.0.1:0", &args);
    let out = server.run(&[
        "append",
        "order-1",
        "--type",
        "Placed",
        "--data",
        "{\"n\":1}",
    ]);
    assert_eq!(
        ok_lines(&out),
        [json!({"next_expected_version": 0, "position": 0})],
        "{}",
        stderr(&out)
    );
    server.stop();

    // A fresh data directory: the events can only come from PostgreSQL.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), "127.0.0.1:0", &args);
    let events = ok_lines(&server.run(&["read", "order-1"]));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"], json!({"n": 1}));
    server.stop();
}
