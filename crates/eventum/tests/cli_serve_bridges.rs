//! `eventum serve --config <file.toml>` starts the file's `[[bridge]]` sections inside
//! the server: a relay of the shop's events to Kafka (tansu in CI) and an inbound bridge
//! that turns JetStream messages into commands on the shop's bus, a repeated message
//! running once. Fails (never skips) when NATS or Kafka is unreachable; a bad config
//! file stops the server before it listens.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use common::*;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn unique(tag: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{tag}{}", &id[id.len() - 10..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_bridges_run_inside_serve() {
    let nats_url = env_or("EVENTUM_TEST_NATS_URL", "nats://127.0.0.1:4222");
    let kafka_url = env_or("EVENTUM_TEST_KAFKA_URL", "kafka://127.0.0.1:9092");
    let client = async_nats::connect(&nats_url).await.unwrap_or_else(|e| {
        panic!("NATS is unreachable at {nats_url}: {e}; start `nats-server -js` (.ci/run does)")
    });
    let js = async_nats::jetstream::new(client);
    let prefix = unique("serve");
    let stream = prefix.to_uppercase();
    let subject = format!("{prefix}.commands");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eventum.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[bridge]]
name = "shop-out"
to = "{kafka_url}"
prefix = "{prefix}"

[[bridge]]
name = "shop-in"
from = "{nats_url}"
into = "shop"
stream = "{stream}"
consume = ["{subject}"]
"#
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--shop-hash-memory-kib",
        "64",
        "--shop-hash-iterations",
        "1",
    ];
    let server = Server::start_with(&data, "127.0.0.1:0", &args);

    // The relay: the demo catalog's products reach Kafka, keyed by stream.
    let consumer: StreamConsumer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            kafka_url.strip_prefix("kafka://").unwrap(),
        )
        .set("group.id", unique("check-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer
        .subscribe(&[&format!("{prefix}.product-events")])
        .unwrap();
    for _ in 0..4 {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the demo catalog did not reach Kafka at {kafka_url}; stderr: {}",
                    server.stderr.lock().unwrap()
                )
            })
            .unwrap();
        assert!(m.key().unwrap().starts_with(b"product-"));
        let ce_source = m.headers().unwrap().iter().find(|h| h.key == "ce_source");
        assert_eq!(ce_source.unwrap().value, Some(&b"eventum"[..]));
    }

    // The inbound bridge: the same command message published twice runs once.
    let mut headers = HeaderMap::new();
    headers.insert("ce_id", uuid::Uuid::now_v7().to_string().as_str());
    headers.insert("ce_type", "NotifyUser");
    let body = r#"{"orderId":"o-1","userId":"u-1","kind":"ORDER_CONFIRMED","message":"done"}"#;
    for _ in 0..2 {
        js.publish_with_headers(subject.clone(), headers.clone(), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let read = || {
        let out = server.run(&["read", "notification-o-1"]);
        if out.status.success() {
            ok_lines(&out)
        } else {
            Vec::new()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while read().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the command did not run; stderr: {}",
            server.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = read();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "NotificationCreated");
    server.stop();
    js.delete_stream(&stream).await.unwrap();
}

#[test]
fn a_bad_config_file_stops_serve_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eventum.toml");
    std::fs::write(
        &config,
        "[[bridge]]\nname = \"x\"\nto = \"nats://127.0.0.1:4222\"\ngroup = \"g\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--no-shop", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("group do not apply to a relay"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}
