//! The given/when/then harness shipped for users, exercised on the test aggregate.

mod common;

use common::*;
use eventum_runtime::testing::{given, given_no_history};

#[test]
fn given_history_when_command_then_events() {
    let state = given::<Account>([
        AccountEvent::Opened {
            owner: "ann".into(),
        },
        AccountEvent::Deposited { amount: 10 },
    ])
    .when(AccountCommand::Withdraw {
        id: "1".into(),
        amount: 4,
    })
    .then([AccountEvent::Withdrawn { amount: 4 }]);
    assert_eq!(state.balance, 6);
}

#[test]
fn given_history_when_command_then_refusal() {
    given::<Account>([AccountEvent::Opened {
        owner: "ann".into(),
    }])
    .when(AccountCommand::Withdraw {
        id: "1".into(),
        amount: 1,
    })
    .then_error("insufficient_funds");
    given_no_history::<Account>()
        .when(deposit("1", 1))
        .then_error("not_open");
}

#[test]
#[should_panic(expected = "decided events differ")]
fn the_harness_fails_when_events_differ() {
    given_no_history::<Account>()
        .when(open("1"))
        .then([AccountEvent::Opened {
            owner: "bob".into(),
        }]);
}

#[test]
#[should_panic(expected = "expected refusal")]
fn the_harness_fails_when_a_refusal_was_expected() {
    given_no_history::<Account>()
        .when(open("1"))
        .then_error("already_open");
}
