//! Append throughput of `PgStore` with 1, 16 and 64 concurrent writers, batches of 1 and
//! 100 events, against a same-run baseline on the same server: raw commits of the same
//! number of rows (one autocommitted `INSERT` per batch, no positions, no checks), as
//! `pgbench` would do. Prints one table row per case with the ratio store / raw.
//!
//! `cargo bench -p eventum-postgres --bench pg_append`
//! Env: `EVENTUM_BENCH_POSTGRES_URL` (default the test server), `PG_BENCH_SECONDS` (3),
//! `PG_BENCH_ONLY` (one case such as `64x100`, for profiling).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventum_core::{EventStore, ExpectedVersion, NewEvent, StreamName};
use eventum_postgres::{PgConfig, PgStore};
use hdrhistogram::Histogram;

struct Outcome {
    events_per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Runs `writers` tasks calling `op` until the deadline; each call writes `batch` events.
async fn measure<F, Fut>(writers: usize, batch: usize, seconds: u64, op: F) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (op, stop, done) = (op.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                op(w, i).await;
                hist.record(t.elapsed().as_micros() as u64).unwrap();
                done.fetch_add(batch as u64, Ordering::Relaxed);
                i += 1;
            }
            hist
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        hist.add(t.await.unwrap()).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    Outcome {
        events_per_s: done.load(Ordering::Relaxed) as f64 / elapsed,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
    }
}

fn events(batch: usize) -> Vec<NewEvent> {
    (0..batch)
        .map(|n| {
            NewEvent::from_json(
                "BenchEvent",
                format!(r#"{{"n":{n},"pad":"0123456789abcdef0123456789abcdef"}}"#),
            )
            .unwrap()
        })
        .collect()
}

async fn bench_store(url: &str, writers: usize, batch: usize, seconds: u64) -> Outcome {
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let mut config = PgConfig::new(url).with_schema(schema.clone());
    config.pool_size_max = writers;
    let store = PgStore::open(config)
        .await
        .expect("open PgStore (is PostgreSQL up?)");
    let s = store.clone();
    let out = measure(writers, batch, seconds, move |w, _| {
        let s = s.clone();
        async move {
            let stream = StreamName::new(format!("bench-{w}")).unwrap();
            s.append(&stream, ExpectedVersion::Any, events(batch))
                .await
                .expect("append");
        }
    })
    .await;
    store.shutdown();
    drop(store);
    eventum_postgres::baseline::execute(url, &format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    out
}

/// The baseline: each writer commits `batch` rows per autocommitted INSERT.
async fn bench_raw(url: &str, writers: usize, batch: usize, seconds: u64) -> Outcome {
    let raw = Arc::new(
        eventum_postgres::baseline::RawInserts::create(url, writers)
            .await
            .unwrap(),
    );
    let payload: Vec<Vec<u8>> = events(batch).iter().map(|e| e.data().to_vec()).collect();
    let payload = Arc::new(payload);
    let r = raw.clone();
    let out = measure(writers, batch, seconds, move |w, _| {
        let (raw, payload) = (r.clone(), payload.clone());
        async move {
            let rows: Vec<&[u8]> = payload.iter().map(Vec::as_slice).collect();
            raw.insert(w, &format!("bench-{w}"), &rows).await.unwrap();
        }
    })
    .await;
    Arc::into_inner(raw).unwrap().finish().await.unwrap();
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("EVENTUM_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let seconds: u64 = std::env::var("PG_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!("PgStore appends vs raw INSERT commits, {seconds} s per case, {url}");
    println!(
        "| case | raw rows/s | store events/s | store p50 µs | store p99 µs | raw p99 µs | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let only = std::env::var("PG_BENCH_ONLY").ok();
    for batch in [1usize, 100] {
        for writers in [1usize, 16, 64] {
            if only
                .as_ref()
                .is_some_and(|o| *o != format!("{writers}x{batch}"))
            {
                continue;
            }
            // Baseline and store back to back, so both see the same machine noise.
            let raw = bench_raw(&url, writers, batch, seconds).await;
            let store = bench_store(&url, writers, batch, seconds).await;
            println!(
                "| {writers} writers x {batch} | {:.0} | {:.0} | {} | {} | {} | {:.2} |",
                raw.events_per_s,
                store.events_per_s,
                store.p50_us,
                store.p99_us,
                raw.p99_us,
                store.events_per_s / raw.events_per_s
            );
        }
    }
}
