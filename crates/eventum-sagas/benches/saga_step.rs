//! One saga step end to end on the real `LogStore`: an event is appended, the saga runner
//! records the step and sends a command, the service appends its answer. The latency from
//! before the first append until the answer is durable is compared with the same-run
//! `pwrite` + `fdatasync` p99 of the same disk (target: step p99 ≤ 5 ms + fdatasync p99).
//!
//! The scenarios run in interleaved one-second slices (raw, store, isolated steps, back-to-back
//! steps, again and again), so that the baseline sees the same disk and CPU noise as the
//! steps on this shared machine.
//!
//! Run: `cargo bench -p eventum-sagas --bench saga_step` (env `SAGA_BENCH_SECONDS`, default 10
//! slices per scenario).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventum_core::{
    Causation, CommandAccepted, CommandEnvelope, CommandSender, EventStore, ExpectedVersion,
    NewEvent, RecordedEvent, SendError, StreamName, SubscriptionTarget,
};
use eventum_log::{LogConfig, LogStore};
use eventum_sagas::{Action, SagaConfig, SagaRunner, SystemClock, Trigger};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::mpsc;

/// On `OrderPlaced`, ask for payment; on `PaymentProcessed`, complete.
struct PayOrder {
    name: String,
    category: String,
}

impl eventum_sagas::Saga for PayOrder {
    type State = ();
    fn name(&self) -> &str {
        &self.name
    }
    fn source(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category(self.category.clone())
    }
    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        if event.event_type != "OrderPlaced" && event.event_type != "PaymentProcessed" {
            return None;
        }
        let d: serde_json::Value = serde_json::from_slice(&event.data).ok()?;
        d["order_id"].as_str().map(str::to_owned)
    }
    fn starts(&self, event: &RecordedEvent) -> bool {
        event.event_type == "OrderPlaced"
    }
    fn handle(&self, _: &(), trigger: &Trigger<'_>) -> Vec<Action> {
        match trigger.event_type() {
            Some("OrderPlaced") => {
                let Trigger::Event(e) = trigger else {
                    return Vec::new();
                };
                let d: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
                vec![Action::send("ProcessPayment", d)]
            }
            Some("PaymentProcessed") => vec![Action::Complete],
            _ => Vec::new(),
        }
    }
    fn evolve(&self, _: &mut (), _: &Trigger<'_>) {}
}

/// The payment service: appends its answer (deduplicated by command id) and reports when
/// it is durable.
struct Payments {
    store: Arc<dyn EventStore>,
    /// (order id, when the command arrived, when its answer was durable).
    done: mpsc::Sender<(String, Instant, Instant)>,
}

#[async_trait]
impl CommandSender for Payments {
    async fn send(&self, command: CommandEnvelope) -> Result<CommandAccepted, SendError> {
        let arrived = Instant::now();
        let order_id = command.payload["order_id"].as_str().unwrap().to_owned();
        let category = command.payload["category"]
            .as_str()
            .unwrap_or("orders")
            .to_owned();
        let stream = StreamName::new(format!("{category}-cmd-{}", command.command_id)).unwrap();
        let event = Causation::caused_by_command(&command)
            .stamp(NewEvent::new("PaymentProcessed", &json!({"order_id": order_id})).unwrap());
        let r = self
            .store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .map_err(|e| SendError::Failed(e.to_string()))?;
        let _ = self.done.send((order_id, arrived, Instant::now())).await;
        Ok(CommandAccepted {
            stream: stream.to_string(),
            version: Some(r.next_expected_version),
            position: Some(r.position),
            event_ids: Vec::new(),
            duplicate: false,
        })
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// `pwrite` of one small record + `fdatasync`, one at a time, into a preallocated file.
struct RawFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    offset: u64,
    latency: Histogram<u64>,
}

const RAW_FILE_BYTES: u64 = 64 * 1024 * 1024;

impl RawFile {
    fn new(dir: &Path) -> Self {
        let path = dir.join("raw");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // Preallocate with real blocks, as the store's segments are.
        let zeros = vec![0u8; 1024 * 1024];
        for i in 0..RAW_FILE_BYTES / zeros.len() as u64 {
            file.write_all_at(&zeros, i * zeros.len() as u64).unwrap();
        }
        file.sync_all().unwrap();
        Self {
            path,
            file,
            offset: 0,
            latency: histogram(),
        }
    }

    fn run_for(&mut self, duration: Duration) {
        let record = [7u8; 300];
        let started = Instant::now();
        while started.elapsed() < duration {
            if self.offset + record.len() as u64 > RAW_FILE_BYTES {
                self.offset = 0;
            }
            let t = Instant::now();
            self.file.write_all_at(&record, self.offset).unwrap();
            self.file.sync_data().unwrap();
            self.latency
                .saturating_record(t.elapsed().as_micros() as u64);
            self.offset += record.len() as u64;
        }
    }
}

impl Drop for RawFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Raw `LogStore` appends of one event, one at a time (for context).
async fn store_appends(store: &Arc<LogStore>, duration: Duration, h: &mut Histogram<u64>) {
    let stream = StreamName::new("rawbench-1").unwrap();
    let started = Instant::now();
    while started.elapsed() < duration {
        let e = NewEvent::new("Raw", &json!({"x": 1})).unwrap();
        let t = Instant::now();
        store
            .append(&stream, ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
        h.saturating_record(t.elapsed().as_micros() as u64);
    }
}

/// Orders one after the other through one saga runner. With `isolated`, each order's
/// completion step is awaited before the next order, so a step never queues behind the
/// previous order's completion; otherwise the next order is appended as soon as the
/// answer is durable.
struct StepBench {
    store: Arc<LogStore>,
    runner: Option<eventum_sagas::SagaHandle>,
    done: mpsc::Receiver<(String, Instant, Instant)>,
    completions: eventum_core::Subscription,
    name: String,
    tag: String,
    isolated: bool,
    step: Histogram<u64>,
    to_command: Histogram<u64>,
    to_answer: Histogram<u64>,
    count: u64,
}

impl StepBench {
    async fn start(store: &Arc<LogStore>, isolated: bool, tag: &str) -> Self {
        let (done_tx, done) = mpsc::channel(1024);
        let dyn_store: Arc<dyn EventStore> = store.clone();
        let name = format!("bench{tag}");
        let runner = SagaRunner::start(
            dyn_store.clone(),
            Arc::new(Payments {
                store: dyn_store.clone(),
                done: done_tx,
            }),
            PayOrder {
                name: name.clone(),
                category: format!("orders{tag}"),
            },
            SagaConfig::default(),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let completions = store.subscribe(
            SubscriptionTarget::Category("$saga".into()),
            eventum_core::SubscriptionFrom::End,
        );
        Self {
            store: store.clone(),
            runner: Some(runner),
            done,
            completions,
            name,
            tag: tag.to_owned(),
            isolated,
            step: histogram(),
            to_command: histogram(),
            to_answer: histogram(),
            count: 0,
        }
    }

    async fn run_for(&mut self, duration: Duration) {
        let started = Instant::now();
        while started.elapsed() < duration {
            let tag = &self.tag;
            let order_id = format!("o{}", self.count);
            let stream = StreamName::new(format!("orders{tag}-{order_id}")).unwrap();
            let event = NewEvent::new(
                "OrderPlaced",
                &json!({"order_id": order_id, "category": format!("orders{tag}")}),
            )
            .unwrap();
            let t = Instant::now();
            self.store
                .append(&stream, ExpectedVersion::NoStream, vec![event])
                .await
                .unwrap();
            loop {
                let (answered, arrived, at) =
                    tokio::time::timeout(Duration::from_secs(10), self.done.recv())
                        .await
                        .expect("the saga answers within 10 s")
                        .unwrap();
                if answered == order_id {
                    self.step
                        .saturating_record(at.duration_since(t).as_micros() as u64);
                    self.to_command
                        .saturating_record(arrived.duration_since(t).as_micros() as u64);
                    self.to_answer
                        .saturating_record(at.duration_since(arrived).as_micros() as u64);
                    break;
                }
            }
            // Always drain this order's completion: in back-to-back mode only after the
            // next order is appended would be unfair to the slices that follow.
            let instance = format!("$saga-{}-{order_id}", self.name);
            if self.isolated || started.elapsed() >= duration {
                loop {
                    let e = tokio::time::timeout(Duration::from_secs(10), self.completions.next())
                        .await
                        .expect("the order completes within 10 s")
                        .unwrap()
                        .unwrap();
                    if e.stream == instance && e.event_type == "StatusChanged" {
                        break;
                    }
                }
            }
            self.count += 1;
        }
    }

    async fn stop(&mut self) {
        if let Some(runner) = self.runner.take() {
            runner.stop().await.unwrap();
        }
    }
}

fn row(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<52} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

fn main() {
    let slices: u64 = std::env::var("SAGA_BENCH_SECONDS")
        .ok()
        .map_or(10, |v| v.parse().expect("SAGA_BENCH_SECONDS is a number"));
    let slice = Duration::from_secs(1);
    // In the target directory: the same disk the other benches and the store use.
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();
    println!(
        "saga_step: {slices} interleaved 1 s slices per scenario, directory {}",
        dir.path().display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut raw = RawFile::new(dir.path());
    let (appends, isolated, pipelined) = runtime.block_on(async {
        let store = LogStore::open(dir.path().join("store"), LogConfig::default()).unwrap();
        let mut appends = histogram();
        let mut isolated = StepBench::start(&store, true, "a").await;
        let mut pipelined = StepBench::start(&store, false, "b").await;
        for _ in 0..slices {
            // The raw baseline blocks this thread on purpose: nothing else is measured
            // meanwhile, and the runners are idle.
            raw.run_for(slice);
            store_appends(&store, slice, &mut appends).await;
            isolated.run_for(slice).await;
            pipelined.run_for(slice).await;
        }
        isolated.stop().await;
        pipelined.stop().await;
        store.shutdown();
        (appends, isolated, pipelined)
    });

    println!(
        "\n{:<52} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "scenario (latency in ms)", "samples", "p50", "p99", "p99.9", "max"
    );
    row("raw pwrite+fdatasync (baseline)", &raw.latency);
    row("LogStore append, 1 event (context)", &appends);
    row("saga step, isolated: event in -> event out", &isolated.step);
    row(
        "  of which event in -> command at the service",
        &isolated.to_command,
    );
    row("  of which command -> answer durable", &isolated.to_answer);
    row(
        "saga step, back to back: event in -> event out",
        &pipelined.step,
    );
    row(
        "  of which event in -> command at the service",
        &pipelined.to_command,
    );
    row("  of which command -> answer durable", &pipelined.to_answer);
    let raw_p99_ms = raw.latency.value_at_quantile(0.99) as f64 / 1000.0;
    let store_p99_ms = appends.value_at_quantile(0.99) as f64 / 1000.0;
    let target_ms = 5.0 + raw_p99_ms;
    for (name, l) in [("isolated", &isolated), ("back to back", &pipelined)] {
        let p99_ms = l.step.value_at_quantile(0.99) as f64 / 1000.0;
        println!(
            "{name}: {} steps; step p99 {p99_ms:.3} ms; target 5 ms + fdatasync p99 = {target_ms:.3} ms \
             ({}); step p99 / fdatasync p99 = {:.2}; step p99 / store append p99 = {:.2}",
            l.count,
            if p99_ms <= target_ms { "MET" } else { "MISSED" },
            p99_ms / raw_p99_ms,
            p99_ms / store_p99_ms,
        );
    }
}
