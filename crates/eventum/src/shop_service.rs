//! `eventum shop service <orders|products|payments|notifications|gateway>`: one service of
//! the shop as its own process, on its own store (`--store postgres://…` with its own
//! schema, or the embedded log in `--data`), talking to the others only through NATS
//! JetStream (`--bus nats://…`). The gateway also serves the shop's HTTP API on
//! `--listen`. Runs until SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::Args;
use eventum_bridge::{RelayConfig, TopicMapping};
use eventum_core::EventStore;
use eventum_log::{LogConfig, LogStore};
use eventum_postgres::{PgConfig, PgStore};
use eventum_shop::HashingConfig;
use eventum_shop::services::{
    BrokerConfig, ConsumerConfig, GatewayConfig, RunningService, ServiceConfig, ServiceKind,
};

#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    /// orders, products, payments, notifications or gateway.
    pub service: ServiceKind,
    /// Event store: a postgres:// URL, or omit for the embedded log in `<data>/log`.
    #[arg(long)]
    pub store: Option<String>,
    /// PostgreSQL schema of this service's events. Default `shop_<service>`.
    #[arg(long)]
    pub store_schema: Option<String>,
    /// Most PostgreSQL connections this service holds.
    #[arg(long, default_value_t = 8)]
    pub store_pool_max: usize,
    /// Local state (inbox, the gateway's read models, the embedded log). Default
    /// `./eventum-shop/<service>`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// NATS server with JetStream.
    #[arg(
        long,
        env = "EVENTUM_SHOP_BUS",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub bus: String,
    /// JetStream stream of the shop's messages (created if missing).
    #[arg(long, default_value = "SHOP")]
    pub bus_stream: String,
    /// Subject prefix: topics are `<prefix>.<topic>`.
    #[arg(long, default_value = "shop")]
    pub bus_prefix: String,
    /// Topic per event `type` (order-created, seed 004) or per `category` (order-events);
    /// the same for every service of one shop.
    #[arg(long, default_value = "type")]
    pub topics: String,
    /// How long JetStream drops a re-sent message id, seconds.
    #[arg(long, default_value_t = 120)]
    pub bus_duplicate_window_s: u64,
    /// Messages older than this leave the stream, seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub bus_max_age_s: u64,
    /// Most bytes the stream keeps; -1 for none (JetStream reserves a byte bound out of
    /// its storage when the stream is created).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub bus_max_bytes: i64,
    /// Most messages a consumer fetches and handles at once.
    #[arg(long, default_value_t = 256)]
    pub batch_messages_max: usize,
    /// Orders a consumer works on at once (one order's messages stay in order).
    #[arg(long, default_value_t = 128)]
    pub keys_in_flight_max: usize,
    /// A delivered message not acknowledged within this comes again, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub ack_wait_ms: u64,
    /// Most messages delivered and not acknowledged, per consumer.
    #[arg(long, default_value_t = 1024)]
    pub ack_pending_max: i64,
    /// How long a consumer batch waits for more messages once it has one, milliseconds.
    #[arg(long, default_value_t = 1)]
    pub batch_linger_ms: u64,
    /// Longest redelivery delay after a technical failure, milliseconds (the delay
    /// doubles from 100 ms up to this).
    #[arg(long, default_value_t = 10_000)]
    pub retry_delay_ms_max: u64,
    /// Deliveries of one message before JetStream gives up on it; -1 never gives up
    /// (only technical failures are retried, so a bound would drop orders in an outage).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub deliveries_max: i64,
    /// Most events the relay publishes per acknowledged batch.
    #[arg(long, default_value_t = 512)]
    pub relay_batch_events_max: usize,
    /// Gateway: address to listen on (port 0 picks a free port; the listening line says).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Gateway: HS256 secret of the JWTs (≥ 32 bytes). Default: a random one kept in
    /// `<data>/jwt-secret`.
    #[arg(long, env = "EVENTUM_SHOP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Gateway: password of `admin`, set when the account is first created. Default: a
    /// random one kept in `<data>/admin-password`.
    #[arg(long, env = "EVENTUM_SHOP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Gateway: lifetime of a token, seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl_s: u64,
    /// Gateway: Argon2 memory per password hash, KiB (lower it for load tests only).
    #[arg(long, default_value_t = 19 * 1024)]
    pub hash_memory_kib: u32,
    /// Gateway: Argon2 passes per password hash.
    #[arg(long, default_value_t = 2)]
    pub hash_iterations: u32,
    /// Gateway: do not request the demo catalog on a first start.
    #[arg(long)]
    pub no_demo: bool,
    /// Gateway: open WebSockets at once (more are refused with 503).
    #[arg(long, default_value_t = 1024)]
    pub websockets_max: usize,
    /// Gateway: notifications queued for one slow WebSocket before it is disconnected.
    #[arg(long, default_value_t = 256)]
    pub websocket_queue_max: usize,
    /// Gateway: how long a catalog change waits for the products service, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub catalog_wait_ms: u64,
    /// Payments: simulated provider latency, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub payment_latency_ms: u64,
    /// Payments: amounts above this (KRW) are declined.
    #[arg(long, default_value_t = 10_000_000)]
    pub payment_amount_max: i64,
}

/// The opened store, kept concrete so that shutdown reaches the backend.
enum Store {
    Log(Arc<LogStore>),
    Postgres(Arc<PgStore>),
}

impl Store {
    fn as_dyn(&self) -> Arc<dyn EventStore> {
        match self {
            Store::Log(s) => s.clone(),
            Store::Postgres(s) => s.clone(),
        }
    }

    fn shutdown(&self) {
        match self {
            Store::Log(s) => s.shutdown(),
            Store::Postgres(s) => s.shutdown(),
        }
    }
}

impl ServiceArgs {
    fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| PathBuf::from("eventum-shop").join(self.service.name()))
    }

    fn schema(&self) -> String {
        self.store_schema
            .clone()
            .unwrap_or_else(|| format!("shop_{}", self.service.name()))
    }

    async fn open_store(&self) -> anyhow::Result<(Store, String)> {
        match &self.store {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let mut config = PgConfig::new(url).with_schema(self.schema());
                config.pool_size_max = self.store_pool_max;
                let store = PgStore::open(config).await.map_err(|e| {
                    anyhow!(
                        "cannot open the PostgreSQL store (schema {}): {e}",
                        self.schema()
                    )
                })?;
                Ok((
                    Store::Postgres(store),
                    format!("postgres schema {}", self.schema()),
                ))
            }
            Some(other) => Err(anyhow!(
                "--store {other:?}: expected a postgres:// URL (omit --store for the embedded log)"
            )),
            None => {
                let dir = self.data_dir().join("log");
                let shown = dir.display().to_string();
                let store =
                    tokio::task::spawn_blocking(move || LogStore::open(&dir, LogConfig::default()))
                        .await?
                        .with_context(|| format!("cannot open the log in {shown}"))?;
                Ok((Store::Log(store), format!("log {shown}")))
            }
        }
    }

    fn gateway_config(&self, data: &Path) -> anyhow::Result<GatewayConfig> {
        let secret = match &self.jwt_secret {
            Some(s) => s.clone(),
            None => kept_secret(&data.join("jwt-secret"), 32)?,
        };
        let admin_password = match &self.admin_password {
            Some(p) => p.clone(),
            None => kept_secret(&data.join("admin-password"), 12)?,
        };
        let mut c = GatewayConfig::new(secret.into_bytes(), admin_password);
        c.token_ttl_s = self.token_ttl_s;
        c.hashing = HashingConfig {
            memory_kib: self.hash_memory_kib,
            iterations: self.hash_iterations,
            ..HashingConfig::default()
        };
        c.demo_catalog = !self.no_demo;
        c.catalog_wait_ms = self.catalog_wait_ms;
        c.websockets_max = self.websockets_max;
        c.websocket_queue_max = self.websocket_queue_max;
        c.check().map_err(anyhow::Error::msg)?;
        Ok(c)
    }

    fn config(&self) -> anyhow::Result<ServiceConfig> {
        let data_dir = self.data_dir();
        let topics: TopicMapping = self.topics.parse()?;
        let mut broker = BrokerConfig::new(&self.bus);
        broker.stream = self.bus_stream.clone();
        broker.subject_prefix = self.bus_prefix.clone();
        broker.topics = topics;
        broker.duplicate_window_s = self.bus_duplicate_window_s;
        broker.max_age_s = self.bus_max_age_s;
        broker.max_bytes = self.bus_max_bytes;
        broker.check().map_err(anyhow::Error::msg)?;
        let consumer = ConsumerConfig {
            batch_messages_max: self.batch_messages_max,
            keys_in_flight_max: self.keys_in_flight_max,
            ack_wait_ms: self.ack_wait_ms,
            ack_pending_max: self.ack_pending_max,
            batch_linger_ms: self.batch_linger_ms,
            retry_delay_ms_max: self.retry_delay_ms_max,
            deliveries_max: self.deliveries_max,
            ..ConsumerConfig::default()
        };
        consumer.check().map_err(anyhow::Error::msg)?;
        let relay = RelayConfig {
            batch_events_max: self.relay_batch_events_max,
            ..RelayConfig::default()
        };
        let mut config = ServiceConfig {
            data_dir: data_dir.clone(),
            broker,
            consumer,
            relay,
            backend: Default::default(),
            gateway: None,
        };
        config.backend.provider.latency_ms = self.payment_latency_ms;
        config.backend.provider.amount_max = self.payment_amount_max;
        if self.service == ServiceKind::Gateway {
            config.gateway = Some(self.gateway_config(&data_dir)?);
        }
        Ok(config)
    }
}

/// A secret kept in `path`, created (random, `bytes` bytes as hex, mode 0600) if missing.
fn kept_secret(path: &Path, bytes: usize) -> anyhow::Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        return Ok(s.trim().to_owned());
    }
    let hex: String = std::iter::repeat_with(|| uuid::Uuid::new_v4().simple().to_string())
        .take(bytes.div_ceil(16))
        .collect();
    let value = hex[..bytes * 2].to_owned();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, &value).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(value)
}

pub async fn run(args: ServiceArgs) -> anyhow::Result<()> {
    // First: a signal during start-up must still shut down cleanly.
    let shutdown =
        eventum_server::Shutdown::install().context("cannot catch SIGINT and SIGTERM")?;
    let config = args.config()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let (store, described) = args.open_store().await?;
    let bus = format!(
        "{} stream {} prefix {}",
        args.bus, args.bus_stream, args.bus_prefix
    );
    let service = match RunningService::start(args.service, store.as_dyn(), config).await {
        Ok(s) => s,
        Err(e) => {
            store.shutdown();
            return Err(e.context(format!("cannot start the {} service", args.service)));
        }
    };
    let served = match service.gateway().cloned() {
        Some(gateway) => {
            let listener = tokio::net::TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            let addr = listener.local_addr()?;
            // Tests and scripts wait for this line.
            println!("eventum shop gateway listening on http://{addr} ({described}, bus {bus})");
            eventum_shop::services::gateway::serve(gateway, listener, shutdown.received())
                .await
                .context("gateway server failed")
        }
        None => {
            println!(
                "eventum shop {} ready ({described}, bus {bus})",
                args.service
            );
            shutdown.received().await;
            Ok(())
        }
    };
    for (name, [done, duplicates, refused, retried, failures]) in service.consumer_stats() {
        tracing::info!(%name, done, duplicates, refused, retried, failures, "consumer");
    }
    let relay = service.relay_progress();
    tracing::info!(
        published = relay.published_total,
        next_position = relay.next_position,
        "relay"
    );
    service.shutdown().await;
    store.shutdown();
    served
}
