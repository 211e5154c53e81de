//! The three scenarios of seed 004 (and the amount limit), each in both flow styles,
//! against the real `LogStore`: the same assertions must hold whether a saga
//! orchestrates or the services react to each other.

mod common;

use std::time::Duration;

use common::*;
use eventum_shop::FlowStyle;
use eventum_shop::audit::audit;

const WAIT: Duration = Duration::from_secs(20);

async fn normal_order_is_confirmed(flow: FlowStyle) {
    let dir = tempfile::tempdir().unwrap();
    let (log, running) = start(dir.path(), config(dir.path(), flow)).await;
    let shop = running.shop.clone();
    let product = shop
        .create_product("Keyboard".into(), String::new(), 89_000, 10)
        .await
        .unwrap();
    let id = shop
        .place_order(&user("alice"), order(product, 2, "CREDIT_CARD"), None)
        .await
        .unwrap();
    let doc = wait_terminal(&shop, &id, WAIT).await;
    assert_eq!(doc["status"], "CONFIRMED", "{doc}");
    assert_eq!(doc["totalAmount"], 178_000);
    wait_settled(&shop, WAIT).await;
    let p = shop.product(product).await.unwrap();
    assert_eq!(
        (p["stock"].as_i64(), p["reserved"].as_i64()),
        (Some(8), Some(0))
    );
    assert_eq!(
        types_of(log.as_ref(), &format!("order-{id}")).await,
        ["OrderCreated", "OrderConfirmed"]
    );
    assert_eq!(
        types_of(log.as_ref(), &format!("reservation-{id}")).await,
        ["StockReserved"]
    );
    assert_eq!(
        types_of(log.as_ref(), &format!("payment-{id}")).await,
        ["PaymentCompleted"]
    );
    assert_eq!(
        types_of(log.as_ref(), &format!("notification-{id}")).await,
        ["NotificationCreated"]
    );
    let report = audit(log.as_ref()).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    running.shutdown().await;
    log.shutdown();
}

async fn order_beyond_stock_is_cancelled(flow: FlowStyle) {
    let dir = tempfile::tempdir().unwrap();
    let (log, running) = start(dir.path(), config(dir.path(), flow)).await;
    let shop = running.shop.clone();
    let product = shop
        .create_product("Monitor".into(), String::new(), 300_000, 10)
        .await
        .unwrap();
    let id = shop
        .place_order(&user("bob"), order(product, 999, "CREDIT_CARD"), None)
        .await
        .unwrap();
    let doc = wait_terminal(&shop, &id, WAIT).await;
    assert_eq!(doc["status"], "CANCELLED", "{doc}");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap()
            .contains("insufficient stock"),
        "{doc}"
    );
    wait_settled(&shop, WAIT).await;
    assert_eq!(
        shop.product(product).await.unwrap()["stock"],
        10,
        "stock untouched"
    );
    assert_eq!(
        types_of(log.as_ref(), &format!("reservation-{id}")).await,
        ["StockReservationFailed"]
    );
    assert!(
        types_of(log.as_ref(), &format!("payment-{id}"))
            .await
            .is_empty(),
        "no payment attempted"
    );
    assert_eq!(
        types_of(log.as_ref(), &format!("order-{id}")).await,
        ["OrderCreated", "OrderCancelled"]
    );
    let n = shop.notifications(&user("bob"), 10).unwrap();
    // The read model follows the log; the notification stream itself is checked above.
    assert!(n.len() <= 1);
    assert_eq!(
        types_of(log.as_ref(), &format!("notification-{id}")).await,
        ["NotificationCreated"]
    );
    let report = audit(log.as_ref()).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    running.shutdown().await;
    log.shutdown();
}

async fn declined_payment_releases_stock_and_cancels(flow: FlowStyle, method: &str, quantity: i64) {
    let dir = tempfile::tempdir().unwrap();
    let (log, running) = start(dir.path(), config(dir.path(), flow)).await;
    let shop = running.shop.clone();
    let product = shop
        .create_product("Hub".into(), String::new(), 39_000, 500)
        .await
        .unwrap();
    let id = shop
        .place_order(&user("carol"), order(product, quantity, method), None)
        .await
        .unwrap();
    let doc = wait_terminal(&shop, &id, WAIT).await;
    assert_eq!(doc["status"], "CANCELLED", "{doc}");
    assert!(
        doc["reason"].as_str().unwrap().contains("payment declined"),
        "{doc}"
    );
    wait_settled(&shop, WAIT).await;
    assert_eq!(
        shop.product(product).await.unwrap()["stock"],
        500,
        "stock released"
    );
    wait_types(
        log.as_ref(),
        &format!("reservation-{id}"),
        &["StockReserved", "StockReleased"],
        WAIT,
    )
    .await;
    assert_eq!(
        types_of(log.as_ref(), &format!("payment-{id}")).await,
        ["PaymentFailed"]
    );
    assert_eq!(
        types_of(log.as_ref(), &format!("notification-{id}")).await,
        ["NotificationCreated"]
    );
    let report = audit(log.as_ref()).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(
        (report.confirmed, report.cancelled, report.pending),
        (0, 1, 0)
    );
    running.shutdown().await;
    log.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrated_normal_order_is_confirmed() {
    normal_order_is_confirmed(FlowStyle::Orchestrated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreography_normal_order_is_confirmed() {
    normal_order_is_confirmed(FlowStyle::Choreography).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrated_order_beyond_stock_is_cancelled() {
    order_beyond_stock_is_cancelled(FlowStyle::Orchestrated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreography_order_beyond_stock_is_cancelled() {
    order_beyond_stock_is_cancelled(FlowStyle::Choreography).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrated_declined_card_releases_stock_and_cancels() {
    declined_payment_releases_stock_and_cancels(FlowStyle::Orchestrated, "DECLINED_CARD", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreography_declined_card_releases_stock_and_cancels() {
    declined_payment_releases_stock_and_cancels(FlowStyle::Choreography, "DECLINED_CARD", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrated_amount_over_the_limit_is_declined() {
    // 200 × 39,000 = 7,800,000 > the configured 5,000,000.
    declined_payment_releases_stock_and_cancels(FlowStyle::Orchestrated, "CREDIT_CARD", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreography_amount_over_the_limit_is_declined() {
    declined_payment_releases_stock_and_cancels(FlowStyle::Choreography, "CREDIT_CARD", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_orders_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, running) = start(dir.path(), config(dir.path(), FlowStyle::Orchestrated)).await;
    let shop = running.shop.clone();
    let product = shop
        .create_product("Mouse".into(), String::new(), 25_000, 5)
        .await
        .unwrap();
    let head = eventum_core::EventStore::head_position(log.as_ref());
    let cases = [
        (order(999, 1, "CREDIT_CARD"), "product 999 does not exist"),
        (order(product, 0, "CREDIT_CARD"), "quantity must be 1"),
        (order(product, -3, "CREDIT_CARD"), "quantity must be 1"),
        (
            eventum_shop::OrderRequest {
                order_items: vec![],
                ..order(product, 1, "CREDIT_CARD")
            },
            "must not be empty",
        ),
        (
            eventum_shop::OrderRequest {
                order_items: (0..101)
                    .map(|_| eventum_shop::OrderItemRequest {
                        product_id: product,
                        quantity: 1,
                    })
                    .collect(),
                ..order(product, 1, "CREDIT_CARD")
            },
            "limit is 100",
        ),
        (
            eventum_shop::OrderRequest {
                shipping_address: None,
                ..order(product, 1, "CREDIT_CARD")
            },
            "shippingAddress is required",
        ),
        (
            eventum_shop::OrderRequest {
                shipping_address: Some("  ".into()),
                ..order(product, 1, "CREDIT_CARD")
            },
            "shippingAddress is required",
        ),
        (
            eventum_shop::OrderRequest {
                payment_method: None,
                ..order(product, 1, "CREDIT_CARD")
            },
            "paymentMethod is required",
        ),
    ];
    for (request, expected) in cases {
        let e = shop
            .place_order(&user("dave"), request, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), eventum_core::ErrorCode::InvalidInput, "{e}");
        assert!(
            e.to_string().contains(expected),
            "{e} should say {expected}"
        );
    }
    assert_eq!(
        eventum_core::EventStore::head_position(log.as_ref()),
        head,
        "nothing was written"
    );
    running.shutdown().await;
    log.shutdown();
}
