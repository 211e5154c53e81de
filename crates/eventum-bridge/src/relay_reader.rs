//! The relay's reader: follows the store subscription in its own task, collects events
//! into batches (what is ready at once, then up to `batch_linger_ms` more, at most
//! `batch_events_max`), maps them to messages and hands them over a bounded channel, so
//! that reading and mapping the next batches overlap with publishing the current ones.

use std::time::Duration;

use eventum_core::{RecordedEvent, StorageError, Subscription};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::message::Message;

/// A batch read from the store and mapped, waiting to be sent.
pub(crate) struct ReadBatch {
    /// The batch's messages; empty when it held only skipped (system) events.
    pub(crate) messages: Vec<Message>,
    /// The position of the batch's last event, skipped ones included.
    pub(crate) last_position: u64,
}

fn taken(item: Option<Result<RecordedEvent, StorageError>>) -> Result<RecordedEvent, RelayError> {
    match item {
        Some(Ok(event)) => Ok(event),
        Some(Err(e)) => Err(RelayError::Subscription(e)),
        None => Err(RelayError::SubscriptionEnded),
    }
}

/// Sends batches until the receiver is gone; a subscription failure is sent as the last
/// item.
pub(crate) async fn read_batches(
    mut subscription: Subscription,
    config: RelayConfig,
    batches: mpsc::Sender<Result<ReadBatch, RelayError>>,
) {
    loop {
        let batch = match taken(subscription.next().await) {
            Ok(first) => take_batch(first, &mut subscription, &config).await,
            Err(e) => Err(e),
        };
        let failed = batch.is_err();
        if batches.send(batch).await.is_err() || failed {
            return;
        }
    }
}

/// `first`, then whatever follows within the linger, up to `batch_events_max` events,
/// mapped; system events are skipped unless configured.
async fn take_batch(
    first: RecordedEvent,
    subscription: &mut Subscription,
    config: &RelayConfig,
) -> Result<ReadBatch, RelayError> {
    let max = config.batch_events_max;
    let mut events = Vec::with_capacity(max.min(4_096));
    events.push(first);
    // What is ready now (a catch-up has whole pages ready) costs no timer.
    while events.len() < max {
        match subscription.next().now_or_never() {
            Some(item) => events.push(taken(item)?),
            None => break,
        }
    }
    if events.len() < max {
        let linger = tokio::time::sleep(Duration::from_millis(config.batch_linger_ms));
        tokio::pin!(linger);
        while events.len() < max {
            tokio::select! {
                biased;
                item = subscription.next() => events.push(taken(item)?),
                () = &mut linger => break,
            }
        }
    }
    let last_position = events.last().map_or(0, |e| e.position);
    let messages = events
        .iter()
        .filter(|e| config.include_system_streams || !e.stream.starts_with('$'))
        .map(|e| Message::from_event_with(e, config.topics, &config.source, config.headers))
        .collect();
    Ok(ReadBatch {
        messages,
        last_position,
    })
}
