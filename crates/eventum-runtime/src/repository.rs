//! Loads aggregates (snapshot + the events after it, or the cache), runs `decide`, and
//! appends the result with the loaded version as the expected version, retrying on a
//! conflict. Command ids travel in event metadata, so a repeated command is recognised
//! from the aggregate's own stream, durably and atomically with its effects.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventum_core::{
    AppendError, CommandAccepted, EventStore, ExpectedVersion, NewEvent, ReadDirection, ReadError,
    StreamName,
};
use lru::LruCache;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::aggregate::{Aggregate, DomainError};
use crate::codec::{decode_event, encode_event};
use crate::command::{Command, CommandContext};
use crate::config::RepositoryConfig;
use crate::error::DispatchError;
use crate::loaded::{CommandOutcome, Loaded, META_COMMAND_ID, META_COMMAND_TYPE};
use crate::snapshot;

/// The store access of one aggregate type.
pub struct Repository<A: Aggregate> {
    store: Arc<dyn EventStore>,
    config: RepositoryConfig,
    cache: Mutex<LruCache<String, Loaded<A>>>,
    locks: Box<[tokio::sync::Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
    snapshot_slots: Arc<Semaphore>,
}

impl<A: Aggregate> Repository<A> {
    pub fn new(store: Arc<dyn EventStore>, config: RepositoryConfig) -> Self {
        let cache_max = NonZeroUsize::new(config.cache_aggregates_max.max(1)).expect("≥ 1");
        let locks = (0..config.lock_stripes.max(1))
            .map(|_| tokio::sync::Mutex::new(()))
            .collect();
        Self {
            store,
            snapshot_slots: Arc::new(Semaphore::new(config.snapshot_writes_in_flight_max)),
            config,
            cache: Mutex::new(LruCache::new(cache_max)),
            locks,
            hasher: Default::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The stream of aggregate `id`.
    pub fn stream_of(id: &str) -> Result<StreamName, DispatchError> {
        StreamName::new(format!("{}-{id}", A::CATEGORY))
            .map_err(|e| DispatchError::Invalid(format!("aggregate id {id:?}: {e}")))
    }

    /// The current state of aggregate `id`, read from the store (the cache is bypassed,
    /// so this also sees other processes' writes).
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, DispatchError> {
        let stream = Self::stream_of(id)?;
        self.load_stream(&stream).await
    }

    /// Runs `command` on its aggregate: load, decide, append with the loaded version as
    /// the expected version; on a conflict reload and decide again, at most
    /// `conflict_attempts_max` times.
    pub async fn execute(
        &self,
        command: &A::Command,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError> {
        let stream = Self::stream_of(&A::aggregate_id(command))?;
        let stream_ref = &stream;
        self.with_attempts(
            &stream,
            |loaded| self.try_once(stream_ref, loaded, command, ctx),
            |result| matches!(result, Err(DispatchError::Rejected { .. })),
        )
        .await
    }

    /// Runs `attempt` on the aggregate's loaded state, under the aggregate's turn, until
    /// it does not meet a version conflict, at most `conflict_attempts_max` times with
    /// jittered exponential backoff. When a state taken from the cache gives an outcome
    /// `refused` calls a refusal, it is decided again on fresh state: another process may
    /// have moved the aggregate on, and a stale copy that accepts is caught by the
    /// expected version, but one that refuses would never reach the store.
    async fn with_attempts<T, F, Fut>(
        &self,
        stream: &StreamName,
        mut attempt: F,
        refused: impl Fn(&Result<T, DispatchError>) -> bool,
    ) -> Result<T, DispatchError>
    where
        F: FnMut(Loaded<A>) -> Fut,
        Fut: Future<Output = Result<T, DispatchError>>,
    {
        // Commands to one aggregate in this process take turns, so they never conflict
        // with each other; other processes are caught by the expected version.
        let _turn = self.locks[self.stripe(stream.as_str())].lock().await;
        let mut delay = self.config.conflict_delay_initial;
        let attempts = self.config.conflict_attempts_max.max(1);
        for n in 1..=attempts {
            let (loaded, from_cache) = match self.cached(stream) {
                Some(loaded) => (loaded, true),
                None => (self.load_stream(stream).await?, false),
            };
            let mut result = attempt(loaded).await;
            if from_cache && refused(&result) {
                let fresh = self.load_stream(stream).await?;
                result = attempt(fresh).await;
            }
            match result {
                Err(DispatchError::Conflict { .. }) if n < attempts => {
                    self.forget(stream);
                    tokio::time::sleep(jittered(delay)).await;
                    delay = (delay * 2).min(self.config.conflict_delay_max);
                }
                Err(DispatchError::Conflict { stream, .. }) => {
                    self.forget_named(&stream);
                    return Err(DispatchError::Conflict { stream, attempts });
                }
                other => return other,
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Runs several commands on one aggregate with a single append: each is decided on
    /// the state the previous ones left (a refused one is left out and reported), and the
    /// events of all accepted ones are appended together, with the loaded version as the
    /// expected version. For hot aggregates (a product in a flash sale): one write and one
    /// sync for many commands. Returns one outcome per command, in order. Every command
    /// must address the same aggregate.
    pub async fn execute_batch(
        &self,
        commands: &[(A::Command, CommandContext)],
    ) -> Result<Vec<Result<CommandAccepted, DispatchError>>, DispatchError> {
        let Some((first, _)) = commands.first() else {
            return Ok(Vec::new());
        };
        let id = A::aggregate_id(first);
        if commands.iter().any(|(c, _)| A::aggregate_id(c) != id) {
            return Err(DispatchError::Invalid(
                "a batch must address one aggregate".into(),
            ));
        }
        let stream = Self::stream_of(&id)?;
        let stream_ref = &stream;
        // A batch that was partly appended and is re-run on fresh state finds the
        // appended commands' ids among the aggregate's recent commands.
        self.with_attempts(
            &stream,
            |loaded| self.try_batch(stream_ref, loaded, commands),
            |result| {
                matches!(result, Ok(outcomes) if outcomes
                    .iter()
                    .any(|o| matches!(o, Err(DispatchError::Rejected { .. }))))
            },
        )
        .await
    }

    async fn try_batch(
        &self,
        stream: &StreamName,
        mut loaded: Loaded<A>,
        commands: &[(A::Command, CommandContext)],
    ) -> Result<Vec<Result<CommandAccepted, DispatchError>>, DispatchError> {
        let mut outcomes: Vec<Result<CommandAccepted, DispatchError>> = Vec::new();
        // Taken, not cloned: a hot aggregate's state may be large, and on a failed append
        // this copy is dropped anyway (the cache forgets the stream).
        let mut state = std::mem::take(&mut loaded.state);
        let mut new_events = Vec::new();
        // (outcome index, events of that command), for the accepted ones with events.
        let mut appended: Vec<(usize, usize, Uuid)> = Vec::new();
        for (command, ctx) in commands {
            if let Some(outcome) = loaded.recent.find(ctx.meta.command_id) {
                outcomes.push(Ok(outcome.accepted(stream.as_str(), true)));
                continue;
            }
            match state.decide(command) {
                Err(e) => outcomes.push(Err(DispatchError::Rejected {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                })),
                Ok(events) if events.is_empty() => outcomes.push(Ok(CommandAccepted {
                    stream: stream.as_str().to_owned(),
                    version: loaded.version,
                    position: None,
                    event_ids: Vec::new(),
                    duplicate: false,
                })),
                Ok(events) => {
                    new_events.extend(self.to_store_events(&events, command, ctx)?);
                    for event in &events {
                        state = state.evolve(event);
                    }
                    appended.push((outcomes.len(), events.len(), ctx.meta.command_id));
                    // Filled in after the append.
                    outcomes.push(Ok(CommandAccepted {
                        stream: stream.as_str().to_owned(),
                        version: None,
                        position: None,
                        event_ids: Vec::new(),
                        duplicate: false,
                    }));
                }
            }
        }
        if new_events.is_empty() {
            loaded.state = state;
            self.cache
                .lock()
                .expect("cache lock")
                .put(stream.as_str().to_owned(), loaded);
            return Ok(outcomes);
        }
        let total = new_events.len() as u64;
        let ids: Vec<Uuid> = new_events.iter().map(NewEvent::id).collect();
        let expected = match loaded.version {
            Some(v) => ExpectedVersion::Exact(v),
            None => ExpectedVersion::NoStream,
        };
        let result = match self.store.append(stream, expected, new_events).await {
            Ok(result) => result,
            Err(e) => {
                self.forget(stream);
                return Err(match e {
                    AppendError::WrongExpectedVersion { stream, .. } => DispatchError::Conflict {
                        stream,
                        attempts: 1,
                    },
                    other => DispatchError::from_append(other),
                });
            }
        };
        // One atomic append: its events have consecutive versions and positions.
        let first_version = result.next_expected_version + 1 - total;
        let first_position = result.position + 1 - total;
        let old_version = loaded.version;
        let mut offset = 0u64;
        for (index, count, command_id) in appended {
            let count = count as u64;
            let outcome = CommandOutcome {
                command_id,
                last_version: first_version + offset + count - 1,
                last_position: first_position + offset + count - 1,
                event_ids: ids[offset as usize..(offset + count) as usize].to_vec(),
            };
            outcomes[index] = Ok(outcome.accepted(stream.as_str(), false));
            loaded
                .recent
                .push(outcome, self.config.idempotency_commands_per_aggregate);
            offset += count;
        }
        loaded.state = state;
        loaded.version = Some(result.next_expected_version);
        self.maybe_snapshot(stream, old_version, &loaded);
        self.cache
            .lock()
            .expect("cache lock")
            .put(stream.as_str().to_owned(), loaded);
        Ok(outcomes)
    }

    async fn try_once(
        &self,
        stream: &StreamName,
        mut loaded: Loaded<A>,
        command: &A::Command,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError> {
        if let Some(outcome) = loaded.recent.find(ctx.meta.command_id) {
            return Ok(outcome.accepted(stream.as_str(), true));
        }
        let domain_events = loaded
            .state
            .decide(command)
            .map_err(|e| DispatchError::Rejected {
                code: e.code().to_owned(),
                message: e.to_string(),
            })?;
        if domain_events.is_empty() {
            return Ok(CommandAccepted {
                stream: stream.as_str().to_owned(),
                version: loaded.version,
                position: None,
                event_ids: Vec::new(),
                duplicate: false,
            });
        }
        let new_events = self.to_store_events(&domain_events, command, ctx)?;
        let event_ids: Vec<Uuid> = new_events.iter().map(NewEvent::id).collect();
        let expected = match loaded.version {
            Some(v) => ExpectedVersion::Exact(v),
            None => ExpectedVersion::NoStream,
        };
        let result = match self.store.append(stream, expected, new_events).await {
            Ok(result) => result,
            Err(e) => {
                // Whatever happened, the cached copy may be stale now.
                self.forget(stream);
                return Err(match e {
                    AppendError::WrongExpectedVersion { stream, .. } => DispatchError::Conflict {
                        stream,
                        attempts: 1,
                    },
                    other => DispatchError::from_append(other),
                });
            }
        };
        let old_version = loaded.version;
        for event in &domain_events {
            loaded.state = loaded.state.evolve(event);
        }
        loaded.version = Some(result.next_expected_version);
        let outcome = CommandOutcome {
            command_id: ctx.meta.command_id,
            last_version: result.next_expected_version,
            last_position: result.position,
            event_ids,
        };
        let accepted = outcome.accepted(stream.as_str(), false);
        loaded
            .recent
            .push(outcome, self.config.idempotency_commands_per_aggregate);
        self.maybe_snapshot(stream, old_version, &loaded);
        self.cache
            .lock()
            .expect("cache lock")
            .put(stream.as_str().to_owned(), loaded);
        Ok(accepted)
    }

    /// Domain events as store events: ids derived from the command id (so that a blind
    /// retry of the same append is recognised by the store), the command's id and type in
    /// metadata, correlation and causation from the command.
    fn to_store_events(
        &self,
        events: &[A::Event],
        command: &A::Command,
        ctx: &CommandContext,
    ) -> Result<Vec<NewEvent>, DispatchError> {
        let metadata = serde_json::json!({
            META_COMMAND_ID: ctx.meta.command_id,
            META_COMMAND_TYPE: command.command_type(),
        });
        let causation = ctx.causation();
        events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let id = Uuid::new_v5(&ctx.meta.command_id, &(index as u64).to_le_bytes());
                let new = encode_event(event)
                    .map_err(|e| DispatchError::Invalid(format!("event does not encode: {e}")))?
                    .with_id(id)
                    .with_metadata(metadata.clone())
                    .map_err(|e| DispatchError::Invalid(e.to_string()))?;
                Ok(causation.stamp(new))
            })
            .collect()
    }

    async fn load_stream(&self, stream: &StreamName) -> Result<Loaded<A>, DispatchError> {
        // Without snapshots configured, no snapshot read: short-lived aggregates (an order,
        // a payment) save a lookup per load. A snapshot left by an earlier configuration
        // is only an optimisation, so ignoring it is correct.
        let snapshot = match self.config.snapshot_every_events {
            Some(_) => {
                snapshot::load::<A>(self.store.as_ref(), stream, A::SNAPSHOT_SCHEMA_VERSION).await
            }
            None => None,
        };
        let mut loaded = snapshot.unwrap_or_else(Loaded::empty);
        let page = self
            .config
            .load_page_events
            .clamp(1, self.store.limits().read_events_max);
        loop {
            let from = loaded.version.map_or(0, |v| v + 1);
            let events = match self
                .store
                .read_stream(stream, Some(from), ReadDirection::Forward, page)
                .await
            {
                Ok(events) => events,
                Err(ReadError::StreamNotFound { .. }) if loaded.version.is_none() => {
                    return Ok(loaded);
                }
                Err(ReadError::StreamNotFound { .. }) => {
                    // A snapshot of a stream that no longer has events: trust the log.
                    return Ok(Loaded::empty());
                }
                Err(e) => return Err(DispatchError::from_read(e)),
            };
            let full = events.len() == page;
            for event in &events {
                let domain: A::Event =
                    decode_event(event).map_err(|e| DispatchError::Undecodable {
                        stream: stream.as_str().to_owned(),
                        version: event.version,
                        message: e.to_string(),
                    })?;
                loaded.state = std::mem::take(&mut loaded.state).evolve(&domain);
                loaded.version = Some(event.version);
                loaded
                    .recent
                    .record_event(event, self.config.idempotency_commands_per_aggregate);
            }
            if !full {
                return Ok(loaded);
            }
        }
    }

    fn maybe_snapshot(&self, stream: &StreamName, old: Option<u64>, loaded: &Loaded<A>) {
        let (Some(every), Some(new)) = (self.config.snapshot_every_events, loaded.version) else {
            return;
        };
        let every = every.max(1);
        let crossed = old.map_or(0, |v| (v + 1) / every) < (new + 1) / every;
        if !crossed {
            return;
        }
        // A bounded number of snapshot writes run beside the commands; when all slots are
        // busy this boundary is skipped and the next one tries again.
        let Ok(slot) = self.snapshot_slots.clone().try_acquire_owned() else {
            return;
        };
        let store = self.store.clone();
        let stream = stream.clone();
        let loaded = loaded.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let saved =
                snapshot::save(store.as_ref(), &stream, A::SNAPSHOT_SCHEMA_VERSION, &loaded).await;
            if let Err(e) = saved {
                tracing::warn!(stream = %stream, error = %e, "snapshot not written");
            }
        });
    }

    /// Takes the cached copy out (no clone): while this command holds the aggregate's
    /// turn nobody else in this process needs it, and it is put back only on success.
    fn cached(&self, stream: &StreamName) -> Option<Loaded<A>> {
        self.cache.lock().expect("cache lock").pop(stream.as_str())
    }

    fn forget(&self, stream: &StreamName) {
        self.forget_named(stream.as_str());
    }

    fn forget_named(&self, stream: &str) {
        self.cache.lock().expect("cache lock").pop(stream);
    }

    fn stripe(&self, stream: &str) -> usize {
        (self.hasher.hash_one(stream) as usize) % self.locks.len()
    }
}

/// `delay` scaled by a random factor in [0.5, 1.5).
fn jittered(delay: Duration) -> Duration {
    let r = Uuid::now_v7().as_u128() as u64 % 1000;
    delay.mul_f64(0.5 + r as f64 / 1000.0)
}
