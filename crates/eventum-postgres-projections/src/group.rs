//! [`PgGroupConsumer`]: a competing consumer of an `eventum-groups` consumer group whose
//! handler writes PostgreSQL. Each received batch runs through the group's inbox and the
//! handler in one transaction ([`handle_delivered`]), then is acked. The group keeps its
//! own checkpoint in the store (written after acks); whatever it delivers again after a
//! crash, a lost ack or an ack timeout was either not committed (handled now) or is in
//! the inbox (dropped and acked). A failed batch is split: each event is tried alone, and
//! one that still fails is nacked — retried by the group with its backoff when the failure
//! is transient, parked in its dead-letter stream at once when it is not — so one poison
//! event never holds the others.
//!
//! The inbox is named after the group, so all its consumers share it. Keep
//! `ConsumerConfig::inbox_ids_max`-style bounds in mind: [`GroupConsumerConfig::inbox_ids_max`]
//! must cover what the group can redeliver beyond its checkpoint (its checkpoint interval
//! plus `in_flight_max`).

use std::sync::Arc;
use std::time::Duration;

use eventum_core::RecordedEvent;
use eventum_groups::{Delivery, GroupService, NackAction, ReceiveError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::delivered::{Handled, handle_delivered};
use crate::handler::PgHandler;
use crate::inbox;
use crate::models::PgReadModels;

/// The bounds of one group consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConsumerConfig {
    /// Most deliveries received and committed in one transaction. Default 100.
    pub receive_events_max: usize,
    /// Longest one receive waits for a first delivery (long poll), in ms. Default 1,000.
    pub receive_wait_ms: u64,
    /// Delay after a failed receive (the group service unavailable), in ms. Default 500.
    pub receive_retry_ms: u64,
    /// Ids kept in the group's inbox. Default 100,000.
    pub inbox_ids_max: u64,
}

impl Default for GroupConsumerConfig {
    fn default() -> Self {
        Self {
            receive_events_max: 100,
            receive_wait_ms: 1_000,
            receive_retry_ms: 500,
            inbox_ids_max: 100_000,
        }
    }
}

/// A group consumer's figures since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupConsumerStatus {
    pub handled: u64,
    pub duplicates_dropped: u64,
    pub acked: u64,
    pub nacked: u64,
    /// Set when the consumer stopped by itself (the group was deleted, the service shut
    /// down).
    pub stopped_because: Option<String>,
}

/// A consumer of one group running in the background; dropping it stops it after the
/// batch in progress.
pub struct PgGroupConsumer {
    status: watch::Receiver<GroupConsumerStatus>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Worker {
    models: PgReadModels,
    groups: Arc<GroupService>,
    group: String,
    consumer_id: String,
    handler: Arc<dyn PgHandler>,
    config: GroupConsumerConfig,
    status: watch::Sender<GroupConsumerStatus>,
    recorded_since_prune: u64,
}

impl PgGroupConsumer {
    /// Starts receiving from `group` as `consumer_id` (unique among the group's
    /// consumers), handling with `handler`.
    pub fn start(
        models: PgReadModels,
        groups: Arc<GroupService>,
        group: &str,
        consumer_id: &str,
        handler: Arc<dyn PgHandler>,
        config: GroupConsumerConfig,
    ) -> Self {
        let (status, receiver) = watch::channel(GroupConsumerStatus::default());
        let (stop, stop_rx) = watch::channel(false);
        let worker = Worker {
            models,
            groups,
            group: group.to_owned(),
            consumer_id: consumer_id.to_owned(),
            handler,
            config,
            status,
            recorded_since_prune: 0,
        };
        let task = tokio::spawn(worker.run(stop_rx));
        Self {
            status: receiver,
            stop,
            task,
        }
    }

    pub fn status(&self) -> GroupConsumerStatus {
        self.status.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<GroupConsumerStatus> {
        self.status.clone()
    }

    /// Stops after the batch in progress (committed and acked, or not at all).
    pub async fn stop(self) -> GroupConsumerStatus {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.status.borrow().clone()
    }
}

impl Worker {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let wait_ms = self.config.receive_wait_ms;
        let max = self.config.receive_events_max.max(1);
        loop {
            if *stop.borrow() {
                return;
            }
            let received = tokio::select! {
                _ = stop.changed() => return,
                r = self.groups.receive(&self.group, &self.consumer_id, max, wait_ms) => r,
            };
            let deliveries = match received {
                Ok(d) => d,
                Err(ReceiveError::NotFound(_)) => {
                    self.status.send_modify(|s| {
                        s.stopped_because = Some(format!("group {} does not exist", self.group))
                    });
                    return;
                }
                Err(e) => {
                    tracing::warn!(group = %self.group, error = %e, "receive failed; trying again");
                    tokio::time::sleep(Duration::from_millis(self.config.receive_retry_ms)).await;
                    continue;
                }
            };
            if !deliveries.is_empty() {
                self.handle(&deliveries).await;
            }
        }
    }

    async fn handle(&mut self, deliveries: &[Delivery]) {
        let events: Vec<RecordedEvent> = deliveries.iter().map(|d| (*d.event).clone()).collect();
        match handle_delivered(&self.models, &self.group, &*self.handler, &events).await {
            Ok(handled) => {
                let tokens: Vec<u64> = deliveries.iter().map(|d| d.token).collect();
                self.settled(handled, &tokens).await;
            }
            Err(e) if deliveries.len() > 1 => {
                tracing::warn!(group = %self.group, error = %e, "batch failed; trying its events one by one");
                for d in deliveries {
                    self.handle_one(d).await;
                }
            }
            Err(_) => self.handle_one(&deliveries[0]).await,
        }
        self.maybe_prune().await;
    }

    async fn handle_one(&mut self, d: &Delivery) {
        let event = std::slice::from_ref(&*d.event);
        match handle_delivered(&self.models, &self.group, &*self.handler, event).await {
            Ok(handled) => self.settled(handled, &[d.token]).await,
            Err(e) => {
                let action = if e.transient {
                    NackAction::Retry
                } else {
                    NackAction::Park
                };
                if let Err(nack) = self
                    .groups
                    .nack(&self.group, d.token, action, &e.message)
                    .await
                {
                    // The ack deadline redelivers it anyway.
                    tracing::warn!(group = %self.group, error = %nack, "nack failed");
                }
                self.status.send_modify(|s| s.nacked += 1);
            }
        }
    }

    /// Acks committed deliveries. A failed ack only means they come again, and the inbox
    /// drops them then.
    async fn settled(&mut self, handled: Handled, tokens: &[u64]) {
        self.recorded_since_prune += handled.new as u64;
        let acked = match self.groups.ack(&self.group, tokens).await {
            Ok(report) => report.acked as u64,
            Err(e) => {
                tracing::warn!(group = %self.group, error = %e, "ack failed; the group will redeliver");
                0
            }
        };
        self.status.send_modify(|s| {
            s.handled += handled.new as u64;
            s.duplicates_dropped += handled.duplicates as u64;
            s.acked += acked;
        });
    }

    async fn maybe_prune(&mut self) {
        let keep = self.config.inbox_ids_max;
        if self.recorded_since_prune < (keep / 8).max(1) {
            return;
        }
        let pruned = async {
            let mut client = self.models.client().await?;
            let tx = client.transaction().await.map_err(crate::error::storage)?;
            inbox::prune(&tx, &self.group, keep).await?;
            tx.commit().await.map_err(crate::error::storage)
        };
        match pruned.await {
            Ok(()) => self.recorded_since_prune = 0,
            Err(e) => tracing::warn!(group = %self.group, error = %e, "pruning the inbox failed"),
        }
    }
}
