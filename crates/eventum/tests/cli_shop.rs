//! `eventum serve` runs the shop (demo catalog, admin from the data directory), on a
//! runtime of its own or on the server's, and `eventum shop load` drives it over HTTP
//! until every order is terminal.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn serve_runs_the_shop_and_shop_load_confirms_every_order() {
    let dir = tempfile::tempdir().unwrap();
    let fast_hashing = [
        "--shop-hash-memory-kib",
        "64",
        "--shop-hash-iterations",
        "1",
    ];
    let server = Server::start_with(dir.path(), "127.0.0.1:0", &fast_hashing);
    let data = dir.path().to_str().unwrap();
    let report = shop_load(&server, data, 60);
    assert_eq!(report["accepted"], 60, "{report}");
    assert_eq!(report["confirmed"], 60, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert!(report["accept_latency_us"]["p99"].as_u64().unwrap() > 0);
    assert!(report["time_to_terminal_us"]["p50"].as_u64().unwrap() > 0);
    // The flow runs on the shop's own runtime (two workers by default, and the threads of
    // its blocking pool, named alike).
    assert!(
        threads_named(server.child.id(), "eventum-shop-fl") >= 2,
        "the shop's flow runtime"
    );
    server.stop();

    // After a restart (the flow now on the server's runtime) the catalog is not seeded
    // again, the orders are still there, and new ones are confirmed too.
    let shared_runtime = [&fast_hashing[..], &["--shop-flow-threads", "0"]].concat();
    let server = Server::start_with(dir.path(), "127.0.0.1:0", &shared_runtime);
    assert_eq!(threads_named(server.child.id(), "eventum-shop-fl"), 0);
    let products: Value = reqwest::blocking_get(&format!("{}/api/products", server.url));
    let names: Vec<&str> = products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        5,
        "demo catalog (4) + the load product: {names:?}"
    );
    let orders = server.run(&["read", "--category", "order", "--limit", "1000"]);
    let lines = ok_lines(&orders);
    let confirmed = lines
        .iter()
        .filter(|e| e["type"] == "OrderConfirmed")
        .count();
    assert_eq!(
        confirmed, 60,
        "every order's confirmation survived the restart"
    );
    let report = shop_load(&server, data, 20);
    assert_eq!(report["confirmed"], 20, "{report}");
    server.stop();
}

/// `eventum shop load` of `orders` orders by 4 clients against `server`: its report.
fn shop_load(server: &Server, data: &str, orders: usize) -> Value {
    let orders = orders.to_string();
    let out = server.run(&[
        "shop",
        "load",
        "--orders",
        &orders,
        "--concurrency",
        "4",
        "--json",
        "--data",
        data,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).expect("one JSON object")
}

/// Threads of process `pid` whose name (as the kernel keeps it, 15 bytes) is `name`.
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

mod reqwest {
    /// A GET with a throwaway runtime (the test itself is synchronous).
    pub fn blocking_get(url: &str) -> serde_json::Value {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { ::reqwest::get(url).await.unwrap().json().await.unwrap() })
    }
}
