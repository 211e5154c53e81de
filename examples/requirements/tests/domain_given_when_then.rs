//! The requirement aggregate's rules, written with the runtime's given/when/then harness.

use eventum_runtime::testing::{given, given_no_history};
use requirements::domain::{Requirement, RequirementCommand as C, RequirementEvent as E, Status};

fn created() -> E {
    E::RequirementCreated {
        requirement_id: "r1".into(),
        title: "Login".into(),
        description: "Users log in".into(),
        author: "ann".into(),
    }
}

fn requested() -> E {
    E::ApprovalRequested {
        requirement_id: "r1".into(),
        approver: "bob".into(),
        due_at_us: 1_000,
        requested_by: "ann".into(),
    }
}

fn approve(by: &str) -> C {
    C::ApproveRequirement {
        requirement_id: "r1".into(),
        approver: by.into(),
    }
}

#[test]
fn a_new_requirement_is_created_as_a_draft() {
    let state = given_no_history::<Requirement>()
        .when(C::CreateRequirement {
            requirement_id: "r1".into(),
            title: "Login".into(),
            description: "Users log in".into(),
            author: "ann".into(),
        })
        .then([created()]);
    assert_eq!(state.status, Status::Draft);
}

#[test]
fn creating_twice_and_acting_on_a_missing_requirement_are_refused() {
    given::<Requirement>([created()])
        .when(C::CreateRequirement {
            requirement_id: "r1".into(),
            title: "x".into(),
            description: String::new(),
            author: "ann".into(),
        })
        .then_error("requirement_exists");
    given_no_history::<Requirement>()
        .when(approve("bob"))
        .then_error("requirement_not_found");
}

#[test]
fn approval_flow_requested_then_approved_by_the_named_approver() {
    let state = given::<Requirement>([created()])
        .when(C::RequestApproval {
            requirement_id: "r1".into(),
            approver: "bob".into(),
            due_at_us: 1_000,
            requested_by: "ann".into(),
        })
        .then([requested()]);
    assert_eq!(state.status, Status::PendingApproval);
    given::<Requirement>([created(), requested()])
        .when(approve("eve"))
        .then_error("wrong_approver");
    let state = given::<Requirement>([created(), requested()])
        .when(approve("bob"))
        .then([E::RequirementApproved {
            requirement_id: "r1".into(),
            approver: "bob".into(),
        }]);
    assert_eq!(state.status, Status::Approved);
}

#[test]
fn an_approved_requirement_is_frozen() {
    let approved = E::RequirementApproved {
        requirement_id: "r1".into(),
        approver: "bob".into(),
    };
    given::<Requirement>([created(), requested(), approved.clone()])
        .when(C::UpdateRequirement {
            requirement_id: "r1".into(),
            title: Some("New".into()),
            description: None,
            editor: "ann".into(),
        })
        .then_error("requirement_approved");
    given::<Requirement>([created(), requested(), approved])
        .when(approve("bob"))
        .then_error("requirement_approved");
}

#[test]
fn escalation_applies_only_to_a_pending_approval() {
    let state = given::<Requirement>([created(), requested()])
        .when(C::EscalateApproval {
            requirement_id: "r1".into(),
        })
        .then([E::ApprovalEscalated {
            requirement_id: "r1".into(),
            approver: "bob".into(),
        }]);
    assert_eq!(state.status, Status::Escalated);
    // Approval still possible after escalation.
    let escalated = E::ApprovalEscalated {
        requirement_id: "r1".into(),
        approver: "bob".into(),
    };
    given::<Requirement>([created(), requested(), escalated])
        .when(approve("bob"))
        .then([E::RequirementApproved {
            requirement_id: "r1".into(),
            approver: "bob".into(),
        }]);
    // A deadline racing with the approval changes nothing.
    let approved = E::RequirementApproved {
        requirement_id: "r1".into(),
        approver: "bob".into(),
    };
    given::<Requirement>([created(), requested(), approved])
        .when(C::EscalateApproval {
            requirement_id: "r1".into(),
        })
        .then_nothing();
}
