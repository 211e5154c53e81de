//! The relay to a real Redis: one stream key per topic, every event once in order with
//! its headers as fields, entry id `{position}-1`; a relay that re-sends adds nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{RedisSink, RedisSinkConfig, Relay, RelayConfig, header};
use uuid::Uuid;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

type Entries = Vec<(String, Vec<String>)>;

async fn sink(prefix: &str) -> RedisSink {
    let url = redis_url();
    let config = RedisSinkConfig {
        key_prefix: prefix.to_owned(),
        connect_timeout_ms: 2_000,
        ..RedisSinkConfig::default()
    };
    match RedisSink::connect(&url, config).await {
        Ok(s) => s,
        Err(e) => unreachable("Redis", &url, e, "redis-server --daemonize yes"),
    }
}

fn field<'a>(fields: &'a [String], name: &str) -> &'a str {
    fields
        .chunks(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
        .unwrap_or_else(|| panic!("field {name} missing"))
}

async fn entries(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Entries {
    redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_once_in_order_and_resends_are_dropped() {
    let mut conn = redis_connection().await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let ids = append_events(&store, 160).await;
    let prefix = unique("eventum-test-");
    let sink = Arc::new(sink(&prefix).await);
    let keys = [
        format!("{prefix}:order-events"),
        format!("{prefix}:user-events"),
    ];

    let run = |name: &'static str| {
        let (store, sink) = (store.clone(), sink.clone());
        async move {
            let relay = Relay::spawn(
                store.clone(),
                sink,
                RelayConfig {
                    batch_events_max: 32,
                    ..RelayConfig::named(name)
                },
            )
            .unwrap();
            assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
            relay.stop().await.unwrap();
        }
    };
    run("redis-a").await;
    // A second relay without a checkpoint re-sends everything; Redis keeps one copy.
    run("redis-b").await;

    let mut all = Vec::new();
    for key in &keys {
        let got = entries(&mut conn, key).await;
        let mut last_position = None;
        for (entry_id, fields) in got {
            let position: u64 = entry_id.strip_suffix("-1").unwrap().parse().unwrap();
            assert!(
                last_position < Some(position),
                "{key}: entries in position order"
            );
            last_position = Some(position);
            assert_eq!(
                field(&fields, header::EVENTUM_POSITION),
                position.to_string()
            );
            assert_eq!(field(&fields, header::CE_SPECVERSION), "1.0");
            assert!(field(&fields, header::CE_TYPE).starts_with("Order"));
            let stream = field(&fields, "key");
            assert_eq!(key.ends_with("user-events"), stream == "user-7");
            let data: serde_json::Value = serde_json::from_str(field(&fields, "data")).unwrap();
            assert!(data["i"].is_u64());
            all.push((
                position,
                Uuid::parse_str(field(&fields, header::CE_ID)).unwrap(),
            ));
        }
    }
    all.sort();
    assert_eq!(all.len(), 160, "each event exactly once across both relays");
    assert_eq!(all.into_iter().map(|(_, id)| id).collect::<Vec<_>>(), ids);

    let _: () = redis::cmd("DEL")
        .arg(&keys[..])
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_a_typed_error() {
    let config = RedisSinkConfig {
        connect_timeout_ms: 500,
        ..RedisSinkConfig::default()
    };
    let err = RedisSink::connect("redis://127.0.0.1:1", config)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, eventum_bridge::SinkError::Unavailable(_)));
}
