//! `eventum bench --store postgres://…`: the append, read and catch-up scenarios of the
//! embedded-store bench, run on the PostgreSQL store in a fresh schema. Each append
//! scenario comes right after its same-run baseline on the same server, so both see the
//! same machine: raw autocommitted `INSERT … SELECT FROM UNNEST` commits of the same rows
//! from the same number of connections into a one-index table (no positions, no checks,
//! no stream rows), as `pgbench` would measure; the scenario's ratio is store / raw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use eventum_core::{EventStore, NewEvent};
use eventum_postgres::baseline::{self, RawInserts};
use eventum_postgres::{PgConfig, PgStore};

use super::{
    BenchArgs, Report, Scenario, append_scenario, read_and_report, top_up_to, writers_scenario,
};

pub(super) async fn run(args: &BenchArgs, url: &str) -> anyhow::Result<Report> {
    let server = baseline::server_settings(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let schema = format!("eventum_bench_{}", std::process::id());
    let mut config = PgConfig::new(url).with_schema(&schema);
    config.pool_size_max = 16;
    config.committers_max = args.store_committers;
    config.group_events_max = args.store_group_events;
    let result = run_in(args, url, config).await;
    if !args.keep {
        let _ = baseline::execute(
            url,
            &format!("SET client_min_messages TO warning; DROP SCHEMA IF EXISTS {schema} CASCADE"),
        )
        .await;
    }
    let mut report = result?;
    report.server = Some(format!(
        "{server}; schema {schema}; committers_max {}, group_events_max {}",
        args.store_committers, args.store_group_events
    ));
    Ok(report)
}

async fn open(config: &PgConfig) -> anyhow::Result<Arc<PgStore>> {
    PgStore::open(config.clone())
        .await
        .with_context(|| format!("opening the PostgreSQL store (schema {})", config.schema))
}

async fn run_in(args: &BenchArgs, url: &str, config: PgConfig) -> anyhow::Result<Report> {
    let duration = Duration::from_secs(args.duration.max(1));
    let data = Bytes::from(format!(
        "\"{}\"",
        "x".repeat(args.event_bytes.saturating_sub(2))
    ));
    let quiet = args.json;
    let template = NewEvent::from_json("BenchEvent", data.clone())?;
    let pg = open(&config).await?;
    let store: Arc<dyn EventStore> = pg.clone();
    let mut scenarios = Vec::new();
    for &batch in &args.batch {
        for &writers in &args.writers {
            let raw = raw_scenario(url, writers, batch, &data, duration, quiet).await?;
            let before = pg.group_commit_stats();
            let mut s = append_scenario(&store, &template, writers, batch, duration, quiet).await?;
            let after = pg.group_commit_stats();
            let groups = (after.groups - before.groups).max(1);
            let per_commit = (after.appends - before.appends) as f64 / groups as f64;
            let predicted = 100 * (after.predicted - before.predicted) / groups;
            let ms = |a: u64, b: u64| (a - b) as f64 / groups as f64 / 1e3;
            s.name = format!(
                "{} ({per_commit:.1}/commit, {predicted}% pred., ms open/write/commit \
                 {:.1}/{:.1}/{:.1})",
                s.name,
                ms(after.open_us, before.open_us),
                ms(after.write_us, before.write_us),
                ms(after.commit_us, before.commit_us),
            );
            s.ratio_to_baseline = Some(s.events_per_s / raw.events_per_s.max(1e-9));
            scenarios.push(raw);
            scenarios.push(s);
        }
    }
    top_up_to(&store, &template, args.read_events, quiet).await?;
    pg.shutdown();
    drop((store, pg));

    let started = Instant::now();
    let pg = open(&config).await?;
    let store_open_ms = started.elapsed().as_secs_f64() * 1e3;
    let store: Arc<dyn EventStore> = pg.clone();
    let report = read_and_report(&store, args, store_open_ms, scenarios).await;
    pg.shutdown();
    report
}

/// The baseline for `writers` x `batch`: raw commits of `batch` rows of `data` each.
async fn raw_scenario(
    url: &str,
    writers: usize,
    batch: usize,
    data: &Bytes,
    duration: Duration,
    quiet: bool,
) -> anyhow::Result<Scenario> {
    let raw = Arc::new(RawInserts::create(url, writers).await?);
    let rows = Arc::new(vec![data.clone(); batch]);
    let name = format!("raw insert {writers} conn(s) x {batch}");
    let shared = raw.clone();
    let scenario = writers_scenario(name, writers, duration, quiet, move |w| {
        let (raw, rows) = (shared.clone(), rows.clone());
        async move {
            let refs: Vec<&[u8]> = rows.iter().map(|b| &b[..]).collect();
            raw.insert(w, &format!("bench-{w}"), &refs).await?;
            Ok(batch as u64)
        }
    })
    .await?;
    if let Some(raw) = Arc::into_inner(raw) {
        raw.finish().await?;
    }
    Ok(scenario)
}
