//! The operations the model checker applies, and the proptest strategy that generates
//! sequences of them: small batches to a handful of streams with random expectations,
//! verbatim retries, reads in every direction, deletes, retention changes, subscriptions
//! drained to the head, and reopens.

use eventum_core::{ExpectedVersion, NewEvent, ReadDirection, SubscriptionTarget};
use proptest::prelude::*;
use uuid::Uuid;

use crate::contract::stream;

/// User streams the generated operations touch. Few, so that versions collide often;
/// `order` (no dash) shares the `order` category with `order-1` and `order-2`.
pub const STREAMS: [&str; 4] = ["order-1", "order-2", "user-1", "order"];

/// One step of a model-checking run.
#[derive(Clone, Debug)]
pub enum Op {
    Append {
        stream: String,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    },
    /// Repeats, verbatim, the `nth` (modulo their count) earlier `Append` of the run, as a
    /// client would after a lost acknowledgement. A no-op when there was none.
    Retry {
        nth: usize,
    },
    /// `stream` may be a system stream (`$$order-1`).
    ReadStream {
        stream: String,
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    },
    ReadAll {
        from: Option<u64>,
        direction: ReadDirection,
        limit: usize,
    },
    ReadCategory {
        category: String,
        from: u64,
        limit: usize,
    },
    Delete {
        stream: String,
        expected: ExpectedVersion,
    },
    SetMaxCount {
        stream: String,
        max_count: Option<u64>,
    },
    StreamState {
        stream: String,
    },
    /// Subscribes from a global position and drains every matching event up to the head.
    Subscribe {
        target: SubscriptionTarget,
        from: u64,
    },
    /// Closes and reopens the store under test, when its factory supports it.
    Reopen,
}

fn user_stream() -> impl Strategy<Value = String> {
    prop::sample::select(&STREAMS[..]).prop_map(str::to_owned)
}

fn any_stream() -> impl Strategy<Value = String> {
    prop_oneof![4 => user_stream(), 1 => user_stream().prop_map(|s| format!("$${s}"))]
}

fn expected_version() -> impl Strategy<Value = ExpectedVersion> {
    prop_oneof![
        4 => Just(ExpectedVersion::Any),
        1 => Just(ExpectedVersion::NoStream),
        1 => Just(ExpectedVersion::StreamExists),
        3 => (0u64..6).prop_map(ExpectedVersion::Exact),
    ]
}

fn direction() -> impl Strategy<Value = ReadDirection> {
    prop_oneof![Just(ReadDirection::Forward), Just(ReadDirection::Backward)]
}

/// Read limits, including the invalid 0.
fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 6 => 1usize..6, 2 => Just(1_000usize)]
}

/// An event with a placeholder id; [`ops`] numbers ids so each is unique in the run.
fn new_event() -> impl Strategy<Value = NewEvent> {
    (
        0usize..3,
        0u32..1_000,
        prop::option::of(0u8..3),
        any::<bool>(),
    )
        .prop_map(|(t, n, meta, correlate)| {
            let event_type = ["Created", "Updated", "Closed"][t];
            let mut e = NewEvent::from_json(event_type, format!(r#"{{"n":{n}}}"#)).unwrap();
            if let Some(m) = meta {
                e = e.with_metadata(serde_json::json!({ "m": m })).unwrap();
            }
            if correlate {
                e = e.with_correlation_id(Uuid::from_u128(u128::from(n) << 64));
            }
            e
        })
}

fn batch() -> impl Strategy<Value = Vec<NewEvent>> {
    // Mostly 1-3 events; now and then an empty (invalid) batch.
    (0u8..20, prop::collection::vec(new_event(), 1..4))
        .prop_map(|(k, events)| if k == 0 { Vec::new() } else { events })
}

fn target() -> impl Strategy<Value = SubscriptionTarget> {
    prop_oneof![
        2 => Just(SubscriptionTarget::All),
        1 => user_stream().prop_map(|s| SubscriptionTarget::Stream(stream(&s))),
        1 => prop::sample::select(&["order", "user", "$$order"][..])
            .prop_map(|c| SubscriptionTarget::Category(c.to_owned())),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (user_stream(), expected_version(), batch())
            .prop_map(|(stream, expected, events)| Op::Append { stream, expected, events }),
        3 => any::<usize>().prop_map(|nth| Op::Retry { nth }),
        3 => (any_stream(), prop::option::of(0u64..6), direction(), limit())
            .prop_map(|(stream, from, direction, limit)| Op::ReadStream { stream, from, direction, limit }),
        2 => (prop::option::of(0u64..30), direction(), limit())
            .prop_map(|(from, direction, limit)| Op::ReadAll { from, direction, limit }),
        2 => (prop::sample::select(&["order", "user", "$$order", "none"][..]), 0u64..30, limit())
            .prop_map(|(c, from, limit)| Op::ReadCategory { category: c.to_owned(), from, limit }),
        1 => (user_stream(), expected_version())
            .prop_map(|(stream, expected)| Op::Delete { stream, expected }),
        1 => (user_stream(), prop::option::of(0u64..4))
            .prop_map(|(stream, max_count)| Op::SetMaxCount { stream, max_count }),
        1 => user_stream().prop_map(|stream| Op::StreamState { stream }),
        2 => (target(), 0u64..30).prop_map(|(target, from)| Op::Subscribe { target, from }),
        1 => Just(Op::Reopen),
    ]
}

/// Sequences of up to `max_len` operations, with every appended event id unique.
pub fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..=max_len).prop_map(|mut ops| {
        let mut next_id = 1u128;
        for op in &mut ops {
            if let Op::Append { events, .. } = op {
                for e in events.iter_mut() {
                    *e = e.clone().with_id(Uuid::from_u128(next_id));
                    next_id += 1;
                }
            }
        }
        ops
    })
}
