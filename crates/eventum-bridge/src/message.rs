//! The broker-neutral message a relay publishes for one event: topic, key, CloudEvents
//! headers and body. Every sink adapter translates this one shape.

use bytes::Bytes;
use eventum_core::{EventId, RecordedEvent};

use crate::config::TopicMapping;

/// The CloudEvents spec version the headers follow.
pub const CE_SPEC_VERSION: &str = "1.0";

/// Header names, shared by every sink and by the inbound side.
pub mod header {
    pub const CE_ID: &str = "ce_id";
    pub const CE_TYPE: &str = "ce_type";
    pub const CE_SOURCE: &str = "ce_source";
    pub const CE_TIME: &str = "ce_time";
    pub const CE_SPECVERSION: &str = "ce_specversion";
    /// The stream id (the message key), as CloudEvents' `subject`.
    pub const CE_SUBJECT: &str = "ce_subject";
    pub const CE_DATACONTENTTYPE: &str = "ce_datacontenttype";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
    pub const EVENTUM_VERSION: &str = "eventum_version";
    pub const EVENTUM_POSITION: &str = "eventum_position";
    /// User metadata as JSON object text; absent when the event has none.
    pub const EVENTUM_METADATA: &str = "eventum_metadata";
}

/// Which headers a message carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderSet {
    /// Every header of [`header`] (the default).
    #[default]
    Full,
    /// Without the derivable ones — `ce_datacontenttype` (always JSON),
    /// `eventum_version` and `eventum_position` — for brokers where every header byte
    /// costs: about a quarter less header text per message.
    Compact,
}

impl std::str::FromStr for HeaderSet {
    type Err = crate::error::ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Self::Full),
            "compact" => Ok(Self::Compact),
            other => Err(crate::error::ConfigError::UnknownHeaderSet(
                other.to_owned(),
            )),
        }
    }
}

/// One event as a broker message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// From the relay's [`TopicMapping`]: `order-events` or `order-created`.
    pub topic: String,
    /// The stream id: one aggregate's messages share a key, so a broker that partitions
    /// by key keeps them in order.
    pub key: String,
    /// The event id: the deduplication id on every broker.
    pub id: EventId,
    /// The event's global position (sinks that need a monotonic id derive it from this).
    pub position: u64,
    /// CloudEvents attributes and correlation headers, names from [`header`].
    pub headers: Vec<(&'static str, String)>,
    /// The event data, JSON text.
    pub body: Bytes,
}

impl Message {
    /// The message for `event` under `mapping`, with `source` as `ce_source` and every
    /// header ([`HeaderSet::Full`]).
    pub fn from_event(event: &RecordedEvent, mapping: TopicMapping, source: &str) -> Self {
        Self::from_event_with(event, mapping, source, HeaderSet::Full)
    }

    /// The message for `event` with the headers of `set`.
    pub fn from_event_with(
        event: &RecordedEvent,
        mapping: TopicMapping,
        source: &str,
        set: HeaderSet,
    ) -> Self {
        let topic = match mapping {
            TopicMapping::Category => format!("{}-events", non_empty(kebab_case(event.category()))),
            TopicMapping::EventType => non_empty(kebab_case(&event.event_type)),
        };
        let mut headers = Vec::with_capacity(12);
        headers.extend([
            (header::CE_ID, event.id.to_string()),
            (header::CE_TYPE, event.event_type.clone()),
            (header::CE_SOURCE, source.to_owned()),
            (header::CE_TIME, event.recorded_at_rfc3339()),
            (header::CE_SPECVERSION, CE_SPEC_VERSION.to_owned()),
            (header::CE_SUBJECT, event.stream.clone()),
            (header::CORRELATION_ID, event.correlation_id.to_string()),
            (header::CAUSATION_ID, event.causation_id.to_string()),
        ]);
        if set == HeaderSet::Full {
            headers.extend([
                (header::CE_DATACONTENTTYPE, "application/json".to_owned()),
                (header::EVENTUM_VERSION, event.version.to_string()),
                (header::EVENTUM_POSITION, event.position.to_string()),
            ]);
        }
        if !event.metadata.is_empty() {
            // Stored metadata is compact JSON, so it holds no raw line breaks that a
            // text header (NATS) could not carry.
            headers.push((
                header::EVENTUM_METADATA,
                String::from_utf8_lossy(&event.metadata).into_owned(),
            ));
        }
        Self {
            topic,
            key: event.stream.clone(),
            id: event.id,
            position: event.position,
            headers,
            body: event.data.clone(),
        }
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn non_empty(s: String) -> String {
    if s.is_empty() {
        "unnamed".to_owned()
    } else {
        s
    }
}

/// `OrderCreated` → `order-created`, `HTTPRequestSent` → `http-request-sent`,
/// `order_created.v2` → `order-created-v2`. Only `[a-z0-9-]` remains, so the result is a
/// safe NATS subject token, Redis key part and AMQP routing-key word.
pub fn kebab_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && i > 0 {
                let prev = chars[i - 1];
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
                let boundary = prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_lower);
                if boundary && !out.ends_with('-') {
                    out.push('-');
                }
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn kebab_case_splits_words() {
        assert_eq!(kebab_case("OrderCreated"), "order-created");
        assert_eq!(kebab_case("HTTPRequestSent"), "http-request-sent");
        assert_eq!(kebab_case("order_created.v2"), "order-created-v2");
        assert_eq!(kebab_case("order"), "order");
        assert_eq!(kebab_case("Payment3DSecured"), "payment3-d-secured");
        assert_eq!(kebab_case("a > *b"), "a-b");
        assert_eq!(kebab_case("$$"), "");
    }

    fn event() -> RecordedEvent {
        RecordedEvent {
            stream: "order-42".into(),
            version: 3,
            position: 17,
            recorded_at_us: 1_700_000_000_123_456,
            id: Uuid::now_v7(),
            event_type: "OrderCreated".into(),
            data: Bytes::from_static(br#"{"total":5}"#),
            metadata: Bytes::from_static(br#"{"user":"u1"}"#),
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
        }
    }

    #[test]
    fn message_carries_cloudevents_headers_key_and_body() {
        let e = event();
        let m = Message::from_event(&e, TopicMapping::Category, "shop");
        assert_eq!(m.topic, "order-events");
        assert_eq!(m.key, "order-42");
        assert_eq!(m.id, e.id);
        assert_eq!(m.body, e.data);
        assert_eq!(m.header(header::CE_ID), Some(e.id.to_string().as_str()));
        assert_eq!(m.header(header::CE_TYPE), Some("OrderCreated"));
        assert_eq!(m.header(header::CE_SOURCE), Some("shop"));
        assert_eq!(
            m.header(header::CE_TIME),
            Some("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(m.header(header::CE_SPECVERSION), Some("1.0"));
        let corr = e.correlation_id.to_string();
        assert_eq!(m.header(header::CORRELATION_ID), Some(corr.as_str()));
        let caus = e.causation_id.to_string();
        assert_eq!(m.header(header::CAUSATION_ID), Some(caus.as_str()));
        assert_eq!(m.header(header::EVENTUM_METADATA), Some(r#"{"user":"u1"}"#));
        let by_type = Message::from_event(&e, TopicMapping::EventType, "shop");
        assert_eq!(by_type.topic, "order-created");
        assert_eq!(m.header(header::EVENTUM_POSITION), Some("17"));
        let compact =
            Message::from_event_with(&e, TopicMapping::Category, "shop", HeaderSet::Compact);
        assert_eq!(compact.header(header::EVENTUM_POSITION), None);
        assert_eq!(compact.header(header::CE_DATACONTENTTYPE), None);
        for required in [
            header::CE_ID,
            header::CE_TYPE,
            header::CE_SOURCE,
            header::CE_TIME,
            header::CE_SPECVERSION,
            header::CE_SUBJECT,
            header::CORRELATION_ID,
            header::CAUSATION_ID,
        ] {
            assert_eq!(compact.header(required), m.header(required), "{required}");
        }
    }
}
