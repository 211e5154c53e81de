//! The shop end to end, in process, on the embedded store: orders are placed from
//! concurrent clients (validation, pricing, the `PlaceOrder` command) and followed until
//! each is CONFIRMED (saga or choreography). Same-run baseline: raw single-event
//! `LogStore` appends from as many concurrent writers, in the same directory; the ratio
//! is confirmed orders/s over baseline appends/s (an order costs about a dozen appends).
//!
//! Run: `cargo bench -p eventum-shop --bench shop_flow` (env `SHOP_BENCH_ORDERS`, default
//! 10,000; `SHOP_BENCH_CLIENTS`, default 64; `SHOP_BENCH_PARTITIONS`, default 1;
//! `SHOP_BENCH_IN_FLIGHT`, orders the flow runs at once, default 256;
//! `SHOP_BENCH_CACHED`, saga instances kept in memory, default the shop's 16,384;
//! `SHOP_BENCH_TYPES` set: count the events written by type; `SHOP_BENCH_DIR`, where the
//! stores go, default the working directory).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, StreamName, SubscriptionFrom, SubscriptionTarget,
};
use eventum_log::{LogConfig, LogStore};
use eventum_shop::auth::Caller;
use eventum_shop::{
    FlowStyle, HashingConfig, OrderItemRequest, OrderRequest, RunningShop, ShopConfig,
};
use futures::StreamExt;
use hdrhistogram::Histogram;

/// The allocator `eventum` itself runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")
}

struct Row {
    name: String,
    per_s: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    extra: String,
}

async fn baseline(dir: &std::path::Path, writers: usize, appends: usize) -> Row {
    let log = LogStore::open(dir.join("raw"), LogConfig::default()).expect("store");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            let stream = StreamName::new(format!("raw-{w}")).unwrap();
            for _ in 0..appends / writers {
                let event = NewEvent::new(
                    "Raw",
                    &serde_json::json!({"orderId": "0193a000-0000-7000-8000-000000000001", "n": 1}),
                )
                .unwrap();
                let t = Instant::now();
                log.append(&stream, ExpectedVersion::Any, vec![event])
                    .await
                    .unwrap();
                h.record(t.elapsed().as_micros() as u64).unwrap();
            }
            h
        }));
    }
    let mut h = hist();
    for t in tasks {
        h.add(t.await.unwrap()).unwrap();
    }
    let per_s = h.len() as f64 / started.elapsed().as_secs_f64();
    log.shutdown();
    Row {
        name: format!("baseline: raw appends, {writers} writers x 1 event"),
        per_s,
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        extra: "latency = append".into(),
    }
}

async fn shop(
    dir: &std::path::Path,
    flow: FlowStyle,
    orders: usize,
    clients: usize,
    partitions: u32,
) -> Row {
    let log = LogStore::open(dir.join(format!("{flow:?}")), LogConfig::default()).expect("store");
    let store: Arc<dyn EventStore> = log.clone();
    let mut config = ShopConfig::new(
        dir.join(format!("{flow:?}-rm")),
        vec![1u8; 32],
        "admin-password",
    );
    config.hashing = HashingConfig::fast_insecure();
    config.demo_catalog = false;
    config.flow = flow;
    config.flow_partitions = partitions;
    config.flow_orders_in_flight_max = env("SHOP_BENCH_IN_FLIGHT", 256);
    config.flow_instances_cached_max = env("SHOP_BENCH_CACHED", config.flow_instances_cached_max);
    let running = RunningShop::start(store.clone(), config)
        .await
        .expect("shop");
    let shop = running.shop.clone();
    let product = shop
        .create_product("Bench".into(), String::new(), 1000, orders as i64)
        .await
        .unwrap();
    // Terminal events, with the time they were seen.
    let from = store.head_position().map_or(0, |p| p + 1);
    let mut sub = store.subscribe(
        SubscriptionTarget::Category("order".into()),
        SubscriptionFrom::Position(from),
    );
    let watcher = tokio::spawn(async move {
        let mut seen: HashMap<String, (Instant, bool)> = HashMap::new();
        while let Some(Ok(e)) = sub.next().await {
            let ok = match e.event_type.as_str() {
                "OrderConfirmed" => true,
                "OrderCancelled" => false,
                _ => continue,
            };
            seen.insert(
                e.stream.trim_start_matches("order-").to_owned(),
                (Instant::now(), ok),
            );
            if seen.len() == orders {
                break;
            }
        }
        seen
    });
    let started = Instant::now();
    let cpu_started = cpu_ticks();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let shop = shop.clone();
        tasks.push(tokio::spawn(async move {
            let caller = Caller {
                username: format!("bench-{c}"),
                role: "USER".into(),
            };
            let mut placed = Vec::new();
            for _ in 0..orders / clients {
                let request = OrderRequest {
                    order_items: vec![OrderItemRequest {
                        product_id: product,
                        quantity: 1,
                    }],
                    shipping_address: Some("Seoul".into()),
                    payment_method: Some("CREDIT_CARD".into()),
                };
                let t = Instant::now();
                let id = shop.place_order(&caller, request, None).await.unwrap();
                placed.push((id, t, t.elapsed()));
            }
            placed
        }));
    }
    let mut placed = Vec::new();
    for t in tasks {
        placed.extend(t.await.unwrap());
    }
    let accepted_s = started.elapsed().as_secs_f64();
    eprintln!("  {} orders accepted in {accepted_s:.2} s", placed.len());
    let seen = tokio::time::timeout(Duration::from_secs(600), watcher)
        .await
        .expect("all terminal")
        .unwrap();
    let per_order = |a: u64, b: u64| (b - a) as f64 * 10_000.0 / placed.len() as f64;
    let cpu_us_per_order =
        cpu_started
            .zip(cpu_ticks())
            .map(|((user_a, sys_a), (user_b, sys_b))| {
                (per_order(user_a, user_b), per_order(sys_a, sys_b))
            });
    let mut ttt = hist();
    let mut accept = hist();
    let mut last = started;
    let mut confirmed = 0;
    for (id, t, a) in &placed {
        accept.record(a.as_micros().max(1) as u64).unwrap();
        let (at, ok) = seen[id];
        ttt.record(at.duration_since(*t).as_micros().max(1) as u64)
            .unwrap();
        last = last.max(at);
        confirmed += usize::from(ok);
    }
    let per_s = confirmed as f64 / last.duration_since(started).as_secs_f64();
    let events = store.head_position().unwrap_or(0) - from;
    if std::env::var_os("SHOP_BENCH_TYPES").is_some() {
        eprintln!(
            "  events by type: {:?}",
            count_types(store.as_ref(), from).await
        );
    }
    running.shutdown().await;
    log.shutdown();
    Row {
        name: format!("shop {flow:?}, {clients} clients, {partitions} partitions"),
        per_s,
        p50_us: ttt.value_at_quantile(0.5),
        p99_us: ttt.value_at_quantile(0.99),
        p999_us: ttt.value_at_quantile(0.999),
        extra: format!(
            "confirmed {confirmed}/{}; accepted {:.0}/s (accept p99 {} µs); {:.1} events/order; \
             CPU {} µs/order (user + system)",
            placed.len(),
            placed.len() as f64 / accepted_s,
            accept.value_at_quantile(0.99),
            events as f64 / placed.len() as f64,
            cpu_us_per_order.map_or("?".into(), |(user, sys)| format!("{user:.0} + {sys:.0}")),
        ),
    }
}

/// The CPU time this process has used, user and system, in Linux clock ticks (10 ms);
/// `None` where `/proc` is missing. Why: throughput swings ±20% between identical runs
/// on these machines, and the CPU spent per order says whether the work or the
/// scheduling changed.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) : utime and stime are the
    // 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// Events written from `from` on, by type (the diagnosis of an order's cost).
async fn count_types(store: &dyn EventStore, from: u64) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut next = from;
    loop {
        let page = store
            .read_all(Some(next), eventum_core::ReadDirection::Forward, 10_000)
            .await
            .expect("read");
        for e in &page {
            let kind = if e.stream.starts_with('$') {
                format!(
                    "{} in {}",
                    e.event_type,
                    e.stream.split('-').next().unwrap_or("")
                )
            } else {
                e.event_type.clone()
            };
            *counts.entry(kind).or_default() += 1;
        }
        match page.last() {
            Some(last) if page.len() == 10_000 => next = last.position + 1,
            _ => break,
        }
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
}

#[tokio::main]
async fn main() {
    let clients = env("SHOP_BENCH_CLIENTS", 64).max(1);
    // Every client places the same number.
    let orders = (env("SHOP_BENCH_ORDERS", 10_000) / clients).max(1) * clients;
    let partitions = env("SHOP_BENCH_PARTITIONS", 1) as u32;
    let dir = tempfile::tempdir_in(std::env::var("SHOP_BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("tempdir");
    eprintln!("baseline…");
    let base = baseline(dir.path(), clients, 20_000).await;
    let mut rows = vec![];
    for flow in [FlowStyle::Orchestrated, FlowStyle::Choreography] {
        eprintln!("{flow:?}…");
        rows.push(shop(dir.path(), flow, orders, clients, partitions).await);
    }
    println!(
        "{:<52} {:>12} {:>10} {:>10} {:>10} {:>8}",
        "scenario", "per s", "p50 µs", "p99 µs", "p999 µs", "ratio"
    );
    println!(
        "{:<52} {:>12.0} {:>10} {:>10} {:>10} {:>8}",
        base.name, base.per_s, base.p50_us, base.p99_us, base.p999_us, "1.00"
    );
    for r in rows {
        println!(
            "{:<52} {:>12.0} {:>10} {:>10} {:>10} {:>8.3}   {}",
            r.name,
            r.per_s,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.per_s / base.per_s,
            r.extra
        );
    }
    println!(
        "(shop rows: per s = confirmed orders/s end to end; latency = place → terminal state seen)"
    );
}
