//! A relay process killed with SIGKILL at random moments, restarted each time on the same
//! log: in the end JetStream holds every event exactly once and in log order — the
//! checkpoint never ran ahead of the broker's acks, and what was re-sent after a kill
//! was dropped by `Nats-Msg-Id`. Fails (never skips) when NATS is unreachable.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventum_bridge::{NatsSink, NatsSinkConfig, Relay, RelayConfig, header};
use eventum_core::{EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName};
use eventum_log::{LogConfig, LogStore};
use eventum_testkit::crash::{Child, Rng, count_from_env, say_ready, seed_from_env};

use common::*;

const CHILD_TEST: &str = "crash_child";
const DIR_ENV: &str = "EVENTUM_BRIDGE_CRASH_DIR";
const PREFIX_ENV: &str = "EVENTUM_BRIDGE_CRASH_PREFIX";
const FINISH_ENV: &str = "EVENTUM_BRIDGE_CRASH_FINISH";
/// Events in the log before the first relay runs.
const EVENTS_BEFORE: usize = 5_000;
/// Printed by the final child once every event is acknowledged.
const DONE_LINE: &str = "DONE";
/// Printed by a child once its relay had something acknowledged.
const PUBLISHED_LINE: &str = "PUBLISHED";

#[test]
#[ignore = "child process of sigkill_relay_sends_every_event_once_in_order"]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let prefix = std::env::var(PREFIX_ENV).unwrap();
    let finish = std::env::var_os(FINISH_ENV).is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store: Arc<dyn EventStore> =
            LogStore::open(Path::new(&dir), LogConfig::default()).unwrap();
        let config = NatsSinkConfig {
            subject_prefix: prefix,
            ..NatsSinkConfig::default()
        };
        let sink = Arc::new(NatsSink::connect(&nats_url(), config).await.unwrap());
        let relay = Relay::spawn(
            store.clone(),
            sink,
            RelayConfig {
                batch_events_max: 16,
                checkpoint_interval_ms: 20,
                ..RelayConfig::named("crash")
            },
        )
        .unwrap();
        say_ready();
        if finish {
            let head = store.head_position().unwrap() + 1;
            if relay
                .wait_acknowledged(head, Duration::from_secs(300))
                .await
            {
                println!("{DONE_LINE}");
            }
            std::future::pending::<()>().await;
        }
        // The log keeps growing while the relay follows it, so that every kill lands
        // with work in flight.
        let mut progress = relay.progress();
        tokio::spawn(async move {
            if progress.wait_for(|p| p.published_total > 0).await.is_ok() {
                println!("{PUBLISHED_LINE}");
            }
        });
        for k in 0u64.. {
            let events = (0..10)
                .map(|i| NewEvent::new("OrderPaid", &serde_json::json!({"k": k, "i": i})).unwrap())
                .collect();
            let stream = StreamName::new(format!("order-{}", k % 50)).unwrap();
            store
                .append(&stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
}

#[test]
fn sigkill_relay_sends_every_event_once_in_order() {
    if std::env::var_os(DIR_ENV).is_some() {
        return;
    }
    let cycles = count_from_env("EVENTUM_CRASH_CYCLES", 12);
    let seed = seed_from_env("EVENTUM_CRASH_SEED");
    eprintln!("bridge crash test: {cycles} cycles, EVENTUM_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let prefix = unique("crash");
    let stream_name = prefix.to_uppercase();
    let sink = runtime.block_on(async {
        let config = NatsSinkConfig {
            subject_prefix: prefix.clone(),
            connect_timeout_ms: 2_000,
            ..NatsSinkConfig::default()
        };
        let url = nats_url();
        let sink = NatsSink::connect(&url, config)
            .await
            .unwrap_or_else(|e| unreachable("NATS", &url, e, "nats-server -js"));
        sink.ensure_stream(&stream_name, Duration::from_secs(300))
            .await
            .unwrap();
        // The log: EVENTS_BEFORE user events over 100 streams before any relay runs;
        // each child appends more while it relays.
        let store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        for start in (0..EVENTS_BEFORE).step_by(100) {
            let events = (start..start + 100)
                .map(|i| NewEvent::new("OrderCreated", &serde_json::json!({"i": i})).unwrap())
                .collect();
            let stream = StreamName::new(format!("order-{}", start / 100 % 100)).unwrap();
            store
                .append(&stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
        }
        store.shutdown();
        sink
    });

    let started = Instant::now();
    let mut cycles_published = 0;
    let spawn = |cycle: u64, finish: bool| {
        let mut envs = vec![
            (DIR_ENV, dir.path().as_os_str()),
            (PREFIX_ENV, OsStr::new(&prefix)),
        ];
        if finish {
            envs.push((FINISH_ENV, OsStr::new("1")));
        }
        let mut child = Child::spawn(
            CHILD_TEST,
            &envs,
            Some(&logs.path().join("child-stderr.log")),
        );
        child
            .wait_ready(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): {e}"));
        child
    };
    for cycle in 0..cycles {
        let child = spawn(cycle, false);
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        let output = child
            .kill()
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): {e}"));
        cycles_published += u64::from(output.contains(PUBLISHED_LINE));
    }
    // A last run to the end.
    let mut last = spawn(cycles, true);
    last.wait_for(DONE_LINE, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("final run (seed {seed}): {e}"));
    last.kill().unwrap();
    eprintln!(
        "bridge crash test: {cycles_published}/{cycles} killed children had published, {:?}",
        started.elapsed()
    );
    assert!(
        cycles_published >= cycles / 2,
        "too few children got as far as a publish ({cycles_published}/{cycles})"
    );

    runtime.block_on(async {
        let store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        let mut expected = Vec::new();
        let mut from = 0;
        loop {
            let page = store
                .read_all(Some(from), ReadDirection::Forward, 1_000)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            expected.extend(
                page.iter()
                    .filter(|e| !e.stream.starts_with('$'))
                    .map(|e| e.id.to_string()),
            );
        }
        assert!(expected.len() > EVENTS_BEFORE, "the children appended");
        let stream = sink.jetstream().get_stream(&stream_name).await.unwrap();
        let info = stream.get_info().await.unwrap();
        assert_eq!(
            info.state.messages as usize,
            expected.len(),
            "(seed {seed}) every event exactly once"
        );
        for (seq, id) in expected.iter().enumerate() {
            let m = stream.get_raw_message(seq as u64 + 1).await.unwrap();
            let got = m.headers.get(header::CE_ID).unwrap().as_str();
            assert_eq!(got, id, "(seed {seed}) message {} out of order", seq + 1);
        }
        store.shutdown();
        sink.jetstream().delete_stream(&stream_name).await.unwrap();
    });
}
