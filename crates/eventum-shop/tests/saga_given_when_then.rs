//! The order saga's decisions with the saga harness (no store): the happy path, each
//! failure's compensations, and a refund when confirming fails after the capture.

use eventum_sagas::Status;
use eventum_sagas::testing::{SagaTest, event};
use eventum_shop::partition::Partition;
use eventum_shop::saga::OrderSaga;
use serde_json::json;

const ORDER: &str = "0193a000-0000-7000-8000-000000000001";

fn saga() -> OrderSaga {
    OrderSaga::new(Partition { index: 0, count: 1 })
}

fn created() -> eventum_core::RecordedEvent {
    event(
        &format!("order-{ORDER}"),
        "OrderCreated",
        json!({"orderId": ORDER, "userId": "alice", "orderItems": [{"productId": 1, "quantity": 2, "unitPrice": 10}],
               "shippingAddress": "Seoul", "paymentMethod": "CREDIT_CARD", "totalAmount": 20, "createdAt": "x"}),
    )
}

fn ev(stream: &str, kind: &str, extra: serde_json::Value) -> eventum_core::RecordedEvent {
    let mut data = json!({"orderId": ORDER, "userId": "alice"});
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    event(&format!("{stream}-{ORDER}"), kind, data)
}

#[test]
fn happy_path_reserves_pays_confirms_then_commits() {
    SagaTest::new(saga())
        .when(created())
        .then_command_types(["ReserveStock"])
        .and()
        .when(ev(
            "reservation",
            "StockReserved",
            json!({"totalAmount": 20, "paymentMethod": "CREDIT_CARD"}),
        ))
        .then_command_types(["CapturePayment"])
        .and()
        .when(ev(
            "payment",
            "PaymentCompleted",
            json!({"transactionId": "tx"}),
        ))
        .then_command_types(["ConfirmOrder"])
        .and()
        .when(ev("order", "OrderConfirmed", json!({})))
        .then_command_types(["CommitStock"])
        .then_status(Status::Completed);
}

#[test]
fn reservation_failure_cancels_without_compensation() {
    SagaTest::new(saga())
        .when(created())
        .and()
        .when(ev(
            "reservation",
            "StockReservationFailed",
            json!({"reason": "insufficient stock"}),
        ))
        .then_command_types(["CancelOrder"])
        .and()
        .when(ev(
            "order",
            "OrderCancelled",
            json!({"reason": "insufficient stock"}),
        ))
        .then_command_types([])
        .then_status(Status::Compensated);
}

#[test]
fn payment_failure_releases_stock_then_cancels() {
    SagaTest::new(saga())
        .when(created())
        .and()
        .when(ev("reservation", "StockReserved", json!({})))
        .and()
        .when(ev(
            "payment",
            "PaymentFailed",
            json!({"reason": "card declined"}),
        ))
        .then_command_types(["ReleaseStock"])
        .then_status(Status::Compensating)
        .and()
        .when(ev("reservation", "StockReleased", json!({})))
        .then_command_types(["CancelOrder"])
        .and()
        .when(ev(
            "order",
            "OrderCancelled",
            json!({"reason": "card declined"}),
        ))
        .then_status(Status::Compensated);
}

#[test]
fn confirmation_refused_after_capture_refunds_releases_and_cancels() {
    SagaTest::new(saga())
        .when(created())
        .and()
        .when(ev("reservation", "StockReserved", json!({})))
        .and()
        .when(ev("payment", "PaymentCompleted", json!({})))
        .and()
        .when_rejected(ORDER, "ConfirmOrder", "order_terminal")
        .then_command_types(["RefundPayment"])
        .and()
        .when(ev("payment", "PaymentRefunded", json!({})))
        .then_command_types(["ReleaseStock"])
        .and()
        .when(ev("reservation", "StockReleased", json!({})))
        .then_command_types(["CancelOrder"]);
}

#[test]
fn events_of_other_partitions_are_not_routed() {
    let parts: Vec<_> = Partition::all(4).map(OrderSaga::new).collect();
    let owners = parts
        .iter()
        .filter(|s| eventum_sagas::Saga::correlate(*s, &created()).is_some())
        .count();
    assert_eq!(owners, 1);
}
