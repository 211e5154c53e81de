//! The command side of each service process: only the aggregates and handlers that
//! service owns, on its own store — orders (`Order`), products (`Product`, `Reservation`
//! and the stock handler with per-product group commit), payments (`Payment` and the
//! simulated provider), notifications (`Notification`).

use std::sync::Arc;

use eventum_core::EventStore;
use eventum_runtime::{BusConfig, CommandBus, Repository, RepositoryConfig};

use super::reactions::Backend;
use crate::batcher::{BatcherConfig, ProductBatcher};
use crate::handlers::{PaymentHandler, Shared, StockHandler};
use crate::notifications::Notification;
use crate::orders::Order;
use crate::payments::{Payment, ProviderConfig};
use crate::products::Product;
use crate::reservations::Reservation;

/// What the backends need besides their store.
#[derive(Clone, Debug, Default)]
pub struct BackendConfig {
    pub repository: RepositoryConfig,
    pub bus: BusConfig,
    /// The payments service's simulated provider.
    pub provider: ProviderConfig,
    /// The products service's group commit of stock commands per product.
    pub stock_batching: BatcherConfig,
}

/// The command bus of `backend` over `store`.
pub fn command_bus(
    backend: Backend,
    store: Arc<dyn EventStore>,
    config: &BackendConfig,
) -> anyhow::Result<CommandBus> {
    let repo = config.repository.clone();
    let builder = CommandBus::builder(config.bus.clone());
    let bus = match backend {
        Backend::Orders => builder.aggregate(Repository::<Order>::new(store, repo))?,
        Backend::Products => {
            let products = Arc::new(Repository::<Product>::new(store.clone(), repo.clone()));
            let reservations = Arc::new(Repository::<Reservation>::new(store, repo));
            builder
                .handler(Shared(products.clone()))?
                .handler(StockHandler {
                    products: Arc::new(ProductBatcher::new(products, config.stock_batching)),
                    reservations,
                })?
        }
        Backend::Payments => builder.handler(PaymentHandler {
            payments: Arc::new(Repository::<Payment>::new(store, repo)),
            provider: config.provider.clone(),
        })?,
        Backend::Notifications => {
            builder.aggregate(Repository::<Notification>::new(store, repo))?
        }
    };
    Ok(bus.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_runs_the_commands_its_reactions_send() {
        let store: Arc<dyn EventStore> = Arc::new(eventum_testkit::MemoryStore::default());
        for backend in Backend::ALL {
            let bus = command_bus(backend, store.clone(), &BackendConfig::default()).unwrap();
            let types = bus.command_types();
            for event_type in backend.follows() {
                let data = serde_json::json!({"orderId": "o", "productId": 1});
                for spec in backend.react(event_type, data) {
                    assert!(
                        types.contains(&spec.command_type.as_str()),
                        "{} cannot run {} (for {event_type})",
                        backend.name(),
                        spec.command_type
                    );
                }
            }
        }
    }
}
