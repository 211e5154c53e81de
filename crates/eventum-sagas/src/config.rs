//! The saga and reactor runners' tunables: every cache, heap, retry count and batch has a
//! bound here, with documented defaults.

use crate::error::StartError;

/// Configuration of a [`crate::SagaRunner`].
#[derive(Clone, Debug)]
pub struct SagaConfig {
    /// Instances kept in memory; the least recently used is dropped beyond this and
    /// reloaded from its stream when needed. Default 1024.
    pub cache_instances_max: usize,
    /// Instances worked on at the same time, each by its own task (one instance's work
    /// always runs in order). 1 handles one event at a time. Default 256.
    pub instances_in_flight_max: usize,
    /// Events received and not yet finished (running or queued behind their instance);
    /// the runner stops reading its source at this bound. Default 8192.
    pub events_in_flight_max: usize,
    /// Pending deadlines kept in the in-memory timer heap; the latest-due ones beyond this
    /// stay only in the deadline stream and are reloaded when the heap drains. Default 10 000.
    pub deadlines_in_memory_max: usize,
    /// Retries of a command that fails technically before the failure is handed to the
    /// saga as a rejection with code `failed`. Default 5.
    pub send_retries_max: u32,
    /// First delay between send retries; doubled each time. Default 20 ms.
    pub send_retry_delay_ms: u64,
    /// Longest delay between send retries. Default 1000 ms.
    pub send_retry_delay_ms_max: u64,
    /// Reloads after another writer changed an instance before the runner gives up.
    /// Default 5.
    pub conflict_retries_max: u32,
    /// Events handled between two checkpoint writes. Default 100.
    pub checkpoint_every_events: u64,
    /// Longest time a handled event waits for the checkpoint to cover it. Default 1000 ms.
    pub checkpoint_interval_ms: u64,
    /// Events one read of an instance or deadline stream fetches. Default 512.
    pub read_batch_events: usize,
    /// Registry records (one per new instance) appended together at most. One registry
    /// append is in flight at a time and the records of instances started meanwhile wait
    /// for the next; a full batch makes the runner wait for the append in flight. Also
    /// capped by the store's batch limits. Default 256.
    pub registry_batch_events_max: usize,
    /// Triggers one instance may handle; an instance that reaches it is failed, so a saga
    /// that loops cannot grow its stream without end. Default 10 000.
    pub instance_steps_max: u64,
    /// Actions one step may emit; more fails the instance. Default 64.
    pub step_actions_max: usize,
    /// Triggers chained inside one step's effects (a rejected command handled, whose
    /// reaction is rejected, ...) before the runner moves on. Default 64.
    pub chained_triggers_max: usize,
}

impl Default for SagaConfig {
    fn default() -> Self {
        Self {
            cache_instances_max: 1024,
            instances_in_flight_max: 256,
            events_in_flight_max: 8192,
            deadlines_in_memory_max: 10_000,
            send_retries_max: 5,
            send_retry_delay_ms: 20,
            send_retry_delay_ms_max: 1000,
            conflict_retries_max: 5,
            checkpoint_every_events: 100,
            checkpoint_interval_ms: 1000,
            read_batch_events: 512,
            registry_batch_events_max: 256,
            instance_steps_max: 10_000,
            step_actions_max: 64,
            chained_triggers_max: 64,
        }
    }
}

impl SagaConfig {
    /// Refuses zero sizes that would stall the runner.
    pub fn check(&self) -> Result<(), StartError> {
        let positive = [
            ("cache_instances_max", self.cache_instances_max as u64),
            (
                "instances_in_flight_max",
                self.instances_in_flight_max as u64,
            ),
            ("events_in_flight_max", self.events_in_flight_max as u64),
            (
                "deadlines_in_memory_max",
                self.deadlines_in_memory_max as u64,
            ),
            ("checkpoint_every_events", self.checkpoint_every_events),
            ("read_batch_events", self.read_batch_events as u64),
            (
                "registry_batch_events_max",
                self.registry_batch_events_max as u64,
            ),
            ("instance_steps_max", self.instance_steps_max),
            ("step_actions_max", self.step_actions_max as u64),
            ("chained_triggers_max", self.chained_triggers_max as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(StartError::Config(format!("{name} must be at least 1")));
            }
        }
        Ok(())
    }
}

/// Configuration of a [`crate::ReactorRunner`].
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// Retries of a command that fails technically; then the runner stops with an error
    /// and its checkpoint stays before the event. Default 5.
    pub send_retries_max: u32,
    /// First delay between send retries; doubled each time. Default 20 ms.
    pub send_retry_delay_ms: u64,
    /// Longest delay between send retries. Default 1000 ms.
    pub send_retry_delay_ms_max: u64,
    /// Events handled between two checkpoint writes. Default 100.
    pub checkpoint_every_events: u64,
    /// Longest time a handled event waits for the checkpoint to cover it. Default 1000 ms.
    pub checkpoint_interval_ms: u64,
    /// Commands one event may produce; more is a bug in the reactor and is refused.
    /// Default 64.
    pub commands_per_event_max: usize,
    /// Source streams reacted to at the same time, each by its own task (one stream's
    /// events always in order). 1 reacts to one event at a time. Default 256.
    pub streams_in_flight_max: usize,
    /// Events received and not yet reacted to; the runner stops reading its source at
    /// this bound. Default 8192.
    pub events_in_flight_max: usize,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        Self {
            send_retries_max: 5,
            send_retry_delay_ms: 20,
            send_retry_delay_ms_max: 1000,
            checkpoint_every_events: 100,
            checkpoint_interval_ms: 1000,
            commands_per_event_max: 64,
            streams_in_flight_max: 256,
            events_in_flight_max: 8192,
        }
    }
}

impl ReactorConfig {
    pub fn check(&self) -> Result<(), StartError> {
        if self.checkpoint_every_events == 0
            || self.commands_per_event_max == 0
            || self.streams_in_flight_max == 0
            || self.events_in_flight_max == 0
        {
            return Err(StartError::Config(
                "checkpoint_every_events, commands_per_event_max, streams_in_flight_max and \
                 events_in_flight_max must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The delay before retry `attempt` (0-based): doubling from `first_ms`, capped at `max_ms`.
pub(crate) fn retry_delay_ms(attempt: u32, first_ms: u64, max_ms: u64) -> u64 {
    first_ms.saturating_mul(1u64 << attempt.min(20)).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sizes_are_refused() {
        assert!(SagaConfig::default().check().is_ok());
        let c = SagaConfig {
            cache_instances_max: 0,
            ..SagaConfig::default()
        };
        assert!(matches!(c.check(), Err(StartError::Config(m)) if m.contains("cache")));
        assert!(ReactorConfig::default().check().is_ok());
    }

    #[test]
    fn retry_delay_doubles_and_caps() {
        assert_eq!(retry_delay_ms(0, 20, 1000), 20);
        assert_eq!(retry_delay_ms(2, 20, 1000), 80);
        assert_eq!(retry_delay_ms(30, 20, 1000), 1000);
    }
}
