//! A real broker outage: the relay publishes to a private tansu broker (started by the
//! test on a free port), the broker is killed while events keep coming, the relay retries
//! with its checkpoint held, and once a broker is back on the same port it resumes by
//! itself. tansu's in-memory storage does not survive the kill, so the new broker starts
//! empty: the relay creates its topics again, and every event appended during the outage
//! arrives exactly once, each stream in order. Needs the tansu binary (`.ci/run` installs
//! it); fails without it.

mod common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{KafkaSink, KafkaSinkConfig, Relay, RelayConfig, RelayState, header};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};

use common::*;

const WAIT: Duration = Duration::from_secs(60);

fn start_broker(port: u16) -> BrokerProcess {
    let listener = format!("tcp://127.0.0.1:{port}");
    let args: Vec<OsString> = [
        "broker",
        "--listener-url",
        &listener,
        "--advertised-listener-url",
        &listener,
        "--storage-engine",
        "memory://tansu/",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    BrokerProcess::start(&tansu_program(), &args, port, KAFKA_START)
}

/// The `ce_id`s of the first `count` records of `topics` on the broker at `port`, per key.
async fn ids_by_key(port: u16, topics: &[String], count: usize) -> HashMap<String, Vec<String>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", unique("check-"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).unwrap();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for _ in 0..count {
        let m = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("a record")
            .unwrap();
        let id = m
            .headers()
            .unwrap()
            .iter()
            .find(|h| h.key == header::CE_ID)
            .map(|h| String::from_utf8(h.value.unwrap().to_vec()).unwrap())
            .unwrap();
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        out.entry(key).or_default().push(id);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rides_out_a_broker_outage() {
    let port = free_port();
    let server = start_broker(port);
    let url = format!("kafka://127.0.0.1:{port}");
    let sink = Arc::new(
        KafkaSink::connect(
            &url,
            KafkaSinkConfig {
                topic_prefix: "outage".into(),
                delivery_timeout_ms: 1_000,
                ..KafkaSinkConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    append_events(&store, 50).await;
    let relay = Relay::spawn(
        store.clone(),
        sink,
        RelayConfig {
            retry_delay_ms_min: 50,
            retry_delay_ms_max: 400,
            ..RelayConfig::named("outage")
        },
    )
    .unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    let before_outage = head_next(&store);

    drop(server); // SIGKILL: the broker is gone, and its in-memory storage with it.
    let during_ids = append_events(&store, 50).await;
    let mut progress = relay.progress();
    let failing = tokio::time::timeout(WAIT, progress.wait_for(|p| p.publish_failures_total >= 2))
        .await
        .is_ok();
    assert!(
        failing,
        "the relay saw no failure: {:?}",
        *progress.borrow()
    );
    let during = progress.borrow().clone();
    assert_eq!(during.state, RelayState::Retrying);
    assert_eq!(
        during.next_position, before_outage,
        "nothing unacknowledged counted"
    );

    let _server = start_broker(port);
    assert!(
        relay.wait_acknowledged(head_next(&store), WAIT).await,
        "the relay did not resume: {:?}",
        relay.progress().borrow()
    );
    relay.stop().await.unwrap();

    let topics = [
        "outage.order-events".to_owned(),
        "outage.user-events".to_owned(),
    ];
    let got = ids_by_key(port, &topics, 50).await;
    for (k, stream) in ["order-0", "order-1", "order-2", "user-7"]
        .iter()
        .enumerate()
    {
        let want: Vec<String> = during_ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 4 == k)
            .map(|(_, id)| id.to_string())
            .collect();
        assert_eq!(got[*stream], want, "{stream}: every event once, in order");
    }
}
