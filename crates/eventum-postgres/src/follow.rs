//! The follower that feeds subscriptions: it publishes committed events to the live
//! broadcast in position order, woken by this process's own commits, by `NOTIFY` from
//! other processes (the listener task) and, as a fallback, by a poll every
//! `poll_interval_ms`, so a lost notification delays subscribers by at most one interval.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use eventum_core::subscription::{LiveBatch, SubscriptionSource};
use eventum_core::{ReadDirection, RecordedEvent, StorageError, SubscriptionTarget};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::error::storage;
use crate::read;
use crate::store::Inner;

/// Publishes every committed event from position `next` on, forever (until aborted).
pub(crate) async fn run_follower(inner: Arc<Inner>, mut next: u64) {
    let poll = Duration::from_millis(inner.config.poll_interval_ms.max(1));
    loop {
        match publish_new(&inner, &mut next).await {
            Ok(()) => {}
            // Shutting down (the pool closes right after this task is aborted).
            Err(_) if inner.live.lock().unwrap().is_none() => return,
            Err(e) => tracing::warn!(error = %e, "postgres follower: read failed; retrying"),
        }
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// The committed head: every position below it is committed and visible (commit order
/// equals position order).
async fn committed_head(inner: &Inner) -> Result<u64, StorageError> {
    let client = inner.client().await?;
    let stmt = client
        .prepare_cached("SELECT next_position FROM log_head")
        .await
        .map_err(storage)?;
    let row = client.query_one(&stmt, &[]).await.map_err(storage)?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Reads and broadcasts committed events from `*next` until none are left. With no live
/// receiver it reads nothing but the committed head and moves past it: a subscription
/// subscribes to the broadcast *before* it reads the table, so one that arrives after
/// the receiver count was seen to be zero reads every position below that head itself.
async fn publish_new(inner: &Inner, next: &mut u64) -> Result<(), StorageError> {
    let batch_events = inner.config.follow_batch_events.max(1);
    let head = committed_head(inner).await?;
    {
        let live = inner.live.lock().unwrap();
        if live.as_ref().is_some_and(|l| l.receiver_count() == 0) {
            *next = (*next).max(head);
            inner.raise_next_position(*next);
            return Ok(());
        }
    }
    loop {
        let events =
            read::read_all(inner, Some(*next), ReadDirection::Forward, batch_events).await?;
        let Some(last) = events.last() else {
            return Ok(());
        };
        *next = last.position + 1;
        inner.raise_next_position(*next);
        let full = events.len() == batch_events;
        if let Some(live) = inner.live.lock().unwrap().as_ref() {
            // No receivers is fine: subscribers catch up from the table.
            let _ = live.send(LiveBatch::from(events));
        }
        if !full {
            return Ok(());
        }
    }
}

/// Keeps a dedicated connection listening on the store's channel and wakes the follower
/// on every notification; reconnects after `listen_reconnect_ms` when the connection drops.
pub(crate) async fn run_listener(inner: Arc<Inner>, config: tokio_postgres::Config) {
    let channel = inner.config.channel();
    let retry = Duration::from_millis(inner.config.listen_reconnect_ms.max(1));
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen_sql = format!("LISTEN {channel}");
                let listen = client.batch_execute(&listen_sql);
                tokio::pin!(listen);
                // Drive the connection while LISTEN runs: its reply arrives through it.
                let ok = loop {
                    tokio::select! {
                        r = &mut listen => break r.is_ok(),
                        m = messages.next() => if !matches!(m, Some(Ok(_))) { break false },
                    }
                };
                if ok {
                    // Anything committed while not listening is picked up now.
                    inner.wake.notify_one();
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(_) = message {
                            inner.wake.notify_one();
                        }
                    }
                }
                tracing::warn!("postgres listener: connection lost; polling until it is back");
            }
            Err(e) => tracing::warn!(error = %e, "postgres listener: cannot connect"),
        }
        tokio::time::sleep(retry).await;
    }
}

#[async_trait]
impl SubscriptionSource for Inner {
    async fn read_matching(
        &self,
        target: &SubscriptionTarget,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError> {
        read::read_matching(self, target, from, limit).await
    }

    fn next_position(&self) -> u64 {
        self.next_position.load(Ordering::Acquire)
    }

    fn live(&self) -> broadcast::Receiver<LiveBatch> {
        match self.live.lock().unwrap().as_ref() {
            Some(live) => live.subscribe(),
            // Shut down: a receiver whose sender is gone ends the subscription.
            None => broadcast::channel(1).1,
        }
    }
}
