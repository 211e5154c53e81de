//! Consumer-group delivery with acks, against a same-run baseline: a plain `read_all`
//! catch-up of the same events from the same store.
//!
//! `cargo bench -p eventum-groups --bench groups_delivery` (env: `EVENTS`, `STREAMS`,
//! `CONSUMERS`, `BATCH`, `DIR` to choose the disk).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use eventum_core::{EventStore, ExpectedVersion, NewEvent, ReadDirection, StreamName};
use eventum_groups::{GroupService, GroupSettings, GroupTarget, GroupsConfig};
use eventum_log::{LogConfig, LogStore};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn prefill(store: &Arc<LogStore>, events: usize, streams: usize) {
    // Rounds of 10 events per stream, so that streams interleave in `$all`.
    const CHUNK: usize = 10;
    let rounds = events / (streams * CHUNK);
    let writers = 32;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..rounds {
                for s in (w..streams).step_by(writers) {
                    let stream = StreamName::new(format!("bench-{s}")).unwrap();
                    let batch: Vec<NewEvent> = (0..CHUNK)
                        .map(|i| {
                            NewEvent::from_json(
                                "Tick",
                                format!(r#"{{"round":{r},"i":{i},"pad":"0123456789abcdef0123456789abcdef"}}"#),
                            )
                            .unwrap()
                        })
                        .collect();
                    store.append(&stream, ExpectedVersion::Any, batch).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn baseline_read_all(store: &LogStore, events: usize) -> f64 {
    let t0 = Instant::now();
    let mut from = 0u64;
    let mut n = 0usize;
    loop {
        let page = store
            .read_all(Some(from), ReadDirection::Forward, 10_000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        n += page.iter().filter(|e| !e.stream.starts_with('$')).count();
        if page.len() < 10_000 {
            break;
        }
    }
    assert!(n >= events, "read {n} of {events}");
    n as f64 / t0.elapsed().as_secs_f64()
}

async fn group_run(
    store: Arc<LogStore>,
    name: &str,
    ordered: bool,
    events: usize,
    consumers: usize,
    batch: usize,
) -> (f64, u64) {
    let config = GroupsConfig {
        receive_events_max: batch.max(1_000),
        ack_tokens_max: batch.max(10_000),
        ..GroupsConfig::default()
    };
    let svc = GroupService::open(store.clone() as Arc<dyn EventStore>, config)
        .await
        .unwrap();
    let settings = GroupSettings {
        ordered,
        in_flight_max: 20_000,
        buffer_events_max: 100_000,
        ..GroupSettings::new(GroupTarget::Category("bench".into()))
    };
    let t0 = Instant::now();
    svc.create(name, settings).await.unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..consumers {
        let svc = svc.clone();
        let acked = acked.clone();
        let name = name.to_owned();
        tasks.push(tokio::spawn(async move {
            let consumer = format!("c{c}");
            while acked.load(Ordering::Relaxed) < events as u64 {
                let ds = svc.receive(&name, &consumer, batch, 50).await.unwrap();
                if ds.is_empty() {
                    continue;
                }
                let tokens: Vec<u64> = ds.iter().map(|d| d.token).collect();
                let r = svc.ack(&name, &tokens).await.unwrap();
                acked.fetch_add(r.acked as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = events as f64 / t0.elapsed().as_secs_f64();
    let checkpoint = svc.info(name).unwrap().checkpoint;
    svc.shutdown().await;
    (rate, checkpoint)
}

fn main() {
    let events = env_usize("EVENTS", 1_000_000);
    let streams = env_usize("STREAMS", 10_000);
    let consumers = env_usize("CONSUMERS", 4);
    let batch = env_usize("BATCH", 1_000);
    let base = std::env::var("DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let dir = tempfile::tempdir_in(base).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        let t0 = Instant::now();
        prefill(&store, events, streams).await;
        println!(
            "pre-filled {events} events over {streams} streams in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let base_rate = baseline_read_all(&store, events).await;
        let (ordered_rate, cp1) =
            group_run(store.clone(), "ordered", true, events, consumers, batch).await;
        let (unordered_rate, cp2) =
            group_run(store.clone(), "unordered", false, events, consumers, batch).await;
        println!();
        println!("| scenario | events/s | ratio to read_all |");
        println!("|---|---:|---:|");
        println!("| baseline: read_all catch-up (pages of 10,000) | {base_rate:.0} | 1.00 |");
        println!(
            "| group ordered, {consumers} consumers, receive+ack batches of {batch} | {ordered_rate:.0} | {:.2} |",
            ordered_rate / base_rate
        );
        println!(
            "| group unordered, {consumers} consumers, receive+ack batches of {batch} | {unordered_rate:.0} | {:.2} |",
            unordered_rate / base_rate
        );
        println!("(final checkpoints {cp1}, {cp2})");
        store.shutdown();
    });
}
