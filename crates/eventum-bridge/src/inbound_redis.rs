//! Inbound from Redis Streams: a consumer-group member (`XREADGROUP`) reads its stream
//! keys in batches into an [`InboundTarget`] and acknowledges (`XACK`) each batch only
//! after the target committed. On start it first takes back the entries it had read but
//! not acknowledged (its pending list), and it claims (`XAUTOCLAIM`) entries another
//! member left pending for longer than `claim_idle_ms`. A failed batch is retried in
//! hand. Re-sent and re-read entries are dropped by the inbox (`ce_id`, else the key
//! and entry id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventum_projections::ReadModelStore;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ConfigError;
use crate::inbound::{InboundError, InboundHandle, InboundMessage, InboundProgress};
use crate::inbound_target::{
    HandlerTarget, InboundHandler, InboundTarget, Retry, check_consumer_name, deliver_with_retry,
    id_from_location,
};
use crate::message::header;
use crate::redis_streams::{FIELD_DATA, FIELD_KEY};

/// Settings of a [`RedisInbound`] consumer.
#[derive(Clone, Debug)]
pub struct RedisInboundConfig {
    /// The stream keys to read (created empty with the group if missing).
    pub keys: Vec<String>,
    /// The consumer group; also the inbox's consumer name with [`RedisInbound::spawn`].
    /// `[a-z0-9_-]`.
    pub group: String,
    /// This member's name within the group. Default `eventum-1`.
    pub member: String,
    /// Where a new group starts: `0` (every entry, the default) or `$` (new ones only).
    pub start_id: String,
    /// Most entries per read, hence per delivered batch. Default 256. Keep the
    /// read-model store's `inbox_ids_max` above it.
    pub batch_messages_max: usize,
    /// How long one read blocks waiting for entries. Default 500 ms.
    pub block_ms: u64,
    /// Entries another member left unacknowledged this long are claimed. Default
    /// 30,000 ms.
    pub claim_idle_ms: u64,
    /// Delay before a failed batch is delivered again. Default 500 ms.
    pub retry_delay_ms: u64,
    /// Failed deliveries of one batch before the consumer stops with an error; `None`
    /// (the default) retries until it goes through.
    pub retry_attempts_max: Option<u32>,
}

impl RedisInboundConfig {
    pub fn new(keys: &[&str], group: &str) -> Self {
        Self {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            group: group.into(),
            member: "eventum-1".into(),
            start_id: "0".into(),
            batch_messages_max: 256,
            block_ms: 500,
            claim_idle_ms: 30_000,
            retry_delay_ms: 500,
            retry_attempts_max: None,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_consumer_name(&self.group)?;
        for (field, zero) in [
            (
                "keys",
                self.keys.is_empty() || self.keys.iter().any(String::is_empty),
            ),
            ("member", self.member.is_empty()),
            ("batch_messages_max", self.batch_messages_max == 0),
            ("block_ms", self.block_ms == 0),
            ("claim_idle_ms", self.claim_idle_ms == 0),
            ("retry_delay_ms", self.retry_delay_ms == 0),
            ("retry_attempts_max", self.retry_attempts_max == Some(0)),
        ] {
            if zero {
                return Err(ConfigError::Zero(field));
            }
        }
        Ok(())
    }
}

/// Starts Redis Streams inbound consumers.
pub struct RedisInbound;

impl RedisInbound {
    /// Joins `config.group` on `url` (`redis://host:6379`) and runs `handler` inside the
    /// read-model transaction that records the inbox (under the group's name).
    pub async fn spawn(
        url: &str,
        read_models: ReadModelStore,
        config: RedisInboundConfig,
        handler: impl InboundHandler,
    ) -> Result<InboundHandle, InboundError> {
        let target = HandlerTarget::new(read_models, &config.group, handler);
        Self::spawn_into(url, config, Arc::new(target)).await
    }

    /// Joins `config.group` and consumes into `target`.
    pub async fn spawn_into(
        url: &str,
        config: RedisInboundConfig,
        target: Arc<dyn InboundTarget>,
    ) -> Result<InboundHandle, InboundError> {
        config.validate()?;
        let broker = |e: redis::RedisError| InboundError::Broker(format!("Redis: {e}"));
        let client = redis::Client::open(url).map_err(broker)?;
        // A blocking read holds the connection, so its answer may take `block_ms`.
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_millis(config.block_ms + 5_000)));
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&connection_config)
            .await
            .map_err(broker)?;
        for key in &config.keys {
            let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg(&config.group)
                .arg(&config.start_id)
                .arg("MKSTREAM")
                .query_async(&mut connection)
                .await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(broker(e)),
            }
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (progress_tx, progress_rx) = watch::channel(InboundProgress::default());
        let link = Link {
            client,
            options: connection_config,
            connection: Some(connection),
        };
        let task = tokio::spawn(consume(link, config, target, stop_rx, progress_tx));
        Ok(InboundHandle::new(stop_tx, progress_rx, task))
    }
}

fn text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn to_inbound(key: &str, entry: &StreamId) -> InboundMessage {
    let mut headers: Vec<(String, String)> = entry
        .map
        .iter()
        .filter(|(name, _)| name.as_str() != FIELD_DATA && name.as_str() != FIELD_KEY)
        .filter_map(|(name, v)| text(v).map(|v| (name.clone(), v)))
        .collect();
    headers.sort();
    let find = |name: &str| entry.map.get(name).and_then(text);
    let id = find(header::CE_ID)
        .and_then(|v| uuid::Uuid::parse_str(&v).ok())
        .unwrap_or_else(|| id_from_location(&format!("redis/{key}/{}", entry.id)));
    let body = match entry.map.get(FIELD_DATA) {
        Some(redis::Value::BulkString(b)) => Bytes::from(b.clone()),
        Some(other) => text(other).map(Bytes::from).unwrap_or_default(),
        None => Bytes::new(),
    };
    InboundMessage {
        id,
        subject: key.to_owned(),
        event_type: find(header::CE_TYPE),
        key: find(FIELD_KEY).or_else(|| find(header::CE_SUBJECT)),
        headers,
        body,
    }
}

/// One read's entries, in order, as (stream key, entry id, message).
type Entries = Vec<(String, String, InboundMessage)>;

fn entries_of(reply: StreamReadReply) -> Entries {
    let mut out = Vec::new();
    for stream in reply.keys {
        for entry in &stream.ids {
            out.push((
                stream.key.clone(),
                entry.id.clone(),
                to_inbound(&stream.key, entry),
            ));
        }
    }
    out
}

/// Reads with `XREADGROUP`: `pending` re-reads this member's unacknowledged entries
/// (id `0`, no blocking), else new ones (`>`), blocking up to `block_ms`.
async fn read(
    connection: &mut MultiplexedConnection,
    config: &RedisInboundConfig,
    pending: bool,
) -> Result<Entries, redis::RedisError> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(&config.group)
        .arg(&config.member)
        .arg("COUNT")
        .arg(config.batch_messages_max);
    if !pending {
        cmd.arg("BLOCK").arg(config.block_ms);
    }
    cmd.arg("STREAMS").arg(&config.keys);
    for _ in &config.keys {
        cmd.arg(if pending { "0" } else { ">" });
    }
    let reply: Option<StreamReadReply> = cmd.query_async(connection).await?;
    Ok(reply.map(entries_of).unwrap_or_default())
}

/// Claims entries other members left pending longer than `claim_idle_ms`.
async fn claim(
    connection: &mut MultiplexedConnection,
    config: &RedisInboundConfig,
) -> Result<Entries, redis::RedisError> {
    let mut out = Vec::new();
    for key in &config.keys {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(key)
            .arg(&config.group)
            .arg(&config.member)
            .arg(config.claim_idle_ms)
            .arg("0")
            .arg("COUNT")
            .arg(config.batch_messages_max.saturating_sub(out.len()).max(1))
            .query_async(connection)
            .await?;
        for entry in &reply.claimed {
            out.push((key.clone(), entry.id.clone(), to_inbound(key, entry)));
        }
        if out.len() >= config.batch_messages_max {
            break;
        }
    }
    Ok(out)
}

async fn ack(
    connection: &mut MultiplexedConnection,
    group: &str,
    entries: &Entries,
) -> Result<(), redis::RedisError> {
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    for (key, id, _) in entries {
        by_key.entry(key).or_default().push(id);
    }
    let mut pipe = redis::pipe();
    for (key, ids) in by_key {
        pipe.cmd("XACK").arg(key).arg(group).arg(ids).ignore();
    }
    pipe.query_async(connection).await
}

/// The consumer's connection, reopened after it broke (a multiplexed connection does
/// not heal by itself).
struct Link {
    client: redis::Client,
    options: AsyncConnectionConfig,
    connection: Option<MultiplexedConnection>,
}

impl Link {
    async fn get(&mut self) -> Result<&mut MultiplexedConnection, redis::RedisError> {
        if self.connection.is_none() {
            let c = self
                .client
                .get_multiplexed_async_connection_with_config(&self.options)
                .await?;
            self.connection = Some(c);
        }
        Ok(self.connection.as_mut().expect("opened above"))
    }

    fn failed(&mut self, e: &redis::RedisError) {
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            self.connection = None;
        }
    }
}

async fn consume(
    mut link: Link,
    config: RedisInboundConfig,
    target: Arc<dyn InboundTarget>,
    mut stop: watch::Receiver<bool>,
    progress: watch::Sender<InboundProgress>,
) -> Result<(), InboundError> {
    let retry = Retry {
        delay_ms: config.retry_delay_ms,
        attempts_max: config.retry_attempts_max,
    };
    let claim_every = Duration::from_millis(config.claim_idle_ms / 2 + 1);
    // Own unacknowledged entries first: they were read before a crash or a stop.
    let mut pending = true;
    let mut next_claim = Instant::now();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let claiming = Instant::now() >= next_claim;
        let fetch = async {
            let connection = link.get().await?;
            if claiming {
                claim(connection, &config).await
            } else {
                read(connection, &config, pending).await
            }
        };
        let entries = tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            r = fetch => r,
        };
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                link.failed(&e);
                tracing::warn!(group = %config.group, error = %e, "Redis read failed; retrying");
                progress.send_modify(|p| p.failures_total += 1);
                tokio::time::sleep(Duration::from_millis(config.retry_delay_ms)).await;
                continue;
            }
        };
        if claiming {
            next_claim = Instant::now() + claim_every;
        } else if pending && entries.is_empty() {
            pending = false;
        }
        if entries.is_empty() {
            continue;
        }
        let batch: Vec<InboundMessage> = entries.iter().map(|(_, _, m)| m.clone()).collect();
        let delivered = deliver_with_retry(
            target.as_ref(),
            &batch,
            retry,
            &config.group,
            &mut stop,
            &progress,
        )
        .await;
        let delivered = match delivered {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e),
        };
        let acked = match link.get().await {
            Ok(connection) => ack(connection, &config.group, &entries).await,
            Err(e) => Err(e),
        };
        if let Err(e) = acked {
            link.failed(&e);
            // Unacknowledged entries are re-read from the pending list and dropped by
            // the inbox.
            tracing::warn!(group = %config.group, error = %e, "XACK failed; the inbox will drop the re-read");
            pending = true;
        }
        progress.send_modify(|p| p.add(delivered, 0));
    }
}
