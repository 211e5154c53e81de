//! Queries over a saga's instances, answered from the log: one instance's status, state
//! and history (its stream's records), and a bounded page of the saga's instances.

use std::sync::Arc;

use eventum_core::{EventStore, ReadDirection, ReadError};
use serde::Serialize;

use crate::error::QueryError;
use crate::instance::Instance;
use crate::load;
use crate::records::{self, DeadlineEntry, InstanceRecord, InstanceRegistered};
use crate::saga::Status;

/// An instance's current standing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstanceView {
    pub key: String,
    pub status: Status,
    /// Why it is compensating, compensated or failed.
    pub reason: Option<String>,
    /// Triggers handled so far.
    pub steps: u64,
    /// The state recorded by the last step.
    pub state: serde_json::Value,
    pub pending_deadlines: Vec<DeadlineEntry>,
    /// Events in the instance stream: one per step (one per record in streams written
    /// before steps became one event); the history's versions run below it.
    pub records: u64,
}

/// One record of an instance's history, with the version of the event that holds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub version: u64,
    pub recorded_at_us: i64,
    pub record: InstanceRecord,
}

/// A page of instances, in the order they started.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstancePage {
    pub instances: Vec<InstanceSummary>,
    /// Pass as `from` for the next page; `None` at the end.
    pub next_from: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstanceSummary {
    pub key: String,
    pub status: Status,
    pub reason: Option<String>,
}

/// Reads a saga's instances from a store.
#[derive(Clone)]
pub struct SagaStatus {
    store: Arc<dyn EventStore>,
    saga: String,
}

impl SagaStatus {
    pub fn new(store: Arc<dyn EventStore>, saga: impl Into<String>) -> Self {
        Self {
            store,
            saga: saga.into(),
        }
    }

    fn page_limit(&self, limit: usize) -> Result<usize, QueryError> {
        self.store.limits().check_read_limit(limit)?;
        Ok(limit)
    }

    /// The instance named `key`, or `None` when it never started.
    pub async fn instance(&self, key: &str) -> Result<Option<InstanceView>, QueryError> {
        let stream = records::instance_stream(&self.saga, key)?;
        let mut instance: Instance<serde_json::Value> = Instance::new(key.to_owned(), stream);
        let page_events_max = self.store.limits().read_events_max.min(1024);
        load::fold_stream(self.store.as_ref(), &mut instance, page_events_max).await?;
        let Some(version) = instance.version else {
            return Ok(None);
        };
        Ok(Some(InstanceView {
            key: instance.key,
            status: instance.status,
            reason: instance.reason,
            steps: instance.steps,
            state: instance.state,
            pending_deadlines: instance.pending.into_values().collect(),
            records: version + 1,
        }))
    }

    /// `key`'s history from stream version `from_version`: the records of up to `limit`
    /// events, in order (a step is one event, and its records share its version).
    pub async fn history(
        &self,
        key: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, QueryError> {
        let limit = self.page_limit(limit)?;
        let stream = records::instance_stream(&self.saga, key)?;
        let page = match self
            .store
            .read_stream(&stream, Some(from_version), ReadDirection::Forward, limit)
            .await
        {
            Ok(page) => page,
            Err(ReadError::StreamNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut entries = Vec::with_capacity(page.len());
        for e in &page {
            for record in InstanceRecord::decode_event(e).map_err(QueryError::Corrupt)? {
                entries.push(HistoryEntry {
                    version: e.version,
                    recorded_at_us: e.recorded_at_us,
                    record,
                });
            }
        }
        Ok(entries)
    }

    /// Up to `limit` instances from registry entry `from`, with their status.
    pub async fn list(&self, from: u64, limit: usize) -> Result<InstancePage, QueryError> {
        let limit = self.page_limit(limit)?;
        let registry = records::registry_stream(&self.saga)?;
        let page = match self
            .store
            .read_stream(&registry, Some(from), ReadDirection::Forward, limit)
            .await
        {
            Ok(page) => page,
            Err(ReadError::StreamNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut instances: Vec<InstanceSummary> = Vec::with_capacity(page.len());
        for event in &page {
            let entry: InstanceRegistered = serde_json::from_slice(&event.data)
                .map_err(|e| QueryError::Corrupt(format!("{registry}: {e}")))?;
            // A registration retried after a crash may appear twice.
            if instances.iter().any(|i| i.key == entry.key) {
                continue;
            }
            if let Some(view) = self.instance(&entry.key).await? {
                instances.push(InstanceSummary {
                    key: view.key,
                    status: view.status,
                    reason: view.reason,
                });
            }
        }
        let next_from = (page.len() == limit).then(|| page.last().map_or(from, |e| e.version + 1));
        Ok(InstancePage {
            instances,
            next_from,
        })
    }
}
