//! The relay's configuration: topic mapping, batch and retry bounds, with documented
//! defaults and one validation step before anything runs.

use std::time::Duration;

use crate::error::ConfigError;
use crate::message::HeaderSet;

/// How events map to broker topics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TopicMapping {
    /// One topic per stream category: `order-42` → `order-events`.
    #[default]
    Category,
    /// One topic per event type in kebab-case: `OrderCreated` → `order-created`.
    EventType,
}

impl std::str::FromStr for TopicMapping {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "category" => Ok(Self::Category),
            "type" | "event-type" => Ok(Self::EventType),
            other => Err(ConfigError::UnknownTopicMapping(other.to_owned())),
        }
    }
}

/// Longest relay name accepted, in bytes (it becomes part of a system stream name).
pub const RELAY_NAME_BYTES_MAX: usize = 64;

/// A relay's settings. Every queue, batch and retry is bounded here.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Names the checkpoint stream `$bridge-{name}-checkpoint`; `[a-z0-9_-]`, at most
    /// [`RELAY_NAME_BYTES_MAX`] bytes.
    pub name: String,
    /// Default: [`TopicMapping::Category`].
    pub topics: TopicMapping,
    /// The CloudEvents `ce_source` of every message. Default `eventum`.
    pub source: String,
    /// Which headers messages carry. Default [`HeaderSet::Full`].
    pub headers: HeaderSet,
    /// Most events handed to the sink in one batch. Default 512.
    pub batch_events_max: usize,
    /// Batches sent and not yet acknowledged at once: while the broker acknowledges one,
    /// the next ones are on their way. At most `batch_events_max × batches_in_flight_max`
    /// messages are unacknowledged; keep a NATS sink's `acks_in_flight_max` and a Kafka
    /// sink's `queue_messages_max` at least that. Default 4; 1 sends one batch at a time.
    pub batches_in_flight_max: usize,
    /// How long a batch waits for more events once it has one. Default 2 ms.
    pub batch_linger_ms: u64,
    /// First retry delay after a failed publish; doubles per attempt. Default 100 ms.
    pub retry_delay_ms_min: u64,
    /// Cap of the retry delay. Default 5,000 ms.
    pub retry_delay_ms_max: u64,
    /// Failed publish attempts of one batch before the relay stops with an error. `None`
    /// (the default) retries until the broker is back: an outage must not lose events,
    /// and the checkpoint has not moved, so nothing would be gained by giving up.
    pub retry_attempts_max: Option<u32>,
    /// Least time between two checkpoint writes. Default 200 ms. A longer interval
    /// means fewer store writes and more re-sent (deduplicated) messages after a crash.
    pub checkpoint_interval_ms: u64,
    /// Checkpoint records kept visible in the checkpoint stream. Default 16.
    pub checkpoint_records_kept: u64,
    /// Relay events of `$`-prefixed system streams too. Default false.
    pub include_system_streams: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            topics: TopicMapping::Category,
            source: "eventum".into(),
            headers: HeaderSet::Full,
            batch_events_max: 512,
            batches_in_flight_max: 4,
            batch_linger_ms: 2,
            retry_delay_ms_min: 100,
            retry_delay_ms_max: 5_000,
            retry_attempts_max: None,
            checkpoint_interval_ms: 200,
            checkpoint_records_kept: 16,
            include_system_streams: false,
        }
    }
}

impl RelayConfig {
    /// A default configuration with this name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Checks every field; a relay never starts on a bad configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= RELAY_NAME_BYTES_MAX
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(ConfigError::BadName(self.name.clone()));
        }
        if self.source.is_empty() {
            return Err(ConfigError::Zero("source"));
        }
        if self.batch_events_max == 0 {
            return Err(ConfigError::Zero("batch_events_max"));
        }
        if self.batches_in_flight_max == 0 {
            return Err(ConfigError::Zero("batches_in_flight_max"));
        }
        if self.retry_delay_ms_min == 0 {
            return Err(ConfigError::Zero("retry_delay_ms_min"));
        }
        if self.retry_delay_ms_max < self.retry_delay_ms_min {
            return Err(ConfigError::RetryDelays {
                min_ms: self.retry_delay_ms_min,
                max_ms: self.retry_delay_ms_max,
            });
        }
        if self.retry_attempts_max == Some(0) {
            return Err(ConfigError::Zero("retry_attempts_max"));
        }
        if self.checkpoint_records_kept == 0 {
            return Err(ConfigError::Zero("checkpoint_records_kept"));
        }
        Ok(())
    }

    pub(crate) fn checkpoint_stream(&self) -> String {
        format!("$bridge-{}-checkpoint", self.name)
    }

    /// The delay before retry number `attempt` (1-based): doubling from the minimum,
    /// capped at the maximum.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(30);
        let ms = self
            .retry_delay_ms_min
            .saturating_mul(factor)
            .min(self.retry_delay_ms_max);
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_bad_settings() {
        assert!(RelayConfig::default().validate().is_ok());
        for bad in ["", "Upper", "a b", "$x", &"x".repeat(65)] {
            assert!(matches!(
                RelayConfig::named(bad).validate(),
                Err(ConfigError::BadName(_))
            ));
        }
        let c = RelayConfig {
            batch_events_max: 0,
            ..RelayConfig::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Zero("batch_events_max")));
        let c = RelayConfig {
            retry_delay_ms_max: 10,
            ..RelayConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::RetryDelays { .. })));
    }

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let c = RelayConfig::default();
        assert_eq!(c.retry_delay(1), Duration::from_millis(100));
        assert_eq!(c.retry_delay(2), Duration::from_millis(200));
        assert_eq!(c.retry_delay(6), Duration::from_millis(3_200));
        assert_eq!(c.retry_delay(7), Duration::from_millis(5_000));
        assert_eq!(c.retry_delay(u32::MAX), Duration::from_millis(5_000));
    }

    #[test]
    fn topic_mapping_parses() {
        assert_eq!("category".parse(), Ok(TopicMapping::Category));
        assert_eq!("type".parse(), Ok(TopicMapping::EventType));
        assert!("x".parse::<TopicMapping>().is_err());
    }
}
