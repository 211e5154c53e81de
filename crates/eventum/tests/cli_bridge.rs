//! `eventum bridge run` against a real NATS JetStream server: relays the log in `--data`
//! with the chosen topic mapping, stops cleanly on SIGTERM, and refuses bad arguments
//! with a clear message. Fails (never skips) when NATS is unreachable.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eventum_core::{EventStore, ExpectedVersion, NewEvent, StreamName};
use eventum_log::{LogConfig, LogStore};

const BIN: &str = env!("CARGO_BIN_EXE_eventum");

fn nats_url() -> String {
    std::env::var("EVENTUM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_run_relays_the_log_to_nats_by_event_type() {
    let url = nats_url();
    let client = async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("NATS is unreachable at {url}: {e}; start it with `nats-server -js` (.ci/run does)")
    });
    let js = async_nats::jetstream::new(client);

    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        for i in 0..30 {
            let kind = if i % 2 == 0 {
                "OrderCreated"
            } else {
                "OrderPaid"
            };
            let event = NewEvent::new(kind, &serde_json::json!({"i": i})).unwrap();
            let stream = StreamName::new(format!("order-{}", i % 3)).unwrap();
            store
                .append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap();
        }
        store.shutdown();
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("cli{}", &id[id.len() - 10..]);
    let stream_name = prefix.to_uppercase();

    let mut child = Command::new(BIN)
        .args([
            "bridge", "run", "--to", &url, "--topics", "type", "--name", "cli",
        ])
        .args([
            "--prefix",
            &prefix,
            "--create-stream",
            &stream_name,
            "--data",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    assert!(first_line.contains("relaying to"), "{first_line}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        if let Ok(s) = js.get_stream(&stream_name).await
            && s.get_info().await.unwrap().state.messages >= 30
        {
            break s;
        }
        assert!(Instant::now() < deadline, "30 messages did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("30 messages published"), "{stderr}");

    assert_eq!(stream.get_info().await.unwrap().state.messages, 30);
    for seq in 1..=30u64 {
        let m = stream.get_raw_message(seq).await.unwrap();
        let expected = if seq % 2 == 1 {
            "order-created"
        } else {
            "order-paid"
        };
        assert_eq!(m.subject.as_str(), format!("{prefix}.{expected}"));
    }
    js.delete_stream(&stream_name).await.unwrap();
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            vec!["--to", "http://x:9092"],
            "expected a nats://, kafka://, redis:// or amqp:// URL",
        ),
        (
            vec!["--to", "nats://127.0.0.1:4222", "--topics", "stream"],
            "unknown topic mapping",
        ),
        (
            vec!["--to", "nats://127.0.0.1:4222", "--name", "Bad Name"],
            "bridge name",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["bridge", "run", "--data"])
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
