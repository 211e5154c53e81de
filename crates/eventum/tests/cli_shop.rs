//! `eventum serve` runs the shop (demo catalog, admin from the data directory), and
//! `eventum shop load` drives it over HTTP until every order is terminal.

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
    let out = server.run(&[
        "shop",
        "load",
        "--orders",
        "60",
        "--concurrency",
        "4",
        "--json",
        "--data",
        data,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(report["accepted"], 60, "{report}");
    assert_eq!(report["confirmed"], 60, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert!(report["accept_latency_us"]["p99"].as_u64().unwrap() > 0);
    assert!(report["time_to_terminal_us"]["p50"].as_u64().unwrap() > 0);
    server.stop();

    // After a restart the catalog is not seeded again and the orders are still there.
    let server = Server::start_with(dir.path(), "127.0.0.1:0", &fast_hashing);
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
    server.stop();
}

mod reqwest {
    /// A GET with a throwaway runtime (the test itself is synchronous).
    pub fn blocking_get(url: &str) -> serde_json::Value {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { ::reqwest::get(url).await.unwrap().json().await.unwrap() })
    }
}
