//! Applies a sequence of [`Op`]s to a fresh [`MemoryStore`] (the model) and to a store
//! under test, and fails at the first outcome on which they disagree.

use std::time::Duration;

use eventum_core::{
    AppendError, AppendResult, EventStore, ExpectedVersion, NewEvent, ReadError, RecordedEvent,
    StreamMetadata, StreamName, StreamState, SubscriptionFrom, SubscriptionTarget,
};
use futures::StreamExt;

use super::ops::{Op, STREAMS};
use crate::MemoryStore;
use crate::contract::{StoreFactory, TestStore, WAIT, bounded, read_all_events, stream};

/// What one operation produced, normalized so that two correct stores compare equal.
#[derive(Debug, PartialEq)]
enum Outcome {
    Append(Result<AppendResult, AppendError>),
    Read(Result<Vec<RecordedEvent>, ReadError>),
    State(Result<StreamState, ReadError>),
    Nothing,
}

/// Clears what legitimately differs between two stores: the clock, and for system events
/// (deletion markers, metadata) the ids each store generates itself. System event data is
/// compared as JSON values, since key order in it is not part of the contract.
fn normalize(mut e: RecordedEvent) -> RecordedEvent {
    e.recorded_at_us = 0;
    if e.stream.starts_with('$') {
        e.id = uuid::Uuid::nil();
        e.correlation_id = uuid::Uuid::nil();
        e.causation_id = uuid::Uuid::nil();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&e.data) {
            e.data = crate::memory::json_bytes(&v);
        }
    }
    e
}

fn normalize_all(
    r: Result<Vec<RecordedEvent>, ReadError>,
) -> Result<Vec<RecordedEvent>, ReadError> {
    r.map(|v| v.into_iter().map(normalize).collect())
}

/// An append as issued, kept so that `Op::Retry` can repeat it verbatim.
type Issued = (StreamName, ExpectedVersion, Vec<NewEvent>);

/// Matching events from `from` up to the head, as the model's `$all` says they are.
async fn expected_matches(
    model: &MemoryStore,
    target: &SubscriptionTarget,
    from: u64,
) -> Vec<RecordedEvent> {
    let all = read_all_events(model).await;
    all.into_iter()
        .filter(|e| e.position >= from && target.matches(e))
        .collect()
}

/// Subscribes and takes events until one at or past `last` (the position of the last
/// expected event) arrives, so that a store that skips or repeats events is caught without
/// waiting for events that will never come. With `last` None, expects nothing.
async fn drain(
    store: &dyn EventStore,
    target: &SubscriptionTarget,
    from: u64,
    last: Option<u64>,
    who: &str,
) -> Vec<RecordedEvent> {
    let mut sub = store.subscribe(target.clone(), SubscriptionFrom::Position(from));
    let mut out: Vec<RecordedEvent> = Vec::new();
    while let Some(last) = last {
        if out.last().is_some_and(|e| e.position >= last) {
            break;
        }
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(Ok(e))) => out.push(e),
            other => panic!(
                "{who}: subscription to {target:?} from {from} gave {other:?} after {} events, \
                 waiting for position {last}",
                out.len()
            ),
        }
    }
    // Nothing is being appended, so anything more is a duplicate or a stray event.
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(5), sub.next()).await {
        panic!("{who}: subscription to {target:?} from {from} delivered an extra item {extra:?}");
    }
    out
}

async fn apply(store: &dyn EventStore, op: &Op, issued: &[Issued]) -> Outcome {
    match op {
        Op::Append {
            stream: s,
            expected,
            events,
        } => Outcome::Append(store.append(&stream(s), *expected, events.clone()).await),
        Op::Retry { nth } => match issued.get(nth.checked_rem(issued.len()).unwrap_or(0)) {
            Some((s, expected, events)) => {
                Outcome::Append(store.append(s, *expected, events.clone()).await)
            }
            None => Outcome::Nothing,
        },
        Op::ReadStream {
            stream: s,
            from,
            direction,
            limit,
        } => {
            let name = StreamName::system(s.clone()).expect("generated names are valid");
            Outcome::Read(normalize_all(
                store.read_stream(&name, *from, *direction, *limit).await,
            ))
        }
        Op::ReadAll {
            from,
            direction,
            limit,
        } => Outcome::Read(normalize_all(
            store.read_all(*from, *direction, *limit).await,
        )),
        Op::ReadCategory {
            category,
            from,
            limit,
        } => Outcome::Read(normalize_all(
            store.read_category(category, *from, *limit).await,
        )),
        Op::Delete {
            stream: s,
            expected,
        } => Outcome::Append(store.delete_stream(&stream(s), *expected).await),
        Op::SetMaxCount {
            stream: s,
            max_count,
        } => {
            let meta = StreamMetadata {
                max_count: *max_count,
                max_age_s: None,
            };
            Outcome::Append(store.set_stream_metadata(&stream(s), meta).await)
        }
        Op::StreamState { stream: s } => Outcome::State(store.stream_state(&stream(s)).await),
        Op::Subscribe { .. } | Op::Reopen => unreachable!("handled by the runner"),
    }
}

/// Runs `ops` against a fresh model and a fresh store from `factory`, panicking with the
/// step, the operation and both outcomes at the first disagreement. Ends by comparing the
/// whole of `$all` and every stream's state.
pub async fn check_against_model(factory: &dyn StoreFactory, ops: Vec<Op>) {
    let mut sut: TestStore = factory.create().await;
    let model = MemoryStore::new(*sut.store.limits());
    let mut issued: Vec<Issued> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let ctx = || format!("step {step} of {}: {op:?}", ops.len());
        match op {
            Op::Reopen => {
                if factory.supports_reopen() {
                    sut = bounded("reopen", factory.reopen(sut)).await;
                }
            }
            Op::Subscribe { target, from } => {
                let expected = expected_matches(&model, target, *from).await;
                let last = expected.last().map(|e| e.position);
                let from_model = drain(&model, target, *from, last, "model").await;
                assert_eq!(
                    from_model,
                    expected,
                    "model subscription disagrees with its $all at {}",
                    ctx()
                );
                let from_sut = drain(&*sut.store, target, *from, last, "store under test").await;
                let (m, s): (Vec<_>, Vec<_>) = (
                    from_model.into_iter().map(normalize).collect(),
                    from_sut.into_iter().map(normalize).collect(),
                );
                assert_eq!(s, m, "subscription differs from the model at {}", ctx());
            }
            _ => {
                let expected = apply(&model, op, &issued).await;
                let actual = bounded(&ctx(), apply(&*sut.store, op, &issued)).await;
                assert_eq!(
                    actual,
                    expected,
                    "outcome differs from the model at {}",
                    ctx()
                );
            }
        }
        if let Op::Append {
            stream: s,
            expected,
            events,
        } = op
        {
            issued.push((stream(s), *expected, events.clone()));
        }
        assert_eq!(
            sut.store.head_position(),
            model.head_position(),
            "head position differs from the model after {}",
            ctx()
        );
    }
    let model_all: Vec<_> = read_all_events(&model)
        .await
        .into_iter()
        .map(normalize)
        .collect();
    let sut_all: Vec<_> = read_all_events(&*sut.store)
        .await
        .into_iter()
        .map(normalize)
        .collect();
    assert_eq!(sut_all, model_all, "final $all differs from the model");
    for s in STREAMS {
        let name = stream(s);
        assert_eq!(
            sut.store.stream_state(&name).await,
            model.stream_state(&name).await,
            "final state of {s} differs from the model"
        );
    }
    // Give a durable store one last reopen so the final state is also checked on disk.
    if factory.supports_reopen() {
        sut = bounded("final reopen", factory.reopen(sut)).await;
        let reopened: Vec<_> = read_all_events(&*sut.store)
            .await
            .into_iter()
            .map(normalize)
            .collect();
        assert_eq!(
            reopened, model_all,
            "$all after the final reopen differs from the model"
        );
    }
    drop(sut);
}
