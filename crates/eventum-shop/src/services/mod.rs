//! The shop as separate processes: each service (orders, products, payments,
//! notifications, gateway) runs on its own store and talks to the others only through
//! NATS JetStream. A service publishes its own log through a relay (the log is the
//! outbox: an event is on the broker once JetStream acknowledged it, and the relay's
//! checkpoint moves only then) and takes the events it reacts to from durable consumers
//! through an inbox (duplicates dropped; commands with ids derived from the message, so
//! even a repeat past the inbox appends nothing). The order flow is the choreography of
//! seed 004: each service reacts to the others' events, with the same compensations as
//! in process.
//!
//! ```text
//!  gateway ──OrderRequested──▶ orders ──OrderCreated──▶ products ──StockReserved──▶ payments
//!     ▲                          ▲  ◀──StockReservationFailed──┘ ◀──PaymentFailed──┤
//!     │                          └──────────────── PaymentCompleted ◀──────────────┘
//!     └──── OrderConfirmed / OrderCancelled, NotificationCreated, Product* ◀── (all) ──▶ notifications
//! ```

pub mod backends;
pub mod broker;
pub mod gateway;
pub mod inbound;
pub mod reactions;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use eventum_bridge::{RelayConfig, RelayHandle, RelayProgress};
use eventum_core::EventStore;
use eventum_projections::{ReadModelStore, StoreConfig};

pub use backends::BackendConfig;
pub use broker::{Broker, BrokerConfig};
pub use gateway::{Gateway, GatewayConfig, RunningGateway};
pub use inbound::{ConsumerConfig, ConsumerHandle};
pub use reactions::Backend;

/// One of the shop's processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    Backend(Backend),
    Gateway,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Backend(Backend::Orders),
        ServiceKind::Backend(Backend::Products),
        ServiceKind::Backend(Backend::Payments),
        ServiceKind::Backend(Backend::Notifications),
        ServiceKind::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Backend(b) => b.name(),
            ServiceKind::Gateway => "gateway",
        }
    }
}

impl std::str::FromStr for ServiceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ServiceKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown service {s:?}: orders, products, payments, notifications or gateway"
                )
            })
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a service process needs besides its store.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Local state: the inbox (backends) or the read models and their inbox (gateway).
    pub data_dir: PathBuf,
    pub broker: BrokerConfig,
    pub consumer: ConsumerConfig,
    /// Batch, linger, retry and checkpoint bounds of the relay (its name, topics and
    /// source are set per service).
    pub relay: RelayConfig,
    pub backend: BackendConfig,
    /// The gateway's settings; required for the gateway only.
    pub gateway: Option<GatewayConfig>,
}

/// A started service: its relay, its consumers and, for the gateway, its operations.
pub struct RunningService {
    pub kind: ServiceKind,
    relay: RelayHandle,
    consumers: Vec<ConsumerHandle>,
    gateway: Option<RunningGateway>,
}

impl RunningService {
    /// Connects to the broker, starts the relay of `store` and the consumers of what
    /// `kind` follows.
    pub async fn start(
        kind: ServiceKind,
        store: Arc<dyn EventStore>,
        config: ServiceConfig,
    ) -> anyhow::Result<RunningService> {
        let broker = Broker::connect(config.broker.clone()).await?;
        let relay = broker.relay(kind.name(), store.clone(), config.relay.clone())?;
        let mut consumers = Vec::new();
        let mut gateway = None;
        match kind {
            ServiceKind::Backend(backend) => {
                let bus = Arc::new(backends::command_bus(backend, store, &config.backend)?);
                let inbox =
                    ReadModelStore::open(config.data_dir.join("inbox"), StoreConfig::default())?;
                let target = Arc::new(inbound::CommandTarget {
                    backend,
                    bus,
                    inbox,
                    keys_in_flight_max: config.consumer.keys_in_flight_max,
                });
                for topic in reactions::topics_for(broker.config.topics, backend.follows()) {
                    let name = format!("{}-{topic}", backend.name());
                    let c = inbound::spawn_consumer(
                        &broker,
                        &name,
                        &topic,
                        config.consumer.clone(),
                        target.clone(),
                    )
                    .await?;
                    consumers.push(c);
                }
            }
            ServiceKind::Gateway => {
                let settings = config
                    .gateway
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("the gateway needs its settings"))?;
                gateway = Some(
                    RunningGateway::start(
                        store,
                        &broker,
                        &config.data_dir.join("read-models"),
                        settings,
                        config.consumer.clone(),
                    )
                    .await?,
                );
            }
        }
        let followed = consumers.len() + gateway.as_ref().map_or(0, |g| g.consumers.len());
        tracing::info!(service = %kind, consumers = followed, "shop service started");
        Ok(RunningService {
            kind,
            relay,
            consumers,
            gateway,
        })
    }

    /// The gateway's operations (for its HTTP server), if this is the gateway.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.gateway.as_ref().map(|g| &g.gateway)
    }

    pub fn relay_progress(&self) -> RelayProgress {
        self.relay.progress().borrow().clone()
    }

    /// One line per consumer: messages done, duplicates, refused, retried, failures.
    pub fn consumer_stats(&self) -> Vec<(String, [u64; 5])> {
        let consumers = self
            .consumers
            .iter()
            .chain(self.gateway.iter().flat_map(|g| g.consumers.iter()));
        consumers
            .map(|c| {
                let s = &c.stats;
                let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                (
                    c.name.clone(),
                    [
                        n(&s.done),
                        n(&s.duplicates),
                        n(&s.refused),
                        n(&s.retried),
                        n(&s.failures),
                    ],
                )
            })
            .collect()
    }

    /// Whether the relay stopped by itself (only on an error).
    pub fn relay_failed(&self) -> bool {
        self.relay.is_finished()
    }

    /// Stops the consumers (unacknowledged messages come again), then the relay (its
    /// checkpoint covers everything acknowledged).
    pub async fn shutdown(self) {
        for c in self.consumers {
            c.stop().await;
        }
        if let Some(g) = self.gateway {
            g.shutdown().await;
        }
        if let Err(e) = self.relay.stop().await {
            tracing::warn!(error = %e, "relay stopped with an error");
        }
    }
}
