//! Crash test with real processes: this test binary re-executes itself as a child that
//! appends through an inline projection while async projections follow; the parent kills
//! it with SIGKILL at a random moment, then checks that the inline projection's durable
//! checkpoint covers every acknowledged append (before any catch-up), reopens everything,
//! lets the projections catch up and checks that every read model equals a fold over the
//! log: no event lost, none applied twice. Some cycles bump the orders projection's
//! version, so rebuilds get killed too. `EVENTUM_CRASH_CYCLES` sets the number of cycles
//! (default 40), `EVENTUM_CRASH_SEED` replays the kill times of an earlier run.

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use eventum_core::{EventStore, RecordedEvent, SubscriptionTarget};
use eventum_log::LogStore;
use eventum_projections::{
    InlineProjections, Projection, ProjectionError, ProjectionRunner, ProjectionTx, RunnerConfig,
};
use eventum_testkit::crash::{Child, Rng, count_from_env, say_ready, seed_from_env};
use serde_json::Value;

const CHILD_ENV: &str = "EVENTUM_PROJ_CRASH_CHILD";
const CYCLE_ENV: &str = "EVENTUM_PROJ_CRASH_CYCLE";
const CHILD_TEST: &str = "crash_child";

/// The orders projection's version in a cycle: bumped every 7 cycles.
fn orders_version(cycle: u64) -> u64 {
    1 + cycle / 7
}

/// A per-stream counter under a given name (one runs inline, one async).
struct NamedCounter(&'static str);

impl Projection for NamedCounter {
    fn name(&self) -> &str {
        self.0
    }
    fn version(&self) -> u64 {
        1
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::All
    }
    fn apply(&self, tx: &mut ProjectionTx<'_>, e: &RecordedEvent) -> Result<(), ProjectionError> {
        Counter.apply(tx, e)
    }
}

fn config() -> RunnerConfig {
    RunnerConfig {
        batch_events_max: 50,
        catch_up_batch_events_max: 200,
        rebuild_durable_every_batches: 4,
        ..RunnerConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// The child.

#[test]
#[ignore = "child process of sigkill_leaves_every_read_model_equal_to_a_fold"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir).to_owned();
    let cycle: u64 = std::env::var(CYCLE_ENV).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log = open_log(&dir.join("log"));
        let models = open_models(&dir.join("models"));
        let _async_counter = ProjectionRunner::start(
            models.clone(),
            log.clone(),
            Arc::new(NamedCounter("async-counter")),
            config(),
        )
        .await
        .unwrap();
        let _orders = ProjectionRunner::start(
            models.clone(),
            log.clone(),
            Arc::new(Orders {
                version: orders_version(cycle),
            }),
            config(),
        )
        .await
        .unwrap();
        let inline: Vec<Arc<dyn Projection>> = vec![Arc::new(NamedCounter("inline-counter"))];
        let store = Arc::new(
            InlineProjections::open(log.clone(), models.clone(), inline, config())
                .await
                .unwrap(),
        );
        say_ready();
        let tasks: Vec<_> = (0..3u64)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in (cycle * 1_000_000 + t * 100_000).. {
                        let position = append_orders(&*store, i, 1).await;
                        let mut out = std::io::stdout().lock();
                        out.write_all(format!("ACK {position}\n").as_bytes())
                            .unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------
// The parent.

fn max_ack(output: &str) -> Option<u64> {
    let complete = &output[..output.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|p| p.parse::<u64>().unwrap())
        .max()
}

async fn check_cycle(dir: &Path, cycle: u64, acked: Option<u64>) -> usize {
    let models = open_models(&dir.join("models"));
    // Inline's promise, before anything catches up: every acknowledged append is in the
    // inline read model's durable checkpoint.
    if let Some(acked) = acked {
        let info = models.model_info("inline-counter").unwrap().unwrap();
        assert!(
            info.position_next > acked,
            "cycle {cycle}: acknowledged position {acked} is not in the inline read model \
             (checkpoint {})",
            info.position_next
        );
    }
    let log: Arc<LogStore> = open_log(&dir.join("log"));
    let inline: Vec<Arc<dyn Projection>> = vec![Arc::new(NamedCounter("inline-counter"))];
    let _inline = InlineProjections::open(log.clone(), models.clone(), inline, config())
        .await
        .unwrap();
    let version = orders_version(cycle);
    let runners = [
        ProjectionRunner::start(
            models.clone(),
            log.clone(),
            Arc::new(NamedCounter("async-counter")),
            config(),
        )
        .await
        .unwrap(),
        ProjectionRunner::start(
            models.clone(),
            log.clone(),
            Arc::new(Orders { version }),
            config(),
        )
        .await
        .unwrap(),
    ];
    let history = read_log(&*log).await;
    if let Some(head) = log.head_position() {
        for r in &runners {
            within("catch-up", r.wait_for_position(head)).await.unwrap();
        }
    }
    let counters = fold_counter(&history);
    for model in ["inline-counter", "async-counter"] {
        let actual = read_model(&models, model);
        if actual != counters {
            let diff: Vec<(&String, Option<&Value>, Option<&Value>)> = counters
                .iter()
                .filter(|(k, v)| actual.get(*k) != Some(v))
                .map(|(k, v)| (k, Some(v), actual.get(k)))
                .take(5)
                .collect();
            panic!("cycle {cycle}: {model} differs from the fold: {diff:?}");
        }
    }
    assert_eq!(
        read_model(&models, "orders"),
        fold_orders(&history, version),
        "cycle {cycle}: orders v{version}"
    );
    let info = models.model_info("orders").unwrap().unwrap();
    assert_eq!(
        (info.version, info.building),
        (version, None),
        "cycle {cycle}"
    );
    for r in runners {
        r.stop().await.unwrap();
    }
    drop(_inline);
    log.shutdown();
    history.len()
}

#[test]
fn sigkill_leaves_every_read_model_equal_to_a_fold() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let cycles = count_from_env("EVENTUM_CRASH_CYCLES", 40);
    let seed = seed_from_env("EVENTUM_CRASH_SEED");
    eprintln!("projection crash test: {cycles} cycles, EVENTUM_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut cycles_with_acks = 0;
    let mut events = 0;
    for cycle in 0..cycles {
        let stderr_path = logs.path().join("child-stderr.log");
        let cycle_text = cycle.to_string();
        let mut child = Child::spawn(
            CHILD_TEST,
            &[
                (CHILD_ENV, dir.path().as_os_str()),
                (CYCLE_ENV, OsStr::new(&cycle_text)),
            ],
            Some(&stderr_path),
        );
        // Timed from the child's READY line (projections open and caught up), so that
        // a slow start on a loaded machine does not turn every cycle into a kill at open.
        child
            .wait_ready(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): {e}"));
        std::thread::sleep(Duration::from_millis(20 + rng.below(381)));
        let output = child
            .kill()
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): {e}"));
        let acked = max_ack(&output);
        cycles_with_acks += usize::from(acked.is_some());
        events = runtime.block_on(check_cycle(dir.path(), cycle, acked));
    }
    eprintln!(
        "projection crash test: {cycles} cycles ({cycles_with_acks} with acknowledged appends), \
         {events} events, {:?}",
        started.elapsed()
    );
    assert!(
        cycles_with_acks as u64 >= cycles / 2,
        "too few cycles got as far as an append ({cycles_with_acks}/{cycles})"
    );
}
