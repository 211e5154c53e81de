//! A given/when/then harness for aggregates, shipped for users' tests: given past
//! events, when a command is decided, then these events (or this refusal). Pure: no
//! store, no runtime.

use std::fmt::Debug;

use crate::aggregate::{Aggregate, DomainError, fold};

/// Starts a scenario for aggregate `A` with the events that already happened.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    Given {
        history: events.into_iter().collect(),
    }
}

/// Starts a scenario for an aggregate with no history.
pub fn given_no_history<A: Aggregate>() -> Given<A> {
    given::<A>([])
}

pub struct Given<A: Aggregate> {
    history: Vec<A::Event>,
}

impl<A: Aggregate> Given<A> {
    /// Decides `command` on the state folded from the history.
    pub fn when(self, command: A::Command) -> Then<A> {
        let state = fold(A::default(), &self.history);
        let outcome = state.decide(&command);
        Then { state, outcome }
    }
}

pub struct Then<A: Aggregate> {
    state: A,
    outcome: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq,
{
    /// Asserts that exactly `expected` were decided, in order; returns the state after
    /// them for further checks.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "decided events differ from the expected ones"
                );
                fold(self.state, &events)
            }
            Err(e) => panic!(
                "expected events {expected:?}, but the command was refused: {} ({e})",
                e.code()
            ),
        }
    }

    /// Asserts that the command was refused with domain error code `code`.
    #[track_caller]
    pub fn then_error(self, code: &str) -> A::Error {
        match self.outcome {
            Err(e) if e.code() == code => e,
            Err(e) => panic!("expected refusal {code:?}, got {:?} ({e})", e.code()),
            Ok(events) => panic!("expected refusal {code:?}, but it decided {events:?}"),
        }
    }

    /// Asserts that the command was accepted but changed nothing.
    #[track_caller]
    pub fn then_nothing(self) {
        self.then(Vec::new());
    }
}

impl<A: Aggregate> Debug for Given<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Given")
            .field("history", &self.history)
            .finish()
    }
}
