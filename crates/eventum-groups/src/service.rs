//! [`GroupService`]: the public API over every group of one store — create, delete, list,
//! info with lag, receive (long poll), ack, nack, list and replay dead letters, shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use eventum_core::{EventStore, StorageError, StorageErrorKind};
use serde::Serialize;
use uuid::Uuid;

use crate::checkpoint;
use crate::dlq::ParkedEvent;
use crate::error::{
    AckError, CreateError, DeleteError, InfoError, NackError, OpenError, ParkedError, ReceiveError,
    ReplayError,
};
use crate::group::{Group, now_ms};
use crate::registry::{self, GroupDefinition};
use crate::settings::{
    GroupSettings, GroupsConfig, StartFrom, check_consumer_id, check_group_name,
};
use crate::state::{Delivery, NackAction};

/// A group's settings and figures. `lag_events` = head position + 1 − checkpoint: events
/// of `$all` at or after the checkpoint. For a stream or category group it counts every
/// event after the checkpoint, matching or not, so it is an upper bound there; an `$all`
/// group also counts past the system streams it skips.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    pub name: String,
    pub settings: GroupSettings,
    /// The first position the group delivers (`from` resolved when it was created).
    pub start_position: u64,
    /// Every event before this position is settled (acked, skipped or parked).
    pub checkpoint: u64,
    pub head_position: Option<u64>,
    pub lag_events: u64,
    pub in_flight: usize,
    pub retry_scheduled: usize,
    /// Unresolved dead letters.
    pub parked: usize,
    /// Read ahead and waiting for delivery.
    pub buffered: usize,
    /// Consumers that polled within `consumer_idle_ms`.
    pub consumers: usize,
}

/// What an ack did: how many tokens settled, and which were not in flight (expired and
/// redelivered, already settled, or from before a restart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AckReport {
    pub acked: usize,
    pub unknown: Vec<u64>,
}

/// Consumer groups over one store. All state lives in the store (`$groups`,
/// `$groups-{name}-checkpoint`, `$dlq-{name}`), so it works unchanged on any backend.
pub struct GroupService {
    store: Arc<dyn EventStore>,
    config: Arc<GroupsConfig>,
    groups: RwLock<HashMap<String, Arc<Group>>>,
    /// Serialises create and delete, so that checks and writes do not interleave.
    admin: tokio::sync::Mutex<()>,
    shut_down: AtomicBool,
}

fn open_to_storage(e: OpenError) -> StorageError {
    match e {
        OpenError::Storage(s) => s,
        other => StorageError::new(StorageErrorKind::Corrupt, other.to_string()),
    }
}

impl GroupService {
    /// Loads every group from the store and starts delivering. Must run inside a tokio
    /// runtime (each group has a reader and a flusher task).
    pub async fn open(
        store: Arc<dyn EventStore>,
        config: GroupsConfig,
    ) -> Result<Arc<GroupService>, OpenError> {
        let config = Arc::new(config);
        let defs = registry::load(&*store).await?;
        let mut groups = HashMap::new();
        for (name, def) in defs {
            let g = Group::start(store.clone(), config.clone(), def).await?;
            groups.insert(name, g);
        }
        Ok(Arc::new(GroupService {
            store,
            config,
            groups: RwLock::new(groups),
            admin: tokio::sync::Mutex::new(()),
            shut_down: AtomicBool::new(false),
        }))
    }

    pub fn config(&self) -> &GroupsConfig {
        &self.config
    }

    fn get(&self, name: &str) -> Option<Arc<Group>> {
        self.groups.read().expect("groups lock").get(name).cloned()
    }

    /// Creates a group. Nothing is written when the name or settings are invalid, the
    /// name exists, or the group limit is reached.
    pub async fn create(
        &self,
        name: &str,
        settings: GroupSettings,
    ) -> Result<GroupInfo, CreateError> {
        check_group_name(name).map_err(CreateError::InvalidName)?;
        settings
            .validate(&self.config)
            .map_err(CreateError::InvalidSettings)?;
        let _admin = self.admin.lock().await;
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(CreateError::ShutDown);
        }
        {
            let groups = self.groups.read().expect("groups lock");
            if groups.contains_key(name) {
                return Err(CreateError::AlreadyExists(name.to_owned()));
            }
            if groups.len() >= self.config.groups_max {
                return Err(CreateError::TooManyGroups {
                    max: self.config.groups_max,
                });
            }
        }
        let start_position = match settings.from {
            StartFrom::Start => 0,
            StartFrom::End => self.store.head_position().map_or(0, |p| p + 1),
            StartFrom::Position(p) => p,
        };
        let def = GroupDefinition {
            name: name.to_owned(),
            incarnation: Uuid::now_v7(),
            settings,
            start_position,
        };
        checkpoint::prepare(&*self.store, name).await?;
        registry::append_created(&*self.store, &def).await?;
        let group = Group::start(self.store.clone(), self.config.clone(), def)
            .await
            .map_err(open_to_storage)?;
        let info = self.info_of(&group);
        self.groups
            .write()
            .expect("groups lock")
            .insert(name.to_owned(), group);
        Ok(info)
    }

    /// Deletes a group: it stops delivering, and a group created later under the same
    /// name starts afresh (its checkpoint and dead letters are not inherited).
    pub async fn delete(&self, name: &str) -> Result<(), DeleteError> {
        let _admin = self.admin.lock().await;
        let group = self
            .get(name)
            .ok_or_else(|| DeleteError::NotFound(name.to_owned()))?;
        registry::append_deleted(&*self.store, &group.def).await?;
        self.groups.write().expect("groups lock").remove(name);
        group.stop();
        Ok(())
    }

    /// Every group, by name.
    pub fn list(&self) -> Vec<GroupInfo> {
        let groups: Vec<_> = self
            .groups
            .read()
            .expect("groups lock")
            .values()
            .cloned()
            .collect();
        let mut infos: Vec<_> = groups.iter().map(|g| self.info_of(g)).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    pub fn info(&self, name: &str) -> Result<GroupInfo, InfoError> {
        let group = self
            .get(name)
            .ok_or_else(|| InfoError::NotFound(name.to_owned()))?;
        Ok(self.info_of(&group))
    }

    fn info_of(&self, group: &Group) -> GroupInfo {
        let counts = {
            let mut st = group.lock();
            st.sweep(now_ms());
            st.counts()
        };
        let head_position = self.store.head_position();
        GroupInfo {
            name: group.def.name.clone(),
            settings: group.def.settings.clone(),
            start_position: group.def.start_position,
            checkpoint: counts.checkpoint,
            head_position,
            lag_events: head_position.map_or(0, |h| (h + 1).saturating_sub(counts.lag_from)),
            in_flight: counts.in_flight,
            retry_scheduled: counts.retry_scheduled,
            parked: counts.parked,
            buffered: counts.buffered,
            consumers: counts.consumers,
        }
    }

    /// Hands out up to `max` events to `consumer`, waiting up to `wait_ms` for the first
    /// one (long poll). Each must be acked or nacked within the group's `ack_timeout_ms`.
    pub async fn receive(
        &self,
        name: &str,
        consumer: &str,
        max: usize,
        wait_ms: u64,
    ) -> Result<Vec<Delivery>, ReceiveError> {
        check_consumer_id(consumer).map_err(ReceiveError::InvalidInput)?;
        if max == 0 || max > self.config.receive_events_max {
            return Err(ReceiveError::InvalidInput(format!(
                "max is {max}; it must be in 1..={}",
                self.config.receive_events_max
            )));
        }
        if wait_ms > self.config.receive_wait_ms_max {
            return Err(ReceiveError::InvalidInput(format!(
                "wait_ms is {wait_ms}; it must be at most {}",
                self.config.receive_wait_ms_max
            )));
        }
        let group = self
            .get(name)
            .ok_or_else(|| ReceiveError::NotFound(name.to_owned()))?;
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        loop {
            let notified = group.available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = now_ms();
            let (out, has_jobs, wake_at_ms) = {
                let mut st = group.lock();
                if !st.touch_consumer(consumer, now, &self.config) {
                    return Err(ReceiveError::TooManyConsumers {
                        group: name.to_owned(),
                        max: self.config.consumers_per_group_max,
                    });
                }
                st.sweep(now);
                let out = st.dispatch(max, now, self.config.parked_events_max);
                (out, !st.jobs.is_empty(), st.next_wakeup_ms())
            };
            group.wake_reader();
            if has_jobs && let Err(e) = group.flush_dlq().await {
                if out.is_empty() {
                    return Err(e.into());
                }
                // The deliveries are in flight already: hand them out; parking is retried.
                tracing::warn!(group = name, error = %e, "writing dead letters failed; will retry");
                return Ok(out);
            }
            if !out.is_empty() {
                return Ok(out);
            }
            if has_jobs {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || group.stopped.load(Ordering::SeqCst) {
                return Ok(out);
            }
            let until_wake = wake_at_ms.map_or(left, |w| {
                Duration::from_millis(w.saturating_sub(now_ms()).max(1))
            });
            let _ = tokio::time::timeout(left.min(until_wake), notified).await;
        }
    }

    /// Acks deliveries. Tokens not in flight are reported, not refused.
    pub async fn ack(&self, name: &str, tokens: &[u64]) -> Result<AckReport, AckError> {
        if tokens.len() > self.config.ack_tokens_max {
            return Err(AckError::InvalidInput(format!(
                "{} tokens; at most {} per ack",
                tokens.len(),
                self.config.ack_tokens_max
            )));
        }
        let group = self
            .get(name)
            .ok_or_else(|| AckError::NotFound(name.to_owned()))?;
        let mut report = AckReport::default();
        let (has_jobs, acks) = {
            let mut st = group.lock();
            for &t in tokens {
                if st.settle(t, "acked") {
                    report.acked += 1;
                } else {
                    report.unknown.push(t);
                }
            }
            (!st.jobs.is_empty(), st.acks_since_checkpoint)
        };
        group.note_acks(acks);
        group.available.notify_waiters();
        group.wake_reader();
        if has_jobs {
            group.flush_dlq().await?;
        }
        Ok(report)
    }

    /// Nacks one delivery: retry (after backoff; parked at `max_attempts`), park now, or
    /// skip. `reason` is kept as the dead letter's error text.
    pub async fn nack(
        &self,
        name: &str,
        token: u64,
        action: NackAction,
        reason: &str,
    ) -> Result<(), NackError> {
        if reason.len() > self.config.reason_bytes_max {
            return Err(NackError::InvalidInput(format!(
                "reason is {} bytes; the limit is {}",
                reason.len(),
                self.config.reason_bytes_max
            )));
        }
        let group = self
            .get(name)
            .ok_or_else(|| NackError::NotFound(name.to_owned()))?;
        let has_jobs = {
            let mut st = group.lock();
            if !st.nack(token, action, reason, now_ms()) {
                return Err(NackError::UnknownToken(token));
            }
            !st.jobs.is_empty()
        };
        group.available.notify_waiters();
        if has_jobs {
            group.flush_dlq().await?;
        }
        Ok(())
    }

    /// Unresolved dead letters with id ≥ `from`, oldest first, at most `limit`.
    pub fn parked(
        &self,
        name: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<ParkedEvent>, ParkedError> {
        if limit == 0 || limit > self.config.parked_list_max {
            return Err(ParkedError::InvalidInput(format!(
                "limit is {limit}; it must be in 1..={}",
                self.config.parked_list_max
            )));
        }
        let group = self
            .get(name)
            .ok_or_else(|| ParkedError::NotFound(name.to_owned()))?;
        Ok(group.lock().parked(from, limit))
    }

    /// Re-delivers one dead letter (`Some(id)`) or all of them through the group, in
    /// stream order; each stays parked until its redelivery is acked or skipped. Returns
    /// how many were queued.
    pub fn replay(&self, name: &str, id: Option<u64>) -> Result<usize, ReplayError> {
        let group = self
            .get(name)
            .ok_or_else(|| ReplayError::NotFound(name.to_owned()))?;
        let n = group
            .lock()
            .replay(id)
            .ok_or_else(|| ReplayError::UnknownParkedId {
                group: name.to_owned(),
                id: id.unwrap_or_default(),
            })?;
        group.available.notify_waiters();
        Ok(n)
    }

    /// Stops every group, writes pending dead letters and final checkpoints. Deliveries
    /// still in flight are not acked, so they are delivered again after a restart.
    pub async fn shutdown(&self) {
        let _admin = self.admin.lock().await;
        self.shut_down.store(true, Ordering::SeqCst);
        let groups: Vec<_> = self
            .groups
            .write()
            .expect("groups lock")
            .drain()
            .map(|(_, g)| g)
            .collect();
        for g in groups {
            g.stop();
            if let Err(e) = g.flush_dlq().await {
                tracing::warn!(group = g.name(), error = %e, "dead letters not written at shutdown");
            }
            if let Err(e) = g.write_checkpoint().await {
                tracing::warn!(group = g.name(), error = %e, "checkpoint not written at shutdown");
            }
        }
    }
}
