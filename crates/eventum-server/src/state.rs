//! What every handler shares: the store, the settings, and the shutdown signal that ends
//! open subscriptions.

use std::sync::Arc;

use eventum_core::EventStore;
use eventum_groups::GroupService;
use tokio::sync::watch;

use crate::config::ServerConfig;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub config: Arc<ServerConfig>,
    /// Effective request body limit, derived once from the store's limits.
    pub body_limit: usize,
    /// Flips to `true` when the server shuts down. SSE responses never end on their own,
    /// so without this a graceful shutdown would wait for them forever.
    pub shutdown: Arc<watch::Sender<bool>>,
    /// Consumer groups, when the server runs them; `/groups` answers 503 otherwise.
    pub groups: Option<Arc<GroupService>>,
}

impl AppState {
    pub fn new(store: Arc<dyn EventStore>, config: ServerConfig) -> Self {
        let body_limit = config.body_limit_for(store.limits());
        Self {
            store,
            config: Arc::new(config),
            body_limit,
            shutdown: Arc::new(watch::channel(false).0),
            groups: None,
        }
    }

    /// The same state serving consumer groups through `groups`.
    pub fn with_groups(mut self, groups: Option<Arc<GroupService>>) -> Self {
        self.groups = groups;
        self
    }

    /// Resolves once the server starts shutting down.
    pub fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            // The sender goes away when the router is dropped, which can happen while a
            // response is still streaming (one-shot use); that is not a shutdown.
            if rx.wait_for(|down| *down).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
