//! Projection rebuild throughput against a plain `read_all` of the same events, measured
//! in the same run: pre-fills a `LogStore` (default 1,000,000 events over 10,000 streams),
//! reads `$all` once (the baseline), then rebuilds a per-stream summary projection from
//! position 0 into a fresh read-model store and prints events/s and the ratio.
//!
//! `cargo bench -p eventum-projections --bench projection_rebuild`
//! Environment: `EVENTUM_BENCH_EVENTS`, `EVENTUM_BENCH_STREAMS`, `EVENTUM_BENCH_APPEND_BATCH`
//! (events per append, each to one random stream; default 100), `EVENTUM_BENCH_LOG_DIR`
//! (keep the filled log there and reuse it on the next run), `EVENTUM_BENCH_REBUILD_BATCH`
//! (`rebuild_batch_events_max`).

use std::sync::Arc;
use std::time::Instant;

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, RecordedEvent, StreamName,
    SubscriptionTarget,
};
use eventum_log::{LogConfig, LogStore};
use eventum_projections::{
    Projection, ProjectionError, ProjectionTx, ReadModelStore, RunnerConfig, Status, StoreConfig,
    rebuild,
};
use serde_json::json;

/// Target from the issue, events/s.
const TARGET_EVENTS_PER_S: f64 = 500_000.0;

/// Per stream: events, bytes of data, last type and position.
struct StreamSummary;

impl Projection for StreamSummary {
    fn name(&self) -> &str {
        "stream_summary"
    }
    fn version(&self) -> u64 {
        1
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::All
    }
    fn apply(&self, tx: &mut ProjectionTx<'_>, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let doc = tx.document_mut(&e.stream)?.get_or_insert_with(
            || json!({"events": 0u64, "bytes": 0u64, "last_type": "", "last_position": 0u64}),
        );
        // In place: no key strings are allocated per event.
        let obj = doc.as_object_mut().expect("an object");
        let set = |obj: &mut serde_json::Map<String, serde_json::Value>,
                   k: &str,
                   v: serde_json::Value| {
            *obj.get_mut(k).expect("created with every field") = v;
        };
        let events = obj["events"].as_u64().unwrap_or(0) + 1;
        let bytes = obj["bytes"].as_u64().unwrap_or(0) + e.data.len() as u64;
        set(obj, "events", events.into());
        set(obj, "bytes", bytes.into());
        if obj["last_type"] != e.event_type.as_str() {
            set(obj, "last_type", e.event_type.clone().into());
        }
        set(obj, "last_position", e.position.into());
        Ok(())
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.parse().expect(name))
}

async fn fill(store: &LogStore, events: u64, streams: u64, append_batch: usize) {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut written = 0;
    let mut pending = Vec::new();
    while written < events {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let stream = StreamName::new(format!("acct-{}", rng % streams)).unwrap();
        let n = append_batch.min((events - written) as usize);
        let batch: Vec<NewEvent> = (0..n)
            .map(|i| {
                NewEvent::new(
                    if i % 3 == 0 { "Deposited" } else { "Withdrawn" },
                    &json!({"amount": i, "note": "benchmark event payload"}),
                )
                .unwrap()
            })
            .collect();
        written += n as u64;
        pending.push(async move {
            store
                .append(&stream, ExpectedVersion::Any, batch)
                .await
                .unwrap()
        });
        if pending.len() == 64 {
            futures::future::join_all(pending.drain(..)).await;
        }
    }
    futures::future::join_all(pending).await;
}

async fn read_all(store: &LogStore) -> u64 {
    let mut from = 0;
    let mut count = 0;
    loop {
        let page = store
            .read_all(Some(from), ReadDirection::Forward, 10_000)
            .await
            .unwrap();
        count += page.len() as u64;
        match page.last() {
            Some(e) if page.len() == 10_000 => from = e.position + 1,
            _ => return count,
        }
    }
}

fn main() {
    let events = env("EVENTUM_BENCH_EVENTS", 1_000_000);
    let streams = env("EVENTUM_BENCH_STREAMS", 10_000);
    let append_batch = env("EVENTUM_BENCH_APPEND_BATCH", 100).max(1) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // `EVENTUM_BENCH_LOG_DIR` keeps (and reuses) the filled log, e.g. for profiling.
        let keep = std::env::var_os("EVENTUM_BENCH_LOG_DIR").map(std::path::PathBuf::from);
        let log_dir = keep.clone().unwrap_or_else(|| dir.path().join("log"));
        if keep.is_none() || !log_dir.join("log").exists() {
            let log = LogStore::open(&log_dir, LogConfig::default()).unwrap();
            let t = Instant::now();
            fill(&log, events, streams, append_batch).await;
            eprintln!("filled {events} events over {streams} streams in {:?}", t.elapsed());
            log.shutdown();
        }
        // Fresh opens for both measurements, so both start from the same cold-ish state.
        let log = LogStore::open(&log_dir, LogConfig::default()).unwrap();
        let t = Instant::now();
        let read = read_all(&log).await;
        let read_s = t.elapsed().as_secs_f64();
        assert_eq!(read, events);

        let models = ReadModelStore::open(dir.path().join("models"), StoreConfig::default()).unwrap();
        let events_store: Arc<dyn EventStore> = log.clone();
        let t = Instant::now();
        let report = rebuild(
            models.clone(),
            events_store,
            Arc::new(StreamSummary),
            RunnerConfig {
                rebuild_batch_events_max: env(
                    "EVENTUM_BENCH_REBUILD_BATCH",
                    RunnerConfig::default().rebuild_batch_events_max as u64,
                ) as usize,
                ..RunnerConfig::default()
            },
            |_: &Status| {},
        )
        .await
        .unwrap();
        let rebuild_s = t.elapsed().as_secs_f64();
        assert_eq!(report.events_applied, events);
        let docs = {
            let mut n = 0;
            let mut from: Option<String> = None;
            loop {
                let page = models.list("stream_summary", from.as_deref(), 1000).unwrap();
                let got = page.len();
                n += page.iter().filter(|d| Some(&d.key) != from.as_ref()).count();
                if got < 1000 {
                    break n;
                }
                from = page.last().map(|d| d.key.clone());
            }
        };
        let total: u64 = {
            let mut sum = 0;
            let mut from: Option<String> = None;
            loop {
                let page = models.list("stream_summary", from.as_deref(), 1000).unwrap();
                let got = page.len();
                sum += page
                    .iter()
                    .filter(|d| Some(&d.key) != from.as_ref())
                    .map(|d| d.doc["events"].as_u64().unwrap())
                    .sum::<u64>();
                if got < 1000 {
                    break sum;
                }
                from = page.last().map(|d| d.key.clone());
            }
        };
        assert_eq!(total, events, "the summary counts every event once");

        let read_rate = events as f64 / read_s;
        let rebuild_rate = events as f64 / rebuild_s;
        println!("| measurement | events | seconds | events/s |");
        println!("|---|---:|---:|---:|");
        println!("| baseline: `read_all` forward, pages of 10,000 | {events} | {read_s:.3} | {read_rate:.0} |");
        println!(
            "| rebuild `stream_summary` ({docs} documents) | {events} | {rebuild_s:.3} | {rebuild_rate:.0} |"
        );
        println!();
        println!(
            "rebuild / read_all ratio: {:.2}; target {TARGET_EVENTS_PER_S:.0} events/s: {}",
            rebuild_rate / read_rate,
            if rebuild_rate >= TARGET_EVENTS_PER_S { "met" } else { "MISSED" }
        );
        log.shutdown();
    });
}
