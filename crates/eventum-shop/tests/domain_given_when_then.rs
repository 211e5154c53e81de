//! Given/when/then tests of every aggregate of the shop: pure decide/evolve, no store.

use eventum_runtime::Command;
use eventum_runtime::testing::{given, given_no_history};
use eventum_shop::notifications::{
    KIND_ORDER_CANCELLED, KIND_ORDER_CONFIRMED, Notification, NotificationCommand as NC,
    NotificationEvent as NE,
};
use eventum_shop::orders::{Order, OrderCommand as OC, OrderEvent as OE, OrderLine, OrderStatus};
use eventum_shop::payments::{Payment, PaymentCommand as PC, PaymentEvent as PE, Verdict};
use eventum_shop::products::{Product, ProductCommand as C, ProductEvent as E};
use eventum_shop::reservations::{Reservation, ReservationCommand as RC, ReservationEvent as RE};
use eventum_shop::users::{User, UserCommand as UC, UserEvent as UE};

fn created(stock: i64) -> E {
    E::ProductCreated {
        product_id: 1,
        name: "Keyboard".into(),
        description: String::new(),
        price: 1000,
        stock,
    }
}

fn reserve(order: &str, quantity: i64) -> C {
    C::ReserveProductStock {
        product_id: 1,
        order_id: order.into(),
        quantity,
    }
}

#[test]
fn product_reserves_within_stock_and_refuses_beyond_it() {
    let state =
        given::<Product>([created(5)])
            .when(reserve("o1", 3))
            .then([E::ProductStockReserved {
                product_id: 1,
                order_id: "o1".into(),
                quantity: 3,
                stock_after: 2,
            }]);
    assert_eq!((state.stock, state.reserved()), (2, 3));
    let e = given::<Product>([created(5)])
        .when(reserve("o1", 6))
        .then_error("insufficient_stock");
    assert!(e.to_string().contains("6 requested, 5 available"));
    given_no_history::<Product>()
        .when(reserve("o1", 1))
        .then_error("product_not_found");
}

#[test]
fn product_reservation_is_once_per_order_and_release_or_commit_closes_it() {
    let reserved = E::ProductStockReserved {
        product_id: 1,
        order_id: "o1".into(),
        quantity: 3,
        stock_after: 2,
    };
    given::<Product>([created(5), reserved.clone()])
        .when(reserve("o1", 3))
        .then_nothing();
    let state = given::<Product>([created(5), reserved.clone()])
        .when(C::ReleaseProductStock {
            product_id: 1,
            order_id: "o1".into(),
        })
        .then([E::ProductStockReleased {
            product_id: 1,
            order_id: "o1".into(),
            quantity: 3,
            stock_after: 5,
        }]);
    assert_eq!((state.stock, state.reserved()), (5, 0));
    let state = given::<Product>([created(5), reserved.clone()])
        .when(C::CommitProductStock {
            product_id: 1,
            order_id: "o1".into(),
        })
        .then([E::ProductStockCommitted {
            product_id: 1,
            order_id: "o1".into(),
            quantity: 3,
        }]);
    assert_eq!(
        (state.stock, state.reserved()),
        (2, 0),
        "a sale keeps the stock taken"
    );
    given::<Product>([created(5)])
        .when(C::ReleaseProductStock {
            product_id: 1,
            order_id: "nothing-reserved".into(),
        })
        .then_nothing();
}

#[test]
fn product_creation_and_stock_rules() {
    given::<Product>([created(5)])
        .when(C::CreateProduct {
            product_id: 1,
            name: "Again".into(),
            description: String::new(),
            price: 1,
            stock: 1,
        })
        .then_error("product_exists");
    let state = given::<Product>([created(5)])
        .when(C::SetProductStock {
            product_id: 1,
            stock: 50,
        })
        .then([E::ProductStockSet {
            product_id: 1,
            stock: 50,
        }]);
    assert_eq!(state.stock, 50);
    assert!(
        C::SetProductStock {
            product_id: 1,
            stock: -1
        }
        .validate()
        .is_err()
    );
    assert!(reserve("o", 0).validate().is_err());
}

fn line() -> OrderLine {
    OrderLine {
        product_id: 1,
        quantity: 2,
        unit_price: 1000,
    }
}

fn place(order: &str) -> OC {
    OC::PlaceOrder {
        order_id: order.into(),
        user_id: "alice".into(),
        order_items: vec![line()],
        shipping_address: "Seoul".into(),
        payment_method: "CREDIT_CARD".into(),
        total_amount: 2000,
        created_at: "2026-11-23T00:00:00Z".into(),
    }
}

fn order_created(order: &str) -> OE {
    OE::OrderCreated {
        order_id: order.into(),
        user_id: "alice".into(),
        order_items: vec![line()],
        shipping_address: "Seoul".into(),
        payment_method: "CREDIT_CARD".into(),
        total_amount: 2000,
        created_at: "2026-11-23T00:00:00Z".into(),
    }
}

#[test]
fn order_is_created_pending_and_a_repeat_changes_nothing() {
    let state = given_no_history::<Order>()
        .when(place("o1"))
        .then([order_created("o1")]);
    assert_eq!(state.status, OrderStatus::Pending);
    given::<Order>([order_created("o1")])
        .when(place("o1"))
        .then_nothing();
    let mut other = place("o1");
    if let OC::PlaceOrder {
        total_amount,
        order_items,
        ..
    } = &mut other
    {
        order_items[0].quantity = 3;
        *total_amount = 3000;
    }
    given::<Order>([order_created("o1")])
        .when(other)
        .then_error("order_exists");
}

#[test]
fn order_reaches_exactly_one_terminal_state() {
    let confirmed = OE::OrderConfirmed {
        order_id: "o1".into(),
        user_id: "alice".into(),
    };
    let state = given::<Order>([order_created("o1")])
        .when(OC::ConfirmOrder {
            order_id: "o1".into(),
        })
        .then([confirmed.clone()]);
    assert_eq!(state.status, OrderStatus::Confirmed);
    given::<Order>([order_created("o1"), confirmed.clone()])
        .when(OC::CancelOrder {
            order_id: "o1".into(),
            reason: "late".into(),
        })
        .then_error("order_terminal");
    given::<Order>([order_created("o1"), confirmed])
        .when(OC::ConfirmOrder {
            order_id: "o1".into(),
        })
        .then_nothing();
    let cancelled = OE::OrderCancelled {
        order_id: "o1".into(),
        user_id: "alice".into(),
        reason: "insufficient stock".into(),
    };
    let state = given::<Order>([order_created("o1")])
        .when(OC::CancelOrder {
            order_id: "o1".into(),
            reason: "insufficient stock".into(),
        })
        .then([cancelled.clone()]);
    assert_eq!(state.reason.as_deref(), Some("insufficient stock"));
    given::<Order>([order_created("o1"), cancelled])
        .when(OC::ConfirmOrder {
            order_id: "o1".into(),
        })
        .then_error("order_terminal");
    given_no_history::<Order>()
        .when(OC::ConfirmOrder {
            order_id: "o1".into(),
        })
        .then_error("order_not_found");
}

#[test]
fn order_command_validation_names_the_problem() {
    let mut bad = place("o1");
    if let OC::PlaceOrder { order_items, .. } = &mut bad {
        order_items.clear();
    }
    assert!(
        bad.validate()
            .unwrap_err()
            .contains("orderItems must not be empty")
    );
    let mut bad = place("o1");
    if let OC::PlaceOrder { total_amount, .. } = &mut bad {
        *total_amount = 1;
    }
    assert!(bad.validate().unwrap_err().contains("totalAmount"));
    let mut bad = place("o1");
    if let OC::PlaceOrder { order_items, .. } = &mut bad {
        *order_items = vec![line(); 101];
    }
    assert!(bad.validate().unwrap_err().contains("limit is 100"));
}

#[test]
fn reservation_records_one_outcome_and_releases_only_what_was_reserved() {
    let reserved = RE::StockReserved {
        order_id: "o1".into(),
        user_id: "alice".into(),
        order_items: vec![line()],
        total_amount: 2000,
        payment_method: "CREDIT_CARD".into(),
    };
    given::<Reservation>([])
        .when(RC::RecordStockReserved {
            order_id: "o1".into(),
            user_id: "alice".into(),
            order_items: vec![line()],
            total_amount: 2000,
            payment_method: "CREDIT_CARD".into(),
        })
        .then([reserved.clone()]);
    given::<Reservation>([reserved.clone()])
        .when(RC::RecordStockReservationFailed {
            order_id: "o1".into(),
            user_id: "alice".into(),
            reason: "x".into(),
        })
        .then_error("reservation_decided");
    given::<Reservation>([reserved.clone()])
        .when(RC::RecordStockReleased {
            order_id: "o1".into(),
        })
        .then([RE::StockReleased {
            order_id: "o1".into(),
            user_id: "alice".into(),
            order_items: vec![line()],
        }]);
    given::<Reservation>([RE::StockReservationFailed {
        order_id: "o1".into(),
        user_id: "alice".into(),
        reason: "x".into(),
    }])
    .when(RC::RecordStockReleased {
        order_id: "o1".into(),
    })
    .then_nothing();
}

fn verdict(v: Verdict) -> PC {
    PC::RecordPaymentVerdict {
        order_id: "o1".into(),
        user_id: "alice".into(),
        amount: 2000,
        payment_method: "CREDIT_CARD".into(),
        verdict: v,
    }
}

#[test]
fn payment_is_decided_once_and_only_a_capture_is_refunded() {
    let approved = Verdict::Approved {
        transaction_id: "tx-1".into(),
    };
    let completed = PE::PaymentCompleted {
        order_id: "o1".into(),
        user_id: "alice".into(),
        amount: 2000,
        payment_method: "CREDIT_CARD".into(),
        transaction_id: "tx-1".into(),
    };
    given::<Payment>([])
        .when(verdict(approved.clone()))
        .then([completed.clone()]);
    given::<Payment>([completed.clone()])
        .when(verdict(approved))
        .then_nothing();
    given::<Payment>([completed.clone()])
        .when(verdict(Verdict::Declined {
            reason: "no".into(),
        }))
        .then_error("payment_decided");
    given::<Payment>([completed.clone()])
        .when(PC::RecordRefund {
            order_id: "o1".into(),
        })
        .then([PE::PaymentRefunded {
            order_id: "o1".into(),
            user_id: "alice".into(),
            amount: 2000,
            transaction_id: "tx-1".into(),
        }]);
    let failed = PE::PaymentFailed {
        order_id: "o1".into(),
        user_id: "alice".into(),
        amount: 2000,
        reason: "card declined".into(),
    };
    given::<Payment>([failed])
        .when(PC::RecordRefund {
            order_id: "o1".into(),
        })
        .then_nothing();
}

#[test]
fn notification_is_created_once_per_order() {
    let notify = |kind: &str| NC::NotifyUser {
        order_id: "o1".into(),
        user_id: "alice".into(),
        kind: kind.into(),
        message: "m".into(),
    };
    let created = NE::NotificationCreated {
        order_id: "o1".into(),
        user_id: "alice".into(),
        kind: KIND_ORDER_CONFIRMED.into(),
        message: "m".into(),
    };
    given::<Notification>([])
        .when(notify(KIND_ORDER_CONFIRMED))
        .then([created.clone()]);
    given::<Notification>([created.clone()])
        .when(notify(KIND_ORDER_CONFIRMED))
        .then_nothing();
    given::<Notification>([created])
        .when(notify(KIND_ORDER_CANCELLED))
        .then_error("notified_otherwise");
    assert!(notify("SPAM").validate().is_err());
}

#[test]
fn user_registers_once() {
    let register = UC::RegisterUser {
        username: "alice".into(),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        role: "USER".into(),
    };
    let state = given::<User>([])
        .when(register.clone())
        .then([UE::UserRegistered {
            user_id: "alice".into(),
            username: "alice".into(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            role: "USER".into(),
        }]);
    assert!(state.is_registered());
    given::<User>([UE::UserRegistered {
        user_id: "alice".into(),
        username: "alice".into(),
        password_hash: "h".into(),
        role: "USER".into(),
    }])
    .when(register)
    .then_error("username_taken");
    let bad = UC::RegisterUser {
        username: "Alice Smith".into(),
        password_hash: "$argon2id$x".into(),
        role: "USER".into(),
    };
    assert!(bad.validate().is_err());
}
