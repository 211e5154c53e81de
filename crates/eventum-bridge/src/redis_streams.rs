//! The Redis Streams sink: one stream key per topic (`{prefix}:{topic}`), one entry per
//! event with the event id as a field, and deduplication by entry id: an entry's id is
//! `{position}-1`, and Redis refuses an id at or below a stream's top, so a re-sent
//! event is dropped. One Lua script adds a whole batch atomically in one round trip.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::error::SinkError;
use crate::message::Message;
use crate::sink::Sink;

/// Adds each message unless its id is at or below its stream's top (already there).
/// KEYS: one stream key per message. ARGV[1]: approximate length cap; then per message:
/// entry id, field-pair count n, then n field/value pairs.
const ADD_BATCH: &str = r#"
local cap = ARGV[1]
local a = 2
local added = 0
for _, key in ipairs(KEYS) do
  local id = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  local fields = {}
  for j = 1, n * 2 do fields[j] = ARGV[a + 1 + j] end
  a = a + 2 + n * 2
  local r = redis.pcall('XADD', key, 'MAXLEN', '~', cap, id, unpack(fields))
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'equal or smaller', 1, true) then
      return redis.error_reply(r.err)
    end
  else
    added = added + 1
  end
end
return added
"#;

/// Field of the entry holding the message key (the stream id).
pub const FIELD_KEY: &str = "key";
/// Field of the entry holding the body (the event data, JSON text).
pub const FIELD_DATA: &str = "data";

/// Settings of a [`RedisSink`].
#[derive(Clone, Debug)]
pub struct RedisSinkConfig {
    /// Stream keys are `{key_prefix}:{topic}`. Default `eventum`.
    pub key_prefix: String,
    /// Approximate most entries kept per stream key (`XADD MAXLEN ~`). Default 1,000,000.
    /// Trimming keeps the stream's top id, so deduplication still holds after it.
    pub stream_length_max: u64,
    /// Connect timeout. Default 5,000 ms.
    pub connect_timeout_ms: u64,
    /// How long a batch may wait for Redis's answer. Default 5,000 ms.
    pub response_timeout_ms: u64,
}

impl Default for RedisSinkConfig {
    fn default() -> Self {
        Self {
            key_prefix: "eventum".into(),
            stream_length_max: 1_000_000,
            connect_timeout_ms: 5_000,
            response_timeout_ms: 5_000,
        }
    }
}

/// Publishes to Redis Streams; reconnects on the next batch after a failure.
pub struct RedisSink {
    client: redis::Client,
    config: RedisSinkConfig,
    connection: Mutex<Option<MultiplexedConnection>>,
    script: redis::Script,
}

impl RedisSink {
    /// Connects to `url` (`redis://host:port`); fails when Redis is unreachable.
    pub async fn connect(url: &str, config: RedisSinkConfig) -> Result<Self, SinkError> {
        let client = redis::Client::open(url)
            .map_err(|e| SinkError::Refused(format!("bad Redis URL {url}: {e}")))?;
        let sink = Self {
            client,
            config,
            connection: Mutex::new(None),
            script: redis::Script::new(ADD_BATCH),
        };
        let connection = sink.open().await?;
        *sink.connection.lock().await = Some(connection);
        Ok(sink)
    }

    async fn open(&self) -> Result<MultiplexedConnection, SinkError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(self.config.connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(self.config.response_timeout_ms)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| SinkError::Unavailable(format!("Redis: {e}")))
    }

    /// The stream key of `topic`.
    pub fn stream_key(&self, topic: &str) -> String {
        format!("{}:{topic}", self.config.key_prefix)
    }

    /// The entry id of the event at `position`.
    pub fn entry_id(position: u64) -> String {
        format!("{position}-1")
    }
}

#[async_trait]
impl Sink for RedisSink {
    fn name(&self) -> &str {
        "redis"
    }

    async fn publish(&self, batch: &[Message]) -> Result<(), SinkError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(self.config.stream_length_max);
        for m in batch {
            invocation.key(self.stream_key(&m.topic));
            invocation.arg(Self::entry_id(m.position));
            invocation.arg(m.headers.len() + 2);
            for (name, value) in &m.headers {
                invocation.arg(*name).arg(value.as_str());
            }
            invocation.arg(FIELD_KEY).arg(m.key.as_str());
            invocation.arg(FIELD_DATA).arg(m.body.as_ref());
        }
        let mut guard = self.connection.lock().await;
        let connection = match guard.as_mut() {
            Some(c) => c,
            None => guard.insert(self.open().await?),
        };
        match invocation.invoke_async::<i64>(connection).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let unavailable = e.is_io_error() || e.is_timeout() || e.is_connection_dropped();
                if unavailable {
                    // A broken multiplexed connection does not heal; open a new one next time.
                    *guard = None;
                    Err(SinkError::Unavailable(format!("Redis: {e}")))
                } else {
                    Err(SinkError::Refused(format!("Redis: {e}")))
                }
            }
        }
    }
}
