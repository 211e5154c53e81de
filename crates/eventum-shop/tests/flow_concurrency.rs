//! 1,000 orders of one unit for one product with stock 100, from 50 concurrent clients,
//! in both flow styles: exactly 100 CONFIRMED, 900 CANCELLED, stock 0, and every
//! invariant holds (checked over the whole log).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use eventum_shop::FlowStyle;
use eventum_shop::audit::audit;

const ORDERS: usize = 1_000;
const CLIENTS: usize = 50;

async fn oversold_product(flow: FlowStyle) {
    let dir = tempfile::tempdir().unwrap();
    let (log, running) = start(dir.path(), config(dir.path(), flow)).await;
    let shop = running.shop.clone();
    let product = shop
        .create_product("Limited".into(), String::new(), 10_000, 100)
        .await
        .unwrap();
    let ids = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let shop = shop.clone();
        let ids = ids.clone();
        clients.push(tokio::spawn(async move {
            let caller = user(&format!("client-{c}"));
            for _ in 0..ORDERS / CLIENTS {
                let id = shop
                    .place_order(&caller, order(product, 1, "CREDIT_CARD"), None)
                    .await
                    .expect("order accepted");
                ids.lock().await.push((caller.username.clone(), id));
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let ids = ids.lock().await.clone();
    assert_eq!(ids.len(), ORDERS);
    let (mut confirmed, mut cancelled) = (0, 0);
    for (_, id) in &ids {
        match wait_terminal(&shop, id, Duration::from_secs(120)).await["status"].as_str() {
            Some("CONFIRMED") => confirmed += 1,
            Some("CANCELLED") => cancelled += 1,
            other => panic!("unexpected status {other:?}"),
        }
    }
    assert_eq!((confirmed, cancelled), (100, 900));
    wait_settled(&shop, Duration::from_secs(60)).await;
    let p = shop.product(product).await.unwrap();
    assert_eq!(
        (p["stock"].as_i64(), p["reserved"].as_i64()),
        (Some(0), Some(0))
    );
    let report = audit(log.as_ref()).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(
        (
            report.orders,
            report.confirmed,
            report.cancelled,
            report.pending
        ),
        (ORDERS, 100, 900, 0)
    );
    assert_eq!(report.stock.get(&product), Some(&0));
    running.shutdown().await;
    log.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrated_thousand_orders_for_stock_of_hundred() {
    oversold_product(FlowStyle::Orchestrated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreography_thousand_orders_for_stock_of_hundred() {
    oversold_product(FlowStyle::Choreography).await;
}
