//! Shared helpers of the broker integration tests: broker URLs from the environment
//! (localhost defaults), a real `LogStore` in a tempdir, and event fixtures. A test that
//! needs a broker fails, never skips, when it is unreachable.
#![allow(dead_code)]

pub mod accounts;

use std::sync::Arc;

use eventum_core::{EventId, EventStore, ExpectedVersion, NewEvent, StreamName};
use eventum_log::{LogConfig, LogStore};
use serde_json::json;

pub fn nats_url() -> String {
    std::env::var("EVENTUM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub fn redis_url() -> String {
    std::env::var("EVENTUM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `EVENTUM_TEST_KAFKA_URL` (`kafka://host:port`), else the local tansu broker.
pub fn kafka_url() -> String {
    std::env::var("EVENTUM_TEST_KAFKA_URL").unwrap_or_else(|_| "kafka://127.0.0.1:9092".into())
}

/// How to start a Kafka broker for the tests.
pub const KAFKA_START: &str = "cargo install tansu --locked --features dynostore && tansu broker \
--listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
--storage-engine memory://tansu/";

/// The tansu binary: `EVENTUM_TANSU`, else the one `.ci/run` installs in
/// `~/.cache/eventum-tools/bin`, else `tansu` on the PATH.
pub fn tansu_program() -> String {
    if let Ok(p) = std::env::var("EVENTUM_TANSU") {
        return p;
    }
    let cached = std::path::Path::new(&std::env::var("HOME").unwrap_or_default())
        .join(".cache/eventum-tools/bin/tansu");
    if cached.exists() {
        return cached.to_string_lossy().into_owned();
    }
    "tansu".into()
}

/// `EVENTUM_TEST_RABBITMQ_URL`, else `EVENTUM_TEST_AMQP_URL` (the name `.ci/run` exports).
pub fn rabbitmq_url() -> String {
    std::env::var("EVENTUM_TEST_RABBITMQ_URL")
        .or_else(|_| std::env::var("EVENTUM_TEST_AMQP_URL"))
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A connection to the test Redis; panics when it is unreachable.
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).unwrap();
    match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => unreachable("Redis", &url, e, "redis-server --daemonize yes"),
    }
}

/// Panics with how to start the broker: tests that need one must fail, not skip.
pub fn unreachable(what: &str, url: &str, error: impl std::fmt::Display, start: &str) -> ! {
    panic!(
        "{what} is unreachable at {url}: {error}\n\
         Start it (e.g. `{start}`) or point the tests at one with the environment variable; \
         `.ci/run` starts it in CI."
    )
}

/// A short unique name part per test run.
pub fn unique(tag: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{tag}{}", &id[id.len() - 10..])
}

pub fn open_store(dir: &tempfile::TempDir) -> Arc<dyn EventStore> {
    LogStore::open(dir.path(), LogConfig::default()).expect("open the log store")
}

/// Appends `n` events over three order streams and a user stream, alternating two
/// event types, one event per append; returns the ids in append order.
pub async fn append_events(store: &Arc<dyn EventStore>, n: usize) -> Vec<EventId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let stream = match i % 4 {
            3 => StreamName::new("user-7").unwrap(),
            k => StreamName::new(format!("order-{k}")).unwrap(),
        };
        let kind = if i % 2 == 0 {
            "OrderCreated"
        } else {
            "OrderPaid"
        };
        let event = NewEvent::new(kind, &json!({ "i": i }))
            .unwrap()
            .with_correlation_id(uuid::Uuid::now_v7());
        ids.push(event.id());
        store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    ids
}

pub fn head_next(store: &Arc<dyn EventStore>) -> u64 {
    store.head_position().map_or(0, |p| p + 1)
}

/// A broker process the test owns (for outage tests): killed when dropped.
pub struct BrokerProcess(std::process::Child);

impl BrokerProcess {
    /// Starts `program` with `args` and waits until it listens on 127.0.0.1:`port`;
    /// `install` says how to get the program when it is missing.
    pub fn start(program: &str, args: &[std::ffi::OsString], port: u16, install: &str) -> Self {
        let child = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}; install it with `{install}`"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{program} did not come up on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        BrokerProcess(child)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// An inbound handler that counts, in read model `seen`, how often each message id was
/// handled (`{id}` → `times`) and how many were handled in all (`_total` → `n`). The
/// model must be defined first.
pub fn count_seen(
    tx: &mut eventum_projections::StoreTx<'_>,
    m: &eventum_bridge::InboundMessage,
) -> Result<(), eventum_bridge::HandlerError> {
    let key = m.id.to_string();
    let times = tx
        .get("seen", &key)?
        .map_or(0, |d| d["times"].as_u64().unwrap());
    tx.put("seen", &key, json!({"times": times + 1, "stream": m.key}))?;
    let total = tx
        .get("seen", "_total")?
        .map_or(0, |d| d["n"].as_u64().unwrap());
    tx.put("seen", "_total", json!({"n": total + 1}))?;
    Ok(())
}

/// A read-model store in `dir` with the `seen` model of [`count_seen`].
pub fn seen_models(dir: &tempfile::TempDir) -> eventum_projections::ReadModelStore {
    let models = eventum_projections::ReadModelStore::open(
        dir.path(),
        eventum_projections::StoreConfig::default(),
    )
    .unwrap();
    models.define_model("seen", Vec::new()).unwrap();
    models
}

/// How many messages [`count_seen`] handled.
pub fn seen_total(models: &eventum_projections::ReadModelStore) -> u64 {
    models
        .get("seen", "_total")
        .unwrap()
        .map_or(0, |d| d["n"].as_u64().unwrap())
}
