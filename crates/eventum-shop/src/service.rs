//! Assembles the shop on one event store: repositories of every aggregate, the command
//! bus with the cross-aggregate handlers, the read models, the order flow (saga or
//! choreography, in partitions), the notifier; and the operations the HTTP layer calls.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use eventum_core::{EventStore, SubscriptionFrom, SubscriptionTarget};
use eventum_projections::{ProjectionRunner, ReadModelStore, RunnerConfig, StoreConfig};
use eventum_runtime::codec::decode_event;
use eventum_runtime::{BusConfig, CommandBus, CommandMeta, Repository, RepositoryConfig};
use eventum_sagas::{
    ReactorConfig, ReactorHandle, ReactorRunner, SagaConfig, SagaHandle, SagaRunner, SystemClock,
};
use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::auth::{Passwords, Tokens};
use crate::batcher::ProductBatcher;
use crate::choreography::{Role, ShopReactor};
use crate::config::{FlowStyle, ShopConfig};
use crate::handlers::{PaymentHandler, Shared, StockHandler};
use crate::notifications::{Notification, NotificationEvent};
use crate::orders::Order;
use crate::partition::Partition;
use crate::payments::Payment;
use crate::products::{Product, ProductCommand, ProductEvent};
use crate::reservations::Reservation;
use crate::saga::OrderSaga;
use crate::users::{ROLE_ADMIN, User, UserCommand};
use crate::views::{NotificationsView, OrdersView};

/// A product's immutable catalog facts, kept in memory to validate and price orders
/// without a read. Products are created only through this service, so it is current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    pub name: String,
    pub price: i64,
}

pub(crate) struct Inner {
    pub store: Arc<dyn EventStore>,
    pub bus: Arc<CommandBus>,
    pub users: Arc<Repository<User>>,
    pub products: Arc<Repository<Product>>,
    pub orders: Arc<Repository<Order>>,
    pub catalog: RwLock<BTreeMap<u64, CatalogEntry>>,
    /// Product ids are assigned one at a time.
    pub catalog_writes: tokio::sync::Mutex<()>,
    pub passwords: Passwords,
    pub tokens: Tokens,
    pub config: ShopConfig,
    pub read_models: ReadModelStore,
    pub websockets: Arc<Semaphore>,
}

/// The shop's operations; cheap to clone.
#[derive(Clone)]
pub struct Shop {
    pub(crate) inner: Arc<Inner>,
}

enum FlowRunner {
    Saga(SagaHandle),
    Reactor(ReactorHandle),
}

/// A started shop and its background work.
pub struct RunningShop {
    pub shop: Shop,
    flows: Vec<FlowRunner>,
    projections: Vec<ProjectionRunner>,
}

/// The demo catalog seeded into an empty store: (name, description, price KRW, stock).
pub const DEMO_CATALOG: [(&str, &str, i64, i64); 4] = [
    (
        "Mechanical keyboard",
        "87 keys, brown switches",
        89_000,
        1_000,
    ),
    ("Wireless mouse", "Silent clicks", 25_000, 1_000),
    ("27-inch monitor", "QHD, 144 Hz", 329_000, 100),
    ("USB-C hub", "7 ports", 39_000, 500),
];

impl RunningShop {
    /// Opens the read models, registers the admin, seeds the demo catalog if asked and
    /// the store has no product, and starts the flow and the projections.
    pub async fn start(
        store: Arc<dyn EventStore>,
        config: ShopConfig,
    ) -> anyhow::Result<RunningShop> {
        config.check().map_err(anyhow::Error::msg)?;
        let repo_config = RepositoryConfig::default();
        // Orders, reservations, payments and notifications live for a few events each:
        // snapshots would only cost a lookup per load.
        let short_lived = RepositoryConfig {
            snapshot_every_events: None,
            ..RepositoryConfig::default()
        };
        // A product takes two events per order, and its state holds every order in flight
        // (open reservations), so a snapshot costs in proportion to the orders in flight:
        // every 100 events it was ~5% of the orchestrated flow's CPU at 3,500 orders/s. A
        // cold load reads at most 1,000 events past the last one instead.
        let hot = RepositoryConfig {
            snapshot_every_events: Some(1_000),
            ..RepositoryConfig::default()
        };
        let users = Arc::new(Repository::<User>::new(store.clone(), repo_config));
        let products = Arc::new(Repository::<Product>::new(store.clone(), hot));
        let orders = Arc::new(Repository::<Order>::new(store.clone(), short_lived.clone()));
        let reservations = Arc::new(Repository::<Reservation>::new(
            store.clone(),
            short_lived.clone(),
        ));
        let payments = Arc::new(Repository::<Payment>::new(
            store.clone(),
            short_lived.clone(),
        ));
        let notifications = Repository::<Notification>::new(store.clone(), short_lived);
        let bus = Arc::new(
            CommandBus::builder(BusConfig::default())
                .handler(Shared(users.clone()))?
                .handler(Shared(products.clone()))?
                .handler(Shared(orders.clone()))?
                .aggregate(notifications)?
                .handler(StockHandler {
                    products: Arc::new(ProductBatcher::new(
                        products.clone(),
                        config.stock_batching,
                    )),
                    reservations: reservations.clone(),
                })?
                .handler(PaymentHandler {
                    payments: payments.clone(),
                    provider: config.provider.clone(),
                })?
                .build(),
        );
        std::fs::create_dir_all(&config.read_model_dir)?;
        let read_models = ReadModelStore::open(&config.read_model_dir, StoreConfig::default())?;
        let shop = Shop {
            inner: Arc::new(Inner {
                catalog: RwLock::new(load_catalog(store.as_ref()).await?),
                store: store.clone(),
                bus: bus.clone(),
                users,
                products,
                orders,
                catalog_writes: tokio::sync::Mutex::new(()),
                passwords: Passwords::new(&config.hashing).map_err(anyhow::Error::msg)?,
                tokens: Tokens::new(&config.jwt_secret, config.token_ttl_s),
                websockets: Arc::new(Semaphore::new(config.websockets_max)),
                read_models: read_models.clone(),
                config: config.clone(),
            }),
        };
        shop.ensure_admin().await?;
        if config.demo_catalog && shop.inner.catalog.read().expect("catalog lock").is_empty() {
            for (name, description, price, stock) in DEMO_CATALOG {
                shop.create_product(name.into(), description.into(), price, stock)
                    .await?;
            }
        }
        let mut projections = Vec::new();
        let views: [Arc<dyn eventum_projections::Projection>; 2] =
            [Arc::new(OrdersView), Arc::new(NotificationsView)];
        for view in views {
            projections.push(
                ProjectionRunner::start(
                    read_models.clone(),
                    store.clone(),
                    view,
                    RunnerConfig::default(),
                )
                .await?,
            );
        }
        let saga_config = SagaConfig {
            checkpoint_every_events: config.flow_checkpoint_every_events,
            instances_in_flight_max: config.flow_orders_in_flight_max,
            cache_instances_max: config.flow_instances_cached_max,
            ..SagaConfig::default()
        };
        let reactor_config = ReactorConfig {
            checkpoint_every_events: config.flow_checkpoint_every_events,
            streams_in_flight_max: config.flow_orders_in_flight_max,
            ..ReactorConfig::default()
        };
        let mut flows = Vec::new();
        for partition in Partition::all(config.flow_partitions) {
            if config.flow == FlowStyle::Orchestrated {
                let saga = OrderSaga::new(partition);
                let handle = SagaRunner::start(
                    store.clone(),
                    bus.clone(),
                    saga,
                    saga_config.clone(),
                    Arc::new(SystemClock),
                )
                .await?;
                flows.push(FlowRunner::Saga(handle));
            } else {
                for role in Role::FLOW {
                    let reactor = ShopReactor::new(role, partition);
                    let handle = ReactorRunner::start(
                        store.clone(),
                        bus.clone(),
                        reactor,
                        reactor_config.clone(),
                    )
                    .await?;
                    flows.push(FlowRunner::Reactor(handle));
                }
            }
            let notifier = ShopReactor::new(Role::Notifier, partition);
            let handle =
                ReactorRunner::start(store.clone(), bus.clone(), notifier, reactor_config.clone())
                    .await?;
            flows.push(FlowRunner::Reactor(handle));
        }
        tracing::info!(flow = ?config.flow, partitions = config.flow_partitions, "shop started");
        Ok(RunningShop {
            shop,
            flows,
            projections,
        })
    }

    /// Whether a flow runner has stopped by itself (only on an error).
    pub fn flow_failed(&self) -> bool {
        self.flows.iter().any(|f| match f {
            FlowRunner::Saga(h) => h.is_finished(),
            FlowRunner::Reactor(h) => h.is_finished(),
        })
    }

    /// Stops the flow and the projections, saving their checkpoints. The store stays
    /// open (its owner closes it).
    pub async fn shutdown(self) {
        for flow in self.flows {
            let result = match flow {
                FlowRunner::Saga(h) => h.stop().await,
                FlowRunner::Reactor(h) => h.stop().await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "flow runner stopped with an error");
            }
        }
        for p in self.projections {
            if let Err(e) = p.stop().await {
                tracing::warn!(error = %e, "projection stopped with an error");
            }
        }
    }
}

/// Reads every `ProductCreated` of the log: the catalog's ids, names and prices.
async fn load_catalog(store: &dyn EventStore) -> anyhow::Result<BTreeMap<u64, CatalogEntry>> {
    let mut catalog = BTreeMap::new();
    let page = store.limits().read_events_max;
    let mut from = 0;
    loop {
        let events = store.read_category("product", from, page).await?;
        for event in &events {
            if event.event_type == "ProductCreated"
                && let Ok(ProductEvent::ProductCreated {
                    product_id,
                    name,
                    price,
                    ..
                }) = decode_event(event)
            {
                catalog.insert(product_id, CatalogEntry { name, price });
            }
            from = event.position + 1;
        }
        if events.len() < page {
            return Ok(catalog);
        }
    }
}

impl Shop {
    pub fn bus(&self) -> &Arc<CommandBus> {
        &self.inner.bus
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    pub fn config(&self) -> &ShopConfig {
        &self.inner.config
    }

    pub fn read_models(&self) -> &ReadModelStore {
        &self.inner.read_models
    }

    pub fn catalog(&self) -> BTreeMap<u64, CatalogEntry> {
        self.inner.catalog.read().expect("catalog lock").clone()
    }

    async fn ensure_admin(&self) -> anyhow::Result<()> {
        let config = &self.inner.config;
        let admin = self.inner.users.load(&config.admin_username).await?;
        if admin.state.is_registered() {
            return Ok(());
        }
        let hash = self
            .inner
            .passwords
            .hash(config.admin_password.clone())
            .await?;
        let command = UserCommand::RegisterUser {
            username: config.admin_username.clone(),
            password_hash: hash,
            role: ROLE_ADMIN.into(),
        };
        self.inner.bus.dispatch(command, CommandMeta::new()).await?;
        Ok(())
    }

    /// Creates a product with the next free id.
    pub async fn create_product(
        &self,
        name: String,
        description: String,
        price: i64,
        stock: i64,
    ) -> Result<u64, crate::error::CatalogError> {
        let _turn = self.inner.catalog_writes.lock().await;
        let product_id = self
            .inner
            .catalog
            .read()
            .expect("catalog lock")
            .keys()
            .next_back()
            .map_or(1, |id| id + 1);
        let command = ProductCommand::CreateProduct {
            product_id,
            name: name.clone(),
            description,
            price,
            stock,
        };
        self.inner
            .bus
            .dispatch(command, CommandMeta::new())
            .await
            .map_err(|e| match e {
                eventum_runtime::DispatchError::Invalid(m) => {
                    crate::error::CatalogError::Invalid(m)
                }
                e => e.into(),
            })?;
        self.inner.catalog.write().expect("catalog lock").insert(
            product_id,
            CatalogEntry {
                name: name.trim().to_owned(),
                price,
            },
        );
        Ok(product_id)
    }

    /// Notifications of `user_id` as they are recorded, from now on, in their wire form.
    pub fn live_notifications(
        &self,
        user_id: String,
    ) -> impl futures::Stream<Item = serde_json::Value> + Send + 'static {
        // The start is fixed now (not at the first poll), so that a caller that has
        // this stream sees everything recorded after this call.
        let from = self.inner.store.head_position().map_or(0, |p| p + 1);
        self.inner
            .store
            .subscribe(
                SubscriptionTarget::Category("notification".into()),
                SubscriptionFrom::Position(from),
            )
            .filter_map(move |item| {
                let mine = item.ok().and_then(|event| {
                    let NotificationEvent::NotificationCreated {
                        order_id,
                        user_id: owner,
                        kind,
                        message,
                    } = decode_event(&event).ok()?;
                    (owner == user_id).then(|| {
                        crate::views::notification_json(
                            &event.id.to_string(),
                            &order_id,
                            &owner,
                            &kind,
                            &message,
                            &event.recorded_at_rfc3339(),
                        )
                    })
                });
                futures::future::ready(mine)
            })
    }
}
