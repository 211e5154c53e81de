//! Commands through the bus on the embedded store, against the same run's baseline: raw
//! single-event appends by as many concurrent writers to the same store. Target: ≥ 50,000
//! commands/s with 64 concurrent callers.
//!
//! `cargo bench -p eventum-runtime --bench command_bus` (env: `BENCH_DIR` for the data
//! directory, default the system temp dir; `BENCH_SECONDS`, default 5; `BENCH_CALLERS`,
//! default 64).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventum_core::{EventStore, ExpectedVersion, NewEvent, StreamName};
use eventum_log::{LogConfig, LogStore};
use eventum_runtime::{
    Aggregate, BusConfig, Command, CommandBus, CommandMeta, DomainError, Repository,
    RepositoryConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
enum CounterCommand {
    Add { id: u64, by: u64 },
}

impl Command for CounterCommand {
    const TYPES: &'static [&'static str] = &["Add"];
    fn command_type(&self) -> &'static str {
        "Add"
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum CounterEvent {
    Added { by: u64 },
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;
impl DomainError for Never {
    fn code(&self) -> &str {
        "never"
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

impl Aggregate for Counter {
    const CATEGORY: &'static str = "counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = Never;
    fn aggregate_id(command: &CounterCommand) -> String {
        let CounterCommand::Add { id, .. } = command;
        id.to_string()
    }
    fn decide(&self, command: &CounterCommand) -> Result<Vec<CounterEvent>, Never> {
        let CounterCommand::Add { by, .. } = command;
        Ok(vec![CounterEvent::Added { by: *by }])
    }
    fn evolve(mut self, event: &CounterEvent) -> Self {
        let CounterEvent::Added { by } = event;
        self.total += by;
        self
    }
}

struct Figures {
    per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Runs `callers` tasks calling `op(caller, i)` for `duration`; ops/s and latency.
async fn drive<F, Fut>(callers: u64, duration: Duration, op: F) -> Figures
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let (op, stop) = (op.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                op(caller, i).await;
                h.record(t.elapsed().as_micros() as u64).unwrap();
                i += 1;
            }
            h
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    Figures {
        per_s: all.len() as f64 / start.elapsed().as_secs_f64(),
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
    }
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let callers: u64 = std::env::var("BENCH_CALLERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let base = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(base).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let duration = Duration::from_secs(seconds);
        let aggregates_per_caller = 100;

        // Baseline: the same number of concurrent writers appending one event each.
        let raw_store = LogStore::open(dir.path().join("raw"), LogConfig::default()).unwrap();
        let raw: Arc<dyn EventStore> = raw_store.clone();
        let raw_figures = drive(callers, duration, move |caller, i| {
            let store = raw.clone();
            async move {
                let stream =
                    StreamName::new(format!("raw-{caller}-{}", i % aggregates_per_caller)).unwrap();
                let event = NewEvent::new("Added", &serde_json::json!({"by": 1})).unwrap();
                store
                    .append(&stream, ExpectedVersion::Any, vec![event])
                    .await
                    .unwrap();
            }
        })
        .await;
        raw_store.shutdown();

        let store_log = LogStore::open(dir.path().join("bus"), LogConfig::default()).unwrap();
        let store: Arc<dyn EventStore> = store_log.clone();
        let bus = Arc::new(
            CommandBus::builder(BusConfig::default())
                .aggregate(Repository::<Counter>::new(
                    store.clone(),
                    RepositoryConfig::default(),
                ))
                .unwrap()
                .build(),
        );
        let bus_figures = drive(callers, duration, move |caller, i| {
            let bus = bus.clone();
            async move {
                let id = caller * aggregates_per_caller + i % aggregates_per_caller;
                bus.dispatch(CounterCommand::Add { id, by: 1 }, CommandMeta::new())
                    .await
                    .unwrap();
            }
        })
        .await;
        store_log.shutdown();

        println!(
            "machine: {} cores; callers: {callers}; {seconds} s per scenario; {} aggregates",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            callers * aggregates_per_caller
        );
        println!("| scenario | per s | p50 µs | p99 µs | ratio |");
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| raw append ×1, {callers} writers (baseline) | {:.0} | {} | {} | — |",
            raw_figures.per_s, raw_figures.p50_us, raw_figures.p99_us
        );
        println!(
            "| commands through the bus, {callers} callers | {:.0} | {} | {} | {:.2} |",
            bus_figures.per_s,
            bus_figures.p50_us,
            bus_figures.p99_us,
            bus_figures.per_s / raw_figures.per_s
        );
        println!(
            "target ≥ 50,000 commands/s: {}",
            if bus_figures.per_s >= 50_000.0 {
                "met"
            } else {
                "MISSED"
            }
        );
    });
}
