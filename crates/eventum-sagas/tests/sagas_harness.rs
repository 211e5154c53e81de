//! The shipped given/when/then harness (`eventum_sagas::testing`) on the order
//! orchestrator: pure, no store.

mod common;

use common::order_saga;
use eventum_core::Causation;
use eventum_sagas::Status;
use eventum_sagas::testing::{SagaTest, event, given};
use serde_json::json;

fn placed(order: &str) -> eventum_core::RecordedEvent {
    event(
        &format!("orders-{order}"),
        "OrderPlaced",
        json!({"order_id": order}),
    )
}

fn answer(order: &str, event_type: &str) -> eventum_core::RecordedEvent {
    event(
        &format!("orders-x-{order}"),
        event_type,
        json!({"order_id": order}),
    )
}

#[test]
fn an_order_starts_with_the_payment_and_its_timeout() {
    let e = placed("h1");
    let outcome = SagaTest::new(order_saga(Some(30_000)))
        .at(1_000)
        .when(e.clone())
        .then_commands([("ProcessPayment", json!({"order_id": "h1", "attempt": 0}))])
        .then_status(Status::Running)
        .then_deadlines([("timeout", 31_000)]);
    let command = &outcome.commands()[0];
    assert_eq!(
        Causation {
            correlation_id: command.correlation_id,
            causation_id: command.causation_id
        },
        Causation::caused_by_event(&e)
    );
    // Ids derive from the instance stream and step: the same decision gives the same id.
    let again = SagaTest::new(order_saga(Some(30_000))).at(1_000).when(e);
    assert_eq!(again.commands()[0].command_id, command.command_id);
}

#[test]
fn each_confirmation_moves_to_the_next_step_and_the_last_completes() {
    given(order_saga(None), [placed("h2")])
        .when(answer("h2", "PaymentProcessed"))
        .then_command_types(["ReserveStock"])
        .and()
        .when(answer("h2", "StockReserved"))
        .then_command_types(["ScheduleShipment"])
        .and()
        .when(answer("h2", "ShipmentScheduled"))
        .then_command_types([])
        .then_status(Status::Completed);
}

#[test]
fn a_failure_compensates_completed_steps_latest_first() {
    given(
        order_saga(None),
        [
            placed("h3"),
            answer("h3", "PaymentProcessed"),
            answer("h3", "StockReserved"),
        ],
    )
    .when(answer("h3", "ShipmentFailed"))
    .then_commands([("ReleaseStock", json!({"order_id": "h3", "attempt": 0}))])
    .then_status(Status::Compensating)
    .and()
    .when(answer("h3", "StockReleased"))
    .then_command_types(["RefundPayment"])
    .and()
    .when(answer("h3", "PaymentRefunded"))
    .then_status(Status::Compensated);
}

#[test]
fn a_timeout_fails_the_step_and_a_rejected_compensation_is_retried_then_fails() {
    let saga = order_saga(Some(5_000)); // 2 compensation retries
    given(saga, [placed("h4"), answer("h4", "PaymentProcessed")])
        .when_deadline("h4", "timeout")
        .then_command_types(["RefundPayment"])
        .then_status(Status::Compensating)
        // Fired at 5 000 (the stock step's timeout), the refund gets its own.
        .then_deadlines([("timeout", 10_000)])
        .and()
        .when_rejected("h4", "RefundPayment", "bank_down")
        .then_commands([("RefundPayment", json!({"order_id": "h4", "attempt": 1}))])
        .and()
        .when_rejected("h4", "RefundPayment", "bank_down")
        .then_command_types(["RefundPayment"])
        .and()
        .when_rejected("h4", "RefundPayment", "bank_down")
        .then_command_types([])
        .then_status(Status::Failed)
        .then_deadlines([]);
}

#[test]
fn the_same_event_twice_is_handled_once_and_unrelated_events_are_ignored() {
    let e = placed("h5");
    given(order_saga(None), [e.clone()])
        .when(e)
        .then_ignored()
        .and()
        // A confirmation for an order that never started starts nothing.
        .when(answer("nobody", "PaymentProcessed"))
        .then_ignored();
}
