//! Inbound into the command bus, over a real Redis Streams consumer group: each message
//! becomes a `Deposit` command whose id is derived from the message id. Copies of a
//! message (same `ce_id`) are dropped by the inbox; a transient bus failure makes the
//! batch come again without running anything twice; refused commands are dropped, not
//! retried forever; and a second consumer with an empty inbox and a fresh bus re-sends
//! every message as the same commands, which append nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use eventum_bridge::{CommandTarget, InboundProgress, RedisInbound, RedisInboundConfig, header};
use eventum_core::{CommandSender, EventStore, ReadDirection, StreamName};
use eventum_projections::{ReadModelStore, StoreConfig};
use serde_json::json;
use uuid::Uuid;

use common::accounts::{Flaky, bus};
use common::*;

const WAIT: Duration = Duration::from_secs(30);

/// Adds one command message (CloudEvents fields plus `data`) to `key`.
async fn add(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    id: Uuid,
    ce_type: &str,
    data: serde_json::Value,
    correlation: Uuid,
) {
    let _: String = redis::cmd("XADD")
        .arg(key)
        .arg("*")
        .arg(header::CE_ID)
        .arg(id.to_string())
        .arg(header::CE_TYPE)
        .arg(ce_type)
        .arg(header::CORRELATION_ID)
        .arg(correlation.to_string())
        .arg("data")
        .arg(data.to_string())
        .query_async(conn)
        .await
        .unwrap();
}

/// Runs a member of `group` into `sender`, with a new inbox named `inbox`, until it has
/// seen `messages`.
async fn consume(
    key: &str,
    group: &str,
    inbox: &str,
    sender: Arc<dyn CommandSender>,
    messages: u64,
) -> InboundProgress {
    let models_dir = tempfile::tempdir().unwrap();
    let models = ReadModelStore::open(models_dir.path(), StoreConfig::default()).unwrap();
    let target = CommandTarget::new(sender, models, inbox).unwrap();
    let config = RedisInboundConfig {
        batch_messages_max: 8,
        block_ms: 200,
        retry_delay_ms: 20,
        ..RedisInboundConfig::new(&[key], group)
    };
    let inbound = RedisInbound::spawn_into(&redis_url(), config, Arc::new(target))
        .await
        .unwrap();
    let mut progress = inbound.progress();
    let done = tokio::time::timeout(WAIT, progress.wait_for(|p| p.seen_total() >= messages))
        .await
        .is_ok();
    assert!(
        done,
        "not all {messages} messages consumed: {:?}",
        *progress.borrow()
    );
    let p = progress.borrow().clone();
    inbound.stop().await.unwrap();
    p
}

async fn deposits(store: &Arc<dyn EventStore>, account: &str) -> Vec<eventum_core::RecordedEvent> {
    let stream = StreamName::new(format!("account-{account}")).unwrap();
    store
        .read_stream(&stream, None, ReadDirection::Forward, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "Deposited")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_messages_become_commands_once() {
    let mut conn = redis_connection().await;
    let key = format!("{}:commands", unique("eventum-cmd-"));
    let correlation = Uuid::now_v7();
    // 30 deposits of 10 over three accounts, 2 refused ones (over the limit; an unknown
    // command type), then copies of the first 10 deposits: 42 messages.
    let ids: Vec<Uuid> = (0..30).map(|_| Uuid::now_v7()).collect();
    for (i, id) in ids.iter().enumerate() {
        let data = json!({"account": format!("a{}", i % 3), "amount": 10});
        add(&mut conn, &key, *id, "Deposit", data, correlation).await;
    }
    let refused = json!({"account": "a0", "amount": 5_000});
    add(
        &mut conn,
        &key,
        Uuid::now_v7(),
        "Deposit",
        refused,
        correlation,
    )
    .await;
    add(
        &mut conn,
        &key,
        Uuid::now_v7(),
        "Withdraw",
        json!({}),
        correlation,
    )
    .await;
    for (i, id) in ids.iter().take(10).enumerate() {
        let data = json!({"account": format!("a{}", i % 3), "amount": 10});
        add(&mut conn, &key, *id, "Deposit", data, correlation).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let flaky = Arc::new(Flaky {
        inner: bus(&store),
        failures: AtomicU32::new(3),
    });
    let p = consume(&key, "cmd-in", "cmd-in", flaky, 42).await;
    assert_eq!(
        (p.handled_total, p.duplicates_total, p.rejected_total),
        (30, 10, 2)
    );
    assert!(p.failures_total >= 1, "the injected failures were retried");
    // Each deposit was caused by the command derived from its message, in message order.
    for (k, account) in ["a0", "a1", "a2"].into_iter().enumerate() {
        let events = deposits(&store, account).await;
        let caused_by: Vec<Uuid> = events.iter().map(|e| e.causation_id).collect();
        let expected: Vec<Uuid> = (k..30)
            .step_by(3)
            .map(|i| eventum_bridge::command_id("cmd-in", ids[i]))
            .collect();
        assert_eq!(caused_by, expected, "{account}: one deposit per message");
        assert!(events.iter().all(|e| e.correlation_id == correlation));
    }

    // Another group with an empty inbox and a fresh bus: every message is the same command
    // again (same derived id under the same inbox name), so nothing is appended.
    let p = consume(&key, "cmd-in-again", "cmd-in", bus(&store), 42).await;
    assert_eq!(p.handled_total, 0, "{p:?}");
    assert_eq!(p.duplicates_total, 40);
    for account in ["a0", "a1", "a2"] {
        assert_eq!(deposits(&store, account).await.len(), 10);
    }

    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}
