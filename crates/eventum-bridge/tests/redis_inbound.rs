//! Inbound from a real Redis through a consumer group and the read-model inbox: entries
//! re-added by another producer (same `ce_id`) are dropped, entries this member had read
//! but not acknowledged before a crash are taken back first, entries a dead member left
//! pending are claimed, and at the end nothing is pending and every event was handled
//! exactly once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{
    HandlerError, InboundMessage, RedisInbound, RedisInboundConfig, RedisSink, RedisSinkConfig,
    Relay, RelayConfig, header,
};
use eventum_projections::StoreTx;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

/// An entry id with its field/value pairs, as XRANGE returns them.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// Reads `count` new entries of `key` as group member `member` without acknowledging
/// them: a member that crashed mid-batch.
async fn read_and_crash(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    group: &str,
    member: &str,
    count: usize,
) {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(member)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(reply.keys[0].ids.len(), count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_member_handles_each_event_once_across_crashes_and_copies() {
    let mut conn = redis_connection().await;
    let url = redis_url();
    let prefix = unique("eventum-in-");
    let keys = [
        format!("{prefix}:order-events"),
        format!("{prefix}:user-events"),
    ];
    let sink = RedisSink::connect(
        &url,
        RedisSinkConfig {
            key_prefix: prefix.clone(),
            ..RedisSinkConfig::default()
        },
    )
    .await
    .unwrap();

    // 60 events relayed (45 order, 15 user), then the first 20 order entries added again
    // under new entry ids, as a second producer would: 80 entries.
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    append_events(&store, 60).await;
    let relay = Relay::spawn(
        store.clone(),
        Arc::new(sink),
        RelayConfig::named("redis-in"),
    )
    .unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();
    let copies: Vec<Entry> = redis::cmd("XRANGE")
        .arg(&keys[0])
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(20)
        .query_async(&mut conn)
        .await
        .unwrap();
    for (_, fields) in &copies {
        let mut add = redis::cmd("XADD");
        add.arg(&keys[0]).arg("*");
        for (name, value) in fields {
            add.arg(name).arg(value.as_slice());
        }
        let _: String = add.query_async(&mut conn).await.unwrap();
    }

    let group = "redis-inbound";
    for key in &keys {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(group)
            .arg("0")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Member m1 read 10 order entries and crashed; member "dead" read 5 and never
    // came back.
    read_and_crash(&mut conn, &keys[0], group, "m1", 10).await;
    read_and_crash(&mut conn, &keys[0], group, "dead", 5).await;

    let models_dir = tempfile::tempdir().unwrap();
    let models = seen_models(&models_dir);
    let handler = |tx: &mut StoreTx<'_>, m: &InboundMessage| -> Result<(), HandlerError> {
        assert_eq!(m.header(header::CE_ID), Some(m.id.to_string().as_str()));
        assert!(
            m.key
                .as_deref()
                .is_some_and(|k| k.starts_with("order-") || k == "user-7")
        );
        let data: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert!(data["i"].is_u64());
        count_seen(tx, m)
    };
    let config = RedisInboundConfig {
        member: "m1".into(),
        batch_messages_max: 8,
        block_ms: 200,
        claim_idle_ms: 300,
        ..RedisInboundConfig::new(&[&keys[0], &keys[1]], group)
    };
    let inbound = RedisInbound::spawn(&url, models.clone(), config, handler)
        .await
        .unwrap();
    let mut progress = inbound.progress();
    let done = tokio::time::timeout(WAIT, progress.wait_for(|p| p.seen_total() >= 80))
        .await
        .is_ok();
    assert!(
        done,
        "80 entries were not all consumed: {:?}",
        *progress.borrow()
    );
    let p = inbound.progress().borrow().clone();
    inbound.stop().await.unwrap();
    assert_eq!((p.handled_total, p.duplicates_total), (60, 20));
    assert_eq!(seen_total(&models), 60);

    for key in &keys {
        let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(pending.0, 0, "{key}: every entry acknowledged");
    }
    let _: () = redis::cmd("DEL")
        .arg(&keys[..])
        .query_async(&mut conn)
        .await
        .unwrap();
}
