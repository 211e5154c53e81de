//! Crash test with real processes: this test binary re-executes itself as a child that
//! runs the shop (store, flow, HTTP API) on a data directory; the parent places orders
//! over HTTP from several clients and SIGKILLs the child at a random moment, then starts
//! the next child on the same directory, for several cycles. At the end the shop is
//! started once more and must bring every order to a terminal state: every acknowledged
//! (202) order exists, none stays PENDING, and the whole-log invariants hold (stock never
//! negative, one terminal state per order, no captured payment for a cancelled order, one
//! notification per terminal state). `SHOP_CRASH_CYCLES` sets the cycles (default 12),
//! `SHOP_CRASH_SEED` replays the kill times of an earlier run.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use eventum_shop::FlowStyle;
use serde_json::{Value, json};

const CHILD_ENV: &str = "SHOP_CRASH_CHILD";
const FLOW_ENV: &str = "SHOP_CRASH_FLOW";
const CHILD_TEST: &str = "shop_crash_child";
const CLIENTS: usize = 4;

fn flow_of(name: &str) -> FlowStyle {
    name.parse().expect("a flow style")
}

/// The child: the shop on `SHOP_CRASH_CHILD`, serving HTTP on a free port, which it
/// prints as `READY <addr>`. Ignored in a normal run; the parent runs it with `--ignored`.
#[test]
#[ignore = "child process of the shop crash tests"]
fn shop_crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let flow = flow_of(&std::env::var(FLOW_ENV).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = Path::new(&dir);
        let (_log, running) = start(dir, config(dir, flow)).await;
        if running.shop.catalog().is_empty() {
            running
                .shop
                .create_product("Crash".into(), String::new(), 1000, 150)
                .await
                .unwrap();
        }
        let app = eventum_shop::http::router(running.shop.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "READY {addr}").unwrap();
            out.flush().unwrap();
        }
        eventum_server::serve_app(listener, app, std::future::pending())
            .await
            .unwrap();
    });
}

/// A deterministic generator (splitmix64), so that kill times replay from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// Places orders until the server goes away; returns the acknowledged order ids.
async fn place_until_gone(base: String, token: String, client: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut acked = Vec::new();
    for i in 0usize.. {
        // Mostly good orders; some declined cards, some beyond the stock.
        let (quantity, method) = match (client + i) % 10 {
            0 => (1, "DECLINED_CARD"),
            1 => (500, "CREDIT_CARD"),
            _ => (1, "CREDIT_CARD"),
        };
        let body = json!({"orderItems": [{"productId": 1, "quantity": quantity}], "shippingAddress": "Seoul", "paymentMethod": method});
        match http
            .post(format!("{base}/api/orders"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                if let Ok(v) = r.json::<Value>().await {
                    acked.push(v["orderId"].as_str().unwrap().to_owned());
                }
            }
            Ok(r) => panic!(
                "order refused: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => return acked,
        }
    }
    acked
}

fn crash_cycles(flow: &str) {
    let cycles: u64 = std::env::var("SHOP_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("SHOP_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("shop crash test ({flow}): {cycles} cycles, SHOP_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut token = None;
    for cycle in 0..cycles {
        let stderr_path = dir.path().join(format!("child-{cycle}.stderr"));
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                CHILD_TEST,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(FLOW_ENV, flow)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("start the child");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                // libtest may print `test shop_crash_child ... ` before it on the line.
                Ok(line) if line.contains("READY ") => {
                    break line.split("READY ").nth(1).unwrap().trim().to_owned();
                }
                Ok(_) => continue,
                Err(_) => panic!(
                    "cycle {cycle} (seed {seed}): no READY line; stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ),
            }
        };
        let base = format!("http://{addr}");
        let kill_after = Duration::from_millis(100 + rng.below(500));
        let placed = runtime.block_on(async {
            if token.is_none() {
                let http = reqwest::Client::new();
                let r = http
                    .post(format!("{base}/api/auth/register"))
                    .json(&json!({"username": "crash", "password": "crash-password"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), reqwest::StatusCode::CREATED);
                let r: Value = http
                    .post(format!("{base}/api/auth/login"))
                    .json(&json!({"username": "crash", "password": "crash-password"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                token = Some(r["token"].as_str().unwrap().to_owned());
            }
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| tokio::spawn(place_until_gone(base.clone(), token.clone().unwrap(), c)))
                .collect();
            tokio::time::sleep(kill_after).await;
            child.kill().expect("SIGKILL the child");
            let mut placed = 0;
            for c in clients {
                let ids = c.await.unwrap();
                placed += ids.len();
                acked.lock().unwrap().extend(ids);
            }
            placed
        });
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "cycle {cycle}: the child was not killed ({status})"
        );
        eprintln!("cycle {cycle}: killed after {kill_after:?}, {placed} orders acknowledged");
    }
    // Recovery: the shop once more, until every order is terminal.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > cycles as usize,
        "the run placed too few orders to test anything"
    );
    runtime.block_on(async {
        let (log, running) = start(dir.path(), config(dir.path(), flow_of(flow))).await;
        let shop = running.shop.clone();
        let started = Instant::now();
        for id in &acked {
            let doc = wait_terminal(&shop, id, Duration::from_secs(120)).await;
            assert!(doc["status"] == "CONFIRMED" || doc["status"] == "CANCELLED", "{doc}");
        }
        wait_settled(&shop, Duration::from_secs(60)).await;
        let report = eventum_shop::audit::audit(log.as_ref()).await.unwrap();
        eprintln!(
            "recovered in {:?}: {} orders ({} acknowledged), {} confirmed, {} cancelled, stock {:?}",
            started.elapsed(), report.orders, acked.len(), report.confirmed, report.cancelled, report.stock
        );
        assert!(report.violations.is_empty(), "seed {seed}: {:?}", report.violations);
        assert_eq!(report.pending, 0, "seed {seed}: orders left PENDING");
        assert!(report.orders >= acked.len());
        assert!(report.confirmed > 0 && report.cancelled > 0);
        let stock = report.stock[&1];
        assert!(stock >= 0);
        assert_eq!(stock + report.confirmed as i64, 150, "stock taken = confirmed units (quantity 1 each)");
        running.shutdown().await;
        log.shutdown();
    });
}

#[test]
fn orchestrated_shop_survives_sigkill_with_every_order_terminal() {
    crash_cycles("orchestrated");
}

#[test]
fn choreographed_shop_survives_sigkill_with_every_order_terminal() {
    crash_cycles("choreography");
}
