//! What a group is configured with: its target, start, ordering, retry and timeout
//! settings ([`GroupSettings`], per group) and the service-wide bounds ([`GroupsConfig`]),
//! with the validation that keeps every value inside them.

use eventum_core::{StreamName, SubscriptionTarget};
use serde::{Deserialize, Serialize};

/// Longest group name, in bytes. Names become part of system stream names and URLs.
pub const GROUP_NAME_BYTES_MAX: usize = 100;
/// Longest consumer id, in bytes.
pub const CONSUMER_ID_BYTES_MAX: usize = 128;

/// What a group follows. JSON: `{"stream": "order-1"}`, `{"category": "order"}` or `"all"`.
/// `all` skips system streams (names starting with `$`), so that a group never consumes
/// its own checkpoints and dead letters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupTarget {
    Stream(String),
    Category(String),
    All,
}

impl GroupTarget {
    /// The store subscription target; fails on a stream or category name that is invalid.
    pub fn to_subscription(&self) -> Result<SubscriptionTarget, String> {
        match self {
            GroupTarget::Stream(s) => StreamName::new(s.clone())
                .map(SubscriptionTarget::Stream)
                .map_err(|e| format!("target stream: {e}")),
            GroupTarget::Category(c) => {
                if c.is_empty()
                    || c.contains('-')
                    || c.starts_with('$')
                    || c.chars().any(char::is_control)
                {
                    return Err(format!(
                        "target category {c:?} must be non-empty, without '-', a leading '$' or control characters"
                    ));
                }
                Ok(SubscriptionTarget::Category(c.clone()))
            }
            GroupTarget::All => Ok(SubscriptionTarget::All),
        }
    }
}

/// Where a new group starts. JSON: `"start"` (default), `"end"` or a global position.
/// `end` is resolved to a position when the group is created, so that it means the same
/// after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartFrom {
    #[default]
    Start,
    End,
    Position(u64),
}

impl Serialize for StartFrom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StartFrom::Start => s.serialize_str("start"),
            StartFrom::End => s.serialize_str("end"),
            StartFrom::Position(p) => s.serialize_u64(*p),
        }
    }
}

impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(u64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Number(n) => Ok(StartFrom::Position(n)),
            Wire::Text(t) if t == "start" => Ok(StartFrom::Start),
            Wire::Text(t) if t == "end" => Ok(StartFrom::End),
            Wire::Text(t) => Err(serde::de::Error::custom(format!(
                "from must be \"start\", \"end\" or a non-negative position, got {t:?}"
            ))),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_delay_ms_base() -> u64 {
    100
}
fn default_retry_delay_ms_max() -> u64 {
    30_000
}
fn default_ack_timeout_ms() -> u64 {
    30_000
}
fn default_in_flight_max() -> usize {
    1_000
}
fn default_buffer_events_max() -> usize {
    10_000
}

/// One group's settings. Every field but `target` has a documented default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    pub target: GroupTarget,
    /// Default `start`.
    #[serde(default)]
    pub from: StartFrom,
    /// Default `true`: a stream's next event is not handed out while an earlier one of the
    /// same stream is in flight, scheduled for retry or parked (it is then parked behind
    /// it). `false`: events are handed out as they come and failures do not hold others.
    #[serde(default = "default_true")]
    pub ordered: bool,
    /// Deliveries of one event before it is parked (default 5, at least 1).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry; each further retry doubles it (default 100 ms).
    #[serde(default = "default_retry_delay_ms_base")]
    pub retry_delay_ms_base: u64,
    /// Longest delay between retries (default 30,000 ms).
    #[serde(default = "default_retry_delay_ms_max")]
    pub retry_delay_ms_max: u64,
    /// A delivery not acked or nacked within this is redelivered, counting as an attempt
    /// (default 30,000 ms).
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// Most deliveries in flight at once across all consumers (default 1,000).
    #[serde(default = "default_in_flight_max")]
    pub in_flight_max: usize,
    /// Most events read ahead and held in memory waiting for delivery (default 10,000).
    #[serde(default = "default_buffer_events_max")]
    pub buffer_events_max: usize,
}

impl GroupSettings {
    /// Settings with every default, following `target`.
    pub fn new(target: GroupTarget) -> Self {
        Self {
            target,
            from: StartFrom::Start,
            ordered: true,
            max_attempts: default_max_attempts(),
            retry_delay_ms_base: default_retry_delay_ms_base(),
            retry_delay_ms_max: default_retry_delay_ms_max(),
            ack_timeout_ms: default_ack_timeout_ms(),
            in_flight_max: default_in_flight_max(),
            buffer_events_max: default_buffer_events_max(),
        }
    }

    /// Checks every value against `config`'s bounds; the message names the field.
    pub fn validate(&self, config: &GroupsConfig) -> Result<(), String> {
        self.target.to_subscription()?;
        let range = |field: &str, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi {
                Err(format!("{field} is {v}; it must be in {lo}..={hi}"))
            } else {
                Ok(())
            }
        };
        range(
            "max_attempts",
            u64::from(self.max_attempts),
            1,
            u64::from(config.max_attempts_cap),
        )?;
        range(
            "retry_delay_ms_base",
            self.retry_delay_ms_base,
            1,
            config.retry_delay_ms_cap,
        )?;
        range(
            "retry_delay_ms_max",
            self.retry_delay_ms_max,
            self.retry_delay_ms_base,
            config.retry_delay_ms_cap,
        )?;
        range(
            "ack_timeout_ms",
            self.ack_timeout_ms,
            1,
            config.ack_timeout_ms_cap,
        )?;
        range(
            "in_flight_max",
            self.in_flight_max as u64,
            1,
            config.in_flight_max_cap as u64,
        )?;
        range(
            "buffer_events_max",
            self.buffer_events_max as u64,
            1,
            config.buffer_events_max_cap as u64,
        )?;
        Ok(())
    }
}

/// Checks a group name: 1..=100 bytes of ASCII letters, digits, `_`, `.` and `-`, so that
/// it is safe in system stream names and URL paths.
pub fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > GROUP_NAME_BYTES_MAX {
        return Err(format!(
            "group name must be 1..={GROUP_NAME_BYTES_MAX} bytes, got {}",
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "group name {name:?} may hold only ASCII letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// Checks a consumer id: 1..=128 bytes, no control characters.
pub fn check_consumer_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > CONSUMER_ID_BYTES_MAX || id.chars().any(char::is_control) {
        return Err(format!(
            "consumer id must be 1..={CONSUMER_ID_BYTES_MAX} bytes without control characters"
        ));
    }
    Ok(())
}

/// Service-wide bounds and timings. Every queue and batch of the service is bounded by a
/// field here or in [`GroupSettings`].
#[derive(Clone, Debug)]
pub struct GroupsConfig {
    /// Most groups (default 1,000).
    pub groups_max: usize,
    /// Most consumers polling one group at once (default 100). A consumer that has not
    /// polled for `consumer_idle_ms` no longer counts.
    pub consumers_per_group_max: usize,
    /// Default 60,000 ms.
    pub consumer_idle_ms: u64,
    /// Most deliveries one receive returns (default 1,000).
    pub receive_events_max: usize,
    /// Longest long-poll wait of a receive (default 30,000 ms).
    pub receive_wait_ms_max: u64,
    /// Most tokens in one ack (default 10,000).
    pub ack_tokens_max: usize,
    /// Most bytes of a nack reason (default 4,096).
    pub reason_bytes_max: usize,
    /// Events the reader takes from the store subscription at a time (default 1,024).
    pub read_batch_events: usize,
    /// Write the checkpoint after this many acks (default 10,000)...
    pub checkpoint_every_acks: u64,
    /// ...or this often when it moved (default 1,000 ms); also on shutdown. This is also
    /// the period at which expired deliveries are swept when no consumer polls.
    pub checkpoint_interval_ms: u64,
    /// Unresolved parked events one group keeps; at the limit the group stops handing out
    /// new events until some are replayed (default 10,000).
    pub parked_events_max: usize,
    /// Most parked events one listing returns (default 1,000).
    pub parked_list_max: usize,
    /// Upper bounds of the per-group settings.
    pub max_attempts_cap: u32,
    pub retry_delay_ms_cap: u64,
    pub ack_timeout_ms_cap: u64,
    pub in_flight_max_cap: usize,
    pub buffer_events_max_cap: usize,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            groups_max: 1_000,
            consumers_per_group_max: 100,
            consumer_idle_ms: 60_000,
            receive_events_max: 1_000,
            receive_wait_ms_max: 30_000,
            ack_tokens_max: 10_000,
            reason_bytes_max: 4_096,
            read_batch_events: 1_024,
            checkpoint_every_acks: 10_000,
            checkpoint_interval_ms: 1_000,
            parked_events_max: 10_000,
            parked_list_max: 1_000,
            max_attempts_cap: 100,
            retry_delay_ms_cap: 3_600_000,
            ack_timeout_ms_cap: 3_600_000,
            in_flight_max_cap: 100_000,
            buffer_events_max_cap: 1_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn target_and_from_wire_forms() {
        let s: GroupSettings =
            serde_json::from_value(json!({"target": {"category": "order"}, "from": "end"}))
                .unwrap();
        assert_eq!(s.target, GroupTarget::Category("order".into()));
        assert_eq!(s.from, StartFrom::End);
        assert!(s.ordered);
        let s: GroupSettings =
            serde_json::from_value(json!({"target": "all", "from": 7, "ordered": false})).unwrap();
        assert_eq!(s.target, GroupTarget::All);
        assert_eq!(s.from, StartFrom::Position(7));
        assert!(
            serde_json::from_value::<GroupSettings>(json!({"target": "all", "from": "x"})).is_err()
        );
        assert!(
            serde_json::from_value::<GroupSettings>(json!({"target": "all", "bogus": 1})).is_err()
        );
        assert_eq!(
            serde_json::to_value(GroupTarget::Stream("a-1".into())).unwrap(),
            json!({"stream": "a-1"})
        );
    }

    #[test]
    fn validation_names_the_field() {
        let c = GroupsConfig::default();
        let mut s = GroupSettings::new(GroupTarget::All);
        assert!(s.validate(&c).is_ok());
        s.max_attempts = 0;
        assert!(s.validate(&c).unwrap_err().contains("max_attempts"));
        s.max_attempts = 3;
        s.retry_delay_ms_max = s.retry_delay_ms_base - 1;
        assert!(s.validate(&c).unwrap_err().contains("retry_delay_ms_max"));
        let s = GroupSettings::new(GroupTarget::Category("a-b".into()));
        assert!(s.validate(&c).unwrap_err().contains("category"));
        let s = GroupSettings::new(GroupTarget::Stream("$x".into()));
        assert!(s.validate(&c).is_err());
    }

    #[test]
    fn names() {
        assert!(check_group_name("billing.v2-A_1").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("a/b").is_err());
        assert!(check_group_name(&"a".repeat(101)).is_err());
        assert!(check_consumer_id("c1").is_ok());
        assert!(check_consumer_id("a\nb").is_err());
    }
}
