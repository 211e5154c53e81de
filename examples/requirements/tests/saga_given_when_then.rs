//! `RequirementApprovalSaga` with the sagas crate's given/when/then harness: pure, no
//! store, no clock.

use eventum_core::RecordedEvent;
use eventum_sagas::Status;
use eventum_sagas::testing::{SagaTest, event, given};
use requirements::approval_saga::RequirementApprovalSaga;
use serde_json::json;

const REQ: &str = "r1";

/// `ApprovalRequested`, recorded at `recorded_at_us`, due `window_us` later.
fn requested(recorded_at_us: i64, window_us: i64) -> RecordedEvent {
    let mut e = event(
        &format!("requirement-{REQ}"),
        "ApprovalRequested",
        json!({"requirement_id": REQ, "approver": "bob", "requested_by": "ann",
               "due_at_us": recorded_at_us + window_us}),
    );
    e.recorded_at_us = recorded_at_us;
    e
}

fn approved() -> RecordedEvent {
    event(
        &format!("requirement-{REQ}"),
        "RequirementApproved",
        json!({"requirement_id": REQ, "approver": "bob"}),
    )
}

#[test]
fn a_request_schedules_the_deadline_at_its_due_time() {
    // Recorded at t = 10 s, due 60 s later; the harness clock is at 10 s.
    SagaTest::new(RequirementApprovalSaga)
        .at(10_000)
        .when(requested(10_000_000, 60_000_000))
        .then_commands([])
        .then_status(Status::Running)
        .then_deadlines([("approval-due", 70_000)]);
}

#[test]
fn an_approval_before_the_deadline_completes_and_cancels_it() {
    let outcome = given(RequirementApprovalSaga, [requested(0, 60_000_000)])
        .when(approved())
        .then_commands([])
        .then_status(Status::Completed)
        .then_deadlines([]);
    assert_eq!(outcome.state().outcome.as_deref(), Some("approved"));
}

#[test]
fn the_deadline_escalates_once_and_completes() {
    let outcome = given(RequirementApprovalSaga, [requested(0, 60_000_000)])
        .when_deadline(REQ, "approval-due")
        .then_commands([("EscalateApproval", json!({"requirement_id": REQ}))])
        .then_status(Status::Completed);
    assert_eq!(outcome.state().outcome.as_deref(), Some("escalated"));
    // A late approval reaches a completed instance: nothing more happens.
    outcome.and().when(approved()).then_ignored();
}

#[test]
fn unrelated_events_do_not_start_an_instance() {
    let created = event(
        &format!("requirement-{REQ}"),
        "RequirementCreated",
        json!({"requirement_id": REQ, "title": "t", "description": "", "author": "ann"}),
    );
    SagaTest::new(RequirementApprovalSaga)
        .when(created)
        .then_ignored();
}
