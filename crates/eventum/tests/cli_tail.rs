//! `eventum tail`: prints events as they arrive and resumes after the server restarts,
//! with no gap and no duplicate.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

#[test]
fn tail_follows_and_resumes_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "127.0.0.1:0");
    let addr = server.addr().to_owned();
    assert!(
        server
            .run(&["append", "t-1", "--type", "T", "--data", "0"])
            .status
            .success()
    );

    let mut tail = Command::new(BIN)
        .args([
            "tail",
            "--stream",
            "t-1",
            "--from",
            "start",
            "--server",
            &server.url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || -> serde_json::Value {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("tail printed nothing");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next()["data"], 0);
    assert!(
        server
            .run(&["append", "t-1", "--type", "T", "--data", "1"])
            .status
            .success()
    );
    assert_eq!(next()["data"], 1);

    // Restart on the same address; tail reconnects with Last-Event-ID.
    server.stop();
    let server = Server::start(dir.path(), &addr);
    for i in 2..4 {
        let data = i.to_string();
        assert!(
            server
                .run(&["append", "t-1", "--type", "T", "--data", &data])
                .status
                .success()
        );
    }
    assert_eq!(next()["data"], 2);
    assert_eq!(next()["data"], 3);
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "duplicate after resume"
    );

    let _ = tail.kill();
    let _ = tail.wait();
    server.stop();
}
