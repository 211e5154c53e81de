//! `eventum bench`: durable-append, read and catch-up throughput of the embedded store,
//! each compared with a raw-disk baseline measured in the same run, in the same directory;
//! with `--store postgres://…` the same scenarios on the PostgreSQL store, each compared
//! with raw commits of the same rows on the same server ([`pg`]).

mod pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName, SubscriptionFrom,
    SubscriptionTarget,
};
use eventum_log::{LogConfig, LogStore};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::bench_raw;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Directory for the bench's store and baseline files; a fresh `bench-<pid>` directory
    /// is made inside it and removed afterwards (unless --keep).
    #[arg(long, default_value = ".")]
    pub data: PathBuf,
    /// Seconds each append scenario (and the baseline) runs.
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// Concurrent writers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub writers: Vec<usize>,
    /// Events per append, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    pub batch: Vec<usize>,
    /// Bytes of each event's data.
    #[arg(long, default_value_t = 256)]
    pub event_bytes: usize,
    /// Events the store holds for the read and catch-up scenarios (topped up if the append
    /// scenarios wrote fewer).
    #[arg(long, default_value_t = 2_000_000)]
    pub read_events: u64,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep the bench directory (and, with --store, the schema).
    #[arg(long)]
    pub keep: bool,
    /// Bench the PostgreSQL store at this URL (`postgres://user@host/db`) instead of the
    /// embedded log; the bench works in a fresh schema and drops it afterwards.
    #[arg(long)]
    pub store: Option<String>,
    /// With --store: group-commit transactions in flight at once (PgConfig::committers_max;
    /// 1 commits groups one after the other).
    #[arg(long, default_value_t = eventum_postgres::PgConfig::new("").committers_max)]
    pub store_committers: usize,
    /// With --store: most events per group-commit transaction (PgConfig::group_events_max).
    #[arg(long, default_value_t = eventum_postgres::PgConfig::new("").group_events_max)]
    pub store_group_events: usize,
}

/// One measured scenario.
#[derive(Serialize, Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub latency_us_p50: Option<u64>,
    pub latency_us_p99: Option<u64>,
    pub latency_us_p999: Option<u64>,
    /// Throughput relative to the raw baseline (write scenarios), or p99 latency relative
    /// to the raw fdatasync p99 (the single-writer, single-event scenario).
    pub ratio_to_baseline: Option<f64>,
    /// Throughput relative to the baseline on a file readied ahead as the store's segments
    /// are (write scenarios of the embedded store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_readied_baseline: Option<f64>,
}

#[derive(Serialize, Debug)]
struct Report {
    machine: String,
    /// The PostgreSQL server and its commit settings, with --store.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    duration_s: u64,
    event_bytes: usize,
    store_open_ms: f64,
    store_events: u64,
    rss_mib_after_reads: f64,
    scenarios: Vec<Scenario>,
}

/// Microseconds from 1 µs to a minute, to 2 significant figures (1%). Each of up to 256
/// writer tasks records into its own histogram: at 3 figures they took ~200 KiB each, and
/// the cache misses of recording showed up as 4% of the 256-writer profile.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}

pub(crate) fn scenario(
    name: String,
    events: u64,
    elapsed: Duration,
    latency: Option<&Histogram<u64>>,
) -> Scenario {
    let seconds = elapsed.as_secs_f64();
    let q = |q: f64| {
        latency
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(q))
    };
    Scenario {
        name,
        events,
        seconds,
        events_per_s: events as f64 / seconds.max(1e-9),
        latency_us_p50: q(0.5),
        latency_us_p99: q(0.99),
        latency_us_p999: q(0.999),
        ratio_to_baseline: None,
        ratio_to_readied_baseline: None,
    }
}

pub(crate) fn progress(quiet: bool, len: u64, label: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = match &args.store {
        Some(url) => pg::run(&args, url).await?,
        None => {
            let dir = args.data.join(format!("bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let result = run_in(&args, &dir).await;
            if !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
            result?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

async fn run_in(args: &BenchArgs, dir: &Path) -> anyhow::Result<Report> {
    let duration = Duration::from_secs(args.duration.max(1));
    let data = Bytes::from(format!(
        "\"{}\"",
        "x".repeat(args.event_bytes.saturating_sub(2))
    ));
    let quiet = args.json;
    let mut scenarios = Vec::new();

    let raw_dir = dir.join("raw");
    std::fs::create_dir_all(&raw_dir)?;
    let baseline = bench_raw::batched(&raw_dir, &data, 1000, false, duration, quiet)?;
    let fsync = bench_raw::single(&raw_dir, &data, duration.min(Duration::from_secs(3)), quiet)?;

    let store_dir = dir.join("store");
    let log = LogStore::open(&store_dir, LogConfig::default())?;
    let store: Arc<dyn EventStore> = log.clone();
    let template = NewEvent::from_json("BenchEvent", data.clone())?;
    for &batch in &args.batch {
        for &writers in &args.writers {
            let mut s = append_scenario(&store, &template, writers, batch, duration, quiet).await?;
            s.ratio_to_baseline = Some(s.events_per_s / baseline.events_per_s);
            if writers == 1
                && batch == 1
                && let (Some(p99), Some(raw_p99)) = (s.latency_us_p99, fsync.latency_us_p99)
            {
                s.ratio_to_baseline = Some(p99 as f64 / raw_p99.max(1) as f64);
            }
            scenarios.push(s);
        }
    }
    top_up_to(&store, &template, args.read_events, quiet).await?;
    log.shutdown();
    drop((store, log));

    let started = Instant::now();
    let log = LogStore::open(&store_dir, LogConfig::default())?;
    let store_open_ms = started.elapsed().as_secs_f64() * 1e3;
    let store: Arc<dyn EventStore> = log.clone();
    let mut all = vec![baseline, fsync];
    all.extend(scenarios);
    let report = read_and_report(&store, args, store_open_ms, all).await;
    log.shutdown();
    drop((store, log));
    let mut report = report?;
    // Last, so that the zeros it writes cannot slow the scenarios above: the baseline on a
    // file readied ahead as the store readies its segments (inline here, as a lone writer
    // has no idle time). Its ratio shows the store against equally prepared blocks.
    let readied = bench_raw::batched(&raw_dir, &data, 1000, true, duration, quiet)?;
    let _ = std::fs::remove_dir_all(&raw_dir);
    for s in report
        .scenarios
        .iter_mut()
        .filter(|s| s.name.starts_with("append"))
    {
        s.ratio_to_readied_baseline = Some(s.events_per_s / readied.events_per_s);
    }
    report.scenarios.insert(1, readied);
    Ok(report)
}

async fn append_scenario(
    store: &Arc<dyn EventStore>,
    template: &NewEvent,
    writers: usize,
    batch: usize,
    duration: Duration,
    quiet: bool,
) -> anyhow::Result<Scenario> {
    let name = format!("append {writers} writer(s) x {batch}");
    let streams: Vec<StreamName> = (0..writers)
        .map(|w| StreamName::new(format!("bench{writers}x{batch}-{w}")))
        .collect::<Result<_, _>>()?;
    let (store, template, streams) = (store.clone(), template.clone(), Arc::new(streams));
    writers_scenario(name, writers, duration, quiet, move |w| {
        let (store, template, streams) = (store.clone(), template.clone(), streams.clone());
        async move {
            let events: Vec<_> = (0..batch)
                .map(|_| template.clone().with_id(uuid::Uuid::now_v7()))
                .collect();
            store
                .append(&streams[w], ExpectedVersion::Any, events)
                .await?;
            Ok(batch as u64)
        }
    })
    .await
}

/// Runs `writers` tasks calling `op(writer)` back to back for `duration`; each call
/// returns the events it wrote and its latency is recorded.
async fn writers_scenario<F, Fut>(
    name: String,
    writers: usize,
    duration: Duration,
    quiet: bool,
    op: F,
) -> anyhow::Result<Scenario>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let bar = progress(quiet, duration.as_secs(), &name);
    let events = Arc::new(AtomicU64::new(0));
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let (op, events) = (op.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            // One clock read per call: the end of one call starts the next.
            let mut t = Instant::now();
            while t < deadline {
                let n = op(w).await?;
                let done = Instant::now();
                latency.saturating_record((done - t).as_micros() as u64);
                events.fetch_add(n, Ordering::Relaxed);
                t = done;
            }
            anyhow::Ok(latency)
        }));
    }
    let ticker = {
        let bar = bar.clone();
        let events = events.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!("{} events", events.load(Ordering::Relaxed)));
            }
        })
    };
    let mut latency = histogram();
    for t in tasks {
        latency.add(t.await??)?;
    }
    let elapsed = started.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    Ok(scenario(
        name,
        events.load(Ordering::Relaxed),
        elapsed,
        Some(&latency),
    ))
}

/// Appends events until the store holds `wanted` (for the read scenarios).
async fn top_up_to(
    store: &Arc<dyn EventStore>,
    template: &NewEvent,
    wanted: u64,
    quiet: bool,
) -> anyhow::Result<()> {
    let have = store.head_position().map_or(0, |p| p + 1);
    if have < wanted {
        top_up(store, template, wanted - have, quiet).await?;
    }
    Ok(())
}

/// Reads `$all` forward, then catches a subscription up over it, and reports them after
/// `scenarios`.
async fn read_and_report(
    store: &Arc<dyn EventStore>,
    args: &BenchArgs,
    store_open_ms: f64,
    mut scenarios: Vec<Scenario>,
) -> anyhow::Result<Report> {
    let store_events = store.head_position().map_or(0, |p| p + 1);
    scenarios.push(read_all(store, store_events, args.json).await?);
    scenarios.push(catch_up(store, store_events, args.json).await?);
    Ok(Report {
        machine: machine(),
        server: None,
        duration_s: args.duration.max(1),
        event_bytes: args.event_bytes,
        store_open_ms,
        store_events,
        rss_mib_after_reads: rss_mib(),
        scenarios,
    })
}

/// Appends `count` more events in batches of 1,000 from 4 writers.
async fn top_up(
    store: &Arc<dyn EventStore>,
    template: &NewEvent,
    count: u64,
    quiet: bool,
) -> anyhow::Result<()> {
    let bar = progress(quiet, count, "preloading events");
    let per_writer = count.div_ceil(4);
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        let template = template.clone();
        let bar = bar.clone();
        let stream = StreamName::new(format!("preload-{w}"))?;
        tasks.push(tokio::spawn(async move {
            let mut left = per_writer.min(count.saturating_sub(w * per_writer));
            while left > 0 {
                let n = left.min(1000);
                let batch: Vec<_> = (0..n)
                    .map(|_| template.clone().with_id(uuid::Uuid::now_v7()))
                    .collect();
                store.append(&stream, ExpectedVersion::Any, batch).await?;
                left -= n;
                bar.inc(n);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    bar.finish_and_clear();
    Ok(())
}

async fn read_all(
    store: &Arc<dyn EventStore>,
    total: u64,
    quiet: bool,
) -> anyhow::Result<Scenario> {
    let bar = progress(quiet, total, "read $all (fresh open)");
    let started = Instant::now();
    let (mut from, mut events) = (0u64, 0u64);
    loop {
        let page = store
            .read_all(Some(from), ReadDirection::Forward, 10_000)
            .await?;
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        events += page.len() as u64;
        bar.set_position(events);
    }
    bar.finish_and_clear();
    anyhow::ensure!(events == total, "read {events} events of {total}");
    Ok(scenario(
        "read $all forward".into(),
        events,
        started.elapsed(),
        None,
    ))
}

async fn catch_up(
    store: &Arc<dyn EventStore>,
    total: u64,
    quiet: bool,
) -> anyhow::Result<Scenario> {
    let bar = progress(quiet, total, "catch-up subscription");
    let started = Instant::now();
    let mut sub = store.subscribe(SubscriptionTarget::All, SubscriptionFrom::Position(0));
    let mut events = 0u64;
    while events < total {
        let event = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .context("catch-up subscription stalled")?
            .context("subscription ended")??;
        anyhow::ensure!(
            event.position == events,
            "subscription skipped from {events} to {}",
            event.position
        );
        events += 1;
        if events.is_multiple_of(65_536) {
            bar.set_position(events);
        }
    }
    bar.finish_and_clear();
    Ok(scenario(
        "catch-up subscription $all".into(),
        events,
        started.elapsed(),
        None,
    ))
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    format!("{cores} cores, {model}")
}

fn print_table(report: &Report) {
    println!(
        "eventum bench — {} — {} s per scenario, {}-byte events",
        report.machine, report.duration_s, report.event_bytes
    );
    if let Some(server) = &report.server {
        println!("server: {server}");
    }
    println!(
        "{:<40} {:>12} {:>9} {:>9} {:>9} {:>8} {:>10}",
        "scenario", "events/s", "p50 µs", "p99 µs", "p999 µs", "ratio", "vs readied"
    );
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    for s in &report.scenarios {
        let ratio = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2}"));
        println!(
            "{:<40} {:>12.0} {:>9} {:>9} {:>9} {:>8} {:>10}",
            s.name,
            s.events_per_s,
            opt(s.latency_us_p50),
            opt(s.latency_us_p99),
            opt(s.latency_us_p999),
            ratio(s.ratio_to_baseline),
            ratio(s.ratio_to_readied_baseline),
        );
    }
    println!(
        "store: {} events, opened in {:.0} ms; RSS after reads {:.0} MiB",
        report.store_events, report.store_open_ms, report.rss_mib_after_reads
    );
    if report.server.is_some() {
        println!("ratio: store throughput / the raw insert commits just before it");
    } else {
        println!(
            "ratio: throughput / raw baseline; for 1 writer x 1, p99 latency / raw fdatasync p99"
        );
        println!(
            "vs readied: throughput / the raw baseline on a file readied ahead like the store's segments"
        );
    }
}
