//! End-to-end: `eventum groups` and `eventum dlq` against `eventum serve` on a real data
//! directory; consumers talk HTTP; groups and dead letters survive a restart.

mod common;

use common::*;
use serde_json::{Value, json};

fn http(server: &Server, method: &str, path: &str, body: Value) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", server.url);
        let req = match method {
            "POST" => client.post(url).json(&body),
            _ => client.get(url),
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    })
}

fn receive(server: &Server) -> Vec<Value> {
    http(
        server,
        "POST",
        "/groups/billing/receive?consumer=c1&max=10&wait_ms=3000",
        json!({}),
    )["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn groups_and_dead_letters_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "127.0.0.1:0");
    for n in 0..2 {
        let data = format!(r#"{{"n": {n}}}"#);
        ok_lines(&server.run(&["append", "order-1", "--type", "Placed", "--data", &data]));
    }
    let created = ok_lines(&server.run(&[
        "groups",
        "create",
        "billing",
        "--category",
        "order",
        "--unordered",
        "--max-attempts",
        "1",
    ]));
    assert_eq!(created[0]["name"], "billing");
    assert_eq!(created[0]["settings"]["ordered"], false);
    assert_eq!(created[0]["settings"]["max_attempts"], 1);
    assert_eq!(
        created[0]["settings"]["target"],
        json!({"category": "order"})
    );

    let dup = server.run(&["groups", "create", "billing", "--all"]);
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already_exists"), "{}", stderr(&dup));
    let bad = server.run(&["groups", "create", "x", "--all", "--max-attempts", "0"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("invalid_input"), "{}", stderr(&bad));

    let list = ok_lines(&server.run(&["groups", "list"]));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "billing");

    let ds = receive(&server);
    assert_eq!(ds.len(), 2);
    http(
        &server,
        "POST",
        "/groups/billing/nack",
        json!({"token": ds[0]["token"], "action": "park", "reason": "card declined"}),
    );
    http(
        &server,
        "POST",
        "/groups/billing/ack",
        json!({"tokens": [ds[1]["token"]]}),
    );
    let parked = ok_lines(&server.run(&["dlq", "list", "billing"]));
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0]["reason"], "card declined");
    assert_eq!(parked[0]["attempts"], 1);
    assert_eq!(parked[0]["event"]["data"], json!({"n": 0}));
    let info = ok_lines(&server.run(&["groups", "info", "billing"]));
    assert_eq!(info[0]["parked"], 1);
    assert_eq!(info[0]["in_flight"], 0);

    // Groups, checkpoints and dead letters are in the store: they survive a restart.
    server.stop();
    let server = Server::start(dir.path(), "127.0.0.1:0");
    let list = ok_lines(&server.run(&["groups", "list"]));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["parked"], 1);
    let parked = ok_lines(&server.run(&["dlq", "list", "billing"]));
    assert_eq!(parked.len(), 1);
    let id = parked[0]["id"].as_u64().unwrap().to_string();
    assert!(
        receive_none(&server),
        "acked events are not delivered again"
    );

    let replayed = ok_lines(&server.run(&["dlq", "replay", "billing", "--id", &id]));
    assert_eq!(replayed[0], json!({"replayed": 1}));
    let ds = receive(&server);
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["replay_of"], json!(id.parse::<u64>().unwrap()));
    assert_eq!(ds[0]["event"]["data"], json!({"n": 0}));
    http(
        &server,
        "POST",
        "/groups/billing/ack",
        json!({"tokens": [ds[0]["token"]]}),
    );
    assert!(ok_lines(&server.run(&["dlq", "list", "billing"])).is_empty());
    let none = server.run(&["dlq", "replay", "billing", "--id", "999"]);
    assert!(!none.status.success());
    assert!(stderr(&none).contains("not_found"), "{}", stderr(&none));

    ok_lines(&server.run(&["groups", "delete", "billing"]));
    let gone = server.run(&["groups", "info", "billing"]);
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("not_found"), "{}", stderr(&gone));
    server.stop();
}

fn receive_none(server: &Server) -> bool {
    http(
        server,
        "POST",
        "/groups/billing/receive?consumer=c1&max=10&wait_ms=300",
        json!({}),
    )["deliveries"]
        .as_array()
        .unwrap()
        .is_empty()
}
