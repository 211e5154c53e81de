//! The catch-up-then-live subscription algorithm, shared by every backend. A backend only
//! supplies durable reads and a bounded broadcast of committed batches; this module
//! guarantees order, no gap and no duplicate, and falls back to reading the log whenever
//! the subscriber lags behind the broadcast, so a slow subscriber never holds up writers.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::error::StorageError;
use crate::event::RecordedEvent;
use crate::store::{Subscription, SubscriptionFrom, SubscriptionTarget};

/// A batch of events committed together, in position order. A `Vec` behind the `Arc`
/// rather than a slice: writers build the batch as a vector, and converting it to
/// `Arc<[_]>` would copy every event once more.
pub type LiveBatch = Arc<Vec<RecordedEvent>>;

/// What a backend provides so that [`subscribe`] can serve its subscriptions.
#[async_trait]
pub trait SubscriptionSource: Send + Sync + 'static {
    /// Durable events matching `target` whose position is at least `from`, in position
    /// order, at most `limit`. Empty when there are none up to the durable head.
    async fn read_matching(
        &self,
        target: &SubscriptionTarget,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError>;

    /// The position the next committed event will get.
    fn next_position(&self) -> u64;

    /// A new receiver of committed batches, in commit order. Batches are sent only after
    /// they are durable and visible to [`SubscriptionSource::read_matching`].
    fn live(&self) -> broadcast::Receiver<LiveBatch>;
}

enum Mode {
    CatchUp,
    Live,
}

struct State<S> {
    source: Arc<S>,
    target: SubscriptionTarget,
    /// Deliver only events at or after this position; everything before it was delivered
    /// or does not match.
    next: u64,
    live: Option<broadcast::Receiver<LiveBatch>>,
    pending: VecDeque<RecordedEvent>,
    mode: Mode,
    catch_up_batch_events: usize,
    failed: bool,
}

/// Starts a subscription over `source`. `catch_up_batch_events` bounds each log read and
/// so the memory a subscription holds.
pub fn subscribe<S: SubscriptionSource>(
    source: Arc<S>,
    target: SubscriptionTarget,
    from: SubscriptionFrom,
    catch_up_batch_events: usize,
) -> Subscription {
    let (next, mode, live) = match from {
        SubscriptionFrom::Position(p) => (p, Mode::CatchUp, None),
        SubscriptionFrom::End => {
            // Subscribe before reading the head so that nothing committed in between is lost.
            let rx = source.live();
            (source.next_position(), Mode::Live, Some(rx))
        }
    };
    let state = State {
        source,
        target,
        next,
        live,
        pending: VecDeque::new(),
        mode,
        catch_up_batch_events: catch_up_batch_events.max(1),
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, step))
}

async fn step<S: SubscriptionSource>(
    mut st: State<S>,
) -> Option<(Result<RecordedEvent, StorageError>, State<S>)> {
    loop {
        if st.failed {
            return None;
        }
        if let Some(event) = st.pending.pop_front() {
            st.next = event.position + 1;
            return Some((Ok(event), st));
        }
        match st.mode {
            Mode::CatchUp => {
                if st.live.is_none() {
                    // Subscribing before the read means every batch committed after the
                    // read's snapshot is also in the receiver.
                    st.live = Some(st.source.live());
                }
                match st
                    .source
                    .read_matching(&st.target, st.next, st.catch_up_batch_events)
                    .await
                {
                    Ok(events) if events.is_empty() => st.mode = Mode::Live,
                    Ok(events) => st
                        .pending
                        .extend(events.into_iter().filter(|e| e.position >= st.next)),
                    Err(e) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                }
            }
            Mode::Live => {
                let rx = st.live.as_mut().expect("live mode always has a receiver");
                match rx.recv().await {
                    Ok(batch) => {
                        let next = st.next;
                        st.pending.extend(
                            batch
                                .iter()
                                .filter(|e| e.position >= next && st.target.matches(e))
                                .cloned(),
                        );
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind the bounded broadcast: read the missed part from the log.
                        st.live = None;
                        st.mode = Mode::CatchUp;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    }
}
