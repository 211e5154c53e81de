//! The gateway process: the shop's REST API and WebSocket with JWT auth, the same as the
//! in-process shop's, in front of services it reaches only through the broker. It owns
//! the users (register, log in) and records the requests it accepts (orders, catalog
//! changes) in its own log, which its relay publishes; it answers reads from read models
//! it keeps from the other services' events.

mod http;
mod ops;
pub mod requests;
pub mod views;
pub mod ws;

use std::sync::Arc;

use eventum_core::EventStore;
use eventum_projections::{ReadModelStore, StoreConfig};
use eventum_runtime::{BusConfig, CommandBus, Repository, RepositoryConfig};
use tokio::sync::Semaphore;

use crate::auth::{Passwords, Tokens};
use crate::config::HashingConfig;
use crate::handlers::Shared;
use crate::services::broker::Broker;
use crate::services::inbound::{ConsumerConfig, ConsumerHandle, ViewTarget, spawn_consumer};
use crate::services::reactions::{topic_of, topics_for};
use crate::users::User;

pub use http::router;

/// The gateway's settings, with documented defaults.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// HS256 secret of the JWTs; at least 32 bytes.
    pub jwt_secret: Vec<u8>,
    /// Lifetime of a token, in seconds. Default 3600.
    pub token_ttl_s: u64,
    /// The admin account, registered at start if missing. Default `admin`.
    pub admin_username: String,
    pub admin_password: String,
    pub hashing: HashingConfig,
    /// Request the demo catalog when the gateway has requested no product yet.
    /// Default true.
    pub demo_catalog: bool,
    /// Most orders or notifications one listing returns. Default 100.
    pub list_limit_max: usize,
    /// Open WebSocket connections at once; more are refused with 503. Default 1024.
    pub websockets_max: usize,
    /// Notifications queued for one slow WebSocket client before it is disconnected.
    /// Default 256.
    pub websocket_queue_max: usize,
    /// How long an admin's catalog change waits to see the products service's answer
    /// before the gateway answers 202 instead. Default 10,000 ms.
    pub catalog_wait_ms: u64,
}

impl GatewayConfig {
    pub fn new(jwt_secret: impl Into<Vec<u8>>, admin_password: impl Into<String>) -> Self {
        Self {
            jwt_secret: jwt_secret.into(),
            token_ttl_s: 3600,
            admin_username: "admin".into(),
            admin_password: admin_password.into(),
            hashing: HashingConfig::default(),
            demo_catalog: true,
            list_limit_max: 100,
            websockets_max: 1024,
            websocket_queue_max: 256,
            catalog_wait_ms: 10_000,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if self.jwt_secret.len() < 32 {
            return Err("the JWT secret must be at least 32 bytes".into());
        }
        crate::users::check_username(&self.admin_username).map_err(|e| format!("admin: {e}"))?;
        crate::users::check_password(&self.admin_password).map_err(|e| format!("admin: {e}"))?;
        if self.token_ttl_s == 0
            || self.list_limit_max == 0
            || self.websockets_max == 0
            || self.websocket_queue_max == 0
            || self.hashing.concurrent_max == 0
        {
            return Err(
                "token_ttl_s, list_limit_max, websockets, websocket_queue_max and hashing.concurrent_max must be positive"
                    .into(),
            );
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    pub store: Arc<dyn EventStore>,
    pub bus: Arc<CommandBus>,
    pub users: Arc<Repository<User>>,
    pub passwords: Passwords,
    pub tokens: Tokens,
    pub config: GatewayConfig,
    pub read_models: ReadModelStore,
    pub catalog: views::Catalog,
    /// The highest product id requested so far; new products take the next one.
    pub last_product_id: tokio::sync::Mutex<u64>,
    pub hub: Arc<ws::Hub>,
    pub websockets: Arc<Semaphore>,
}

/// Serves the gateway's routes on `listener` until `shutdown` resolves.
pub async fn serve(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    eventum_server::serve_app(listener, router(gateway), shutdown).await
}

/// The gateway's operations; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

/// A started gateway: its operations and the consumers feeding its read models.
pub struct RunningGateway {
    pub gateway: Gateway,
    pub consumers: Vec<ConsumerHandle>,
    feed: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    /// Opens the read models in `read_model_dir`, registers the admin, requests the demo
    /// catalog on a first start, and starts following the broker.
    pub async fn start(
        store: Arc<dyn EventStore>,
        broker: &Broker,
        read_model_dir: &std::path::Path,
        config: GatewayConfig,
        consumer: ConsumerConfig,
    ) -> anyhow::Result<RunningGateway> {
        config.check().map_err(anyhow::Error::msg)?;
        let users = Arc::new(Repository::<User>::new(
            store.clone(),
            RepositoryConfig::default(),
        ));
        let bus = Arc::new(
            CommandBus::builder(BusConfig::default())
                .handler(Shared(users.clone()))?
                .build(),
        );
        let read_models = ReadModelStore::open(read_model_dir, StoreConfig::default())?;
        views::define(&read_models)?;
        let catalog: views::Catalog =
            Arc::new(std::sync::RwLock::new(views::load_catalog(&read_models)?));
        let last_product_id = ops::last_requested_product(store.as_ref()).await?;
        let hub = Arc::new(ws::Hub::new(config.websocket_queue_max));
        let gateway = Gateway {
            inner: Arc::new(Inner {
                store,
                bus: bus.clone(),
                users,
                passwords: Passwords::new(&config.hashing).map_err(anyhow::Error::msg)?,
                tokens: Tokens::new(&config.jwt_secret, config.token_ttl_s),
                websockets: Arc::new(Semaphore::new(config.websockets_max)),
                read_models: read_models.clone(),
                catalog: catalog.clone(),
                last_product_id: tokio::sync::Mutex::new(last_product_id),
                hub: hub.clone(),
                config,
            }),
        };
        gateway.ensure_admin().await?;
        if gateway.inner.config.demo_catalog && last_product_id == 0 {
            for (name, description, price, stock) in crate::service::DEMO_CATALOG {
                gateway
                    .request_product(name.into(), description.into(), price, stock)
                    .await?;
            }
        }
        let notifications = broker
            .config
            .subject(&topic_of(broker.config.topics, "NotificationCreated"));
        let feed = ws::spawn_feed(hub, broker.client.clone(), notifications).await?;
        let target = Arc::new(ViewTarget {
            store: read_models,
            follows: views::FOLLOWS,
            apply: Arc::new(move |tx, m| views::apply(&catalog, tx, m)),
        });
        let mut consumers = Vec::new();
        for topic in topics_for(broker.config.topics, views::FOLLOWS) {
            let name = format!("gateway-{topic}");
            consumers.push(
                spawn_consumer(broker, &name, &topic, consumer.clone(), target.clone()).await?,
            );
        }
        Ok(RunningGateway {
            gateway,
            consumers,
            feed,
        })
    }

    /// Stops following the broker (the HTTP server is its caller's).
    pub async fn shutdown(self) {
        self.feed.abort();
        for c in self.consumers {
            c.stop().await;
        }
    }
}
